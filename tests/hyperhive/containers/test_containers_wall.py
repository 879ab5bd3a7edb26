"""Issue 10: the sandbox wall, tried from inside an agent on the default backend.

`hyperhive serve` runs for real (backend `auto`, the probe as `--agent-command`); the probe
reports what it could read, reach and be, and these tests hold that against what the wall
promises: not uid 0, no capability even in the bounding set, a seccomp filter, nothing of the
host's files, keyring, loopback, abstract sockets or other hives; yet the internet (a test
server in a network namespace of our own) reachable with the network on.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hyperhive.containers.bwrap import bwrap_works
from hyperhive.testing import DaemonProcess, run_cli
from hyperhive.testing.conformance import PROBE_COMMAND
from hyperhive.testing.netns import netns_problem, open_netns_host

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bwrap_works() is not None, reason="bubblewrap cannot sandbox here"),
    pytest.mark.skipif(netns_problem() is not None, reason=str(netns_problem())),
]
HOST_LOOPBACK_PORT = 7150  # in this project's test port range
_SYS_ADD_KEY, _SYS_KEYCTL = 248, 250  # x86-64
_KEY_SPEC_USER_KEYRING, _KEYCTL_REVOKE = -4, 3


@contextlib.contextmanager
def _serving(sock: socket.socket, banner: bytes) -> Iterator[None]:
    """Answer every connection on `sock` with `banner` (a thread; closed on exit)."""

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.sendall(banner)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the accept
        sock.close()
        thread.join(timeout=5)


@contextlib.contextmanager
def _user_key(description: str, payload: bytes) -> Iterator[None]:
    """A key in this user's (root's) user keyring, revoked afterwards."""
    if platform.machine() != "x86_64":
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    key = libc.syscall(
        ctypes.c_long(_SYS_ADD_KEY),
        ctypes.c_char_p(b"user"),
        ctypes.c_char_p(description.encode()),
        ctypes.c_char_p(payload),
        ctypes.c_size_t(len(payload)),
        ctypes.c_long(_KEY_SPEC_USER_KEYRING),
    )
    assert key > 0, os.strerror(ctypes.get_errno())
    try:
        yield
    finally:
        libc.syscall(ctypes.c_long(_SYS_KEYCTL), ctypes.c_long(_KEYCTL_REVOKE), ctypes.c_long(key))


def _listen(family: int, address: Any) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(16)
    return sock


def _spawn_probe(state_root: Path, name: str, plan: dict[str, Any], *flags: str) -> dict[str, Any]:
    config = state_root / "agents" / name / "config"
    config.mkdir(parents=True)
    (config / "probe-wall.json").write_text(json.dumps(plan))
    result = run_cli(state_root, "spawn", name, *flags)
    assert result.returncode == 0, result.stderr
    report = state_root / "agents" / name / "state" / "probe-report.json"
    deadline = time.monotonic() + 30
    while not report.exists():
        assert time.monotonic() < deadline, run_cli(state_root, "logs", name).stdout
        time.sleep(0.05)
    wall: dict[str, Any] = json.loads(report.read_text())["wall"]
    return wall


def test_an_agent_on_the_default_backend_sees_only_its_own_world(short_tmp: Path) -> None:
    tag = f"hh-wall-{os.getpid()}"
    secret = Path.home() / f".{tag}-secret"
    other_hive = short_tmp / "other"
    hive = short_tmp / "hive"
    env = {"HYPERHIVE_BACKEND": "auto"}
    command = shlex.join(PROBE_COMMAND)
    with contextlib.ExitStack() as stack:
        secret.write_text("the daemon user's secret\n")
        secret.chmod(0o600)
        stack.callback(secret.unlink)
        stack.enter_context(_user_key(tag, b"root's keyring secret"))
        loopback = _listen(socket.AF_INET, ("127.0.0.1", HOST_LOOPBACK_PORT))
        stack.enter_context(_serving(loopback, b"host loopback\n"))
        abstract = _listen(socket.AF_UNIX, "\0" + tag)
        stack.enter_context(_serving(abstract, b"host abstract\n"))
        internet = stack.enter_context(open_netns_host())
        server = internet.listen_tcp()
        server_port = server.getsockname()[1]
        stack.enter_context(_serving(server, b"hello from the internet\n"))
        stack.enter_context(DaemonProcess(other_hive, "--no-manager"))
        daemon = stack.enter_context(
            DaemonProcess(hive, "--agent-command", command, "--no-manager", env=env)
        )
        assert "containers: bwrap" in daemon.log
        plan = {
            "read": [str(secret), "/etc/shadow", "/root/.bashrc", str(hive / "broker.sqlite")],
            "unix": [str(other_hive / "admin.sock"), str(hive / "admin.sock")],
            "abstract": [tag],
            "tcp": [
                ["127.0.0.1", HOST_LOOPBACK_PORT],
                ["10.0.2.2", HOST_LOOPBACK_PORT],
                [internet.address, server_port],
            ],
            "keyring": tag,
        }
        online = _spawn_probe(hive, "online", plan)
        offline = _spawn_probe(hive, "offline", plan, "--no-network")

    for wall in (online, offline):
        status = wall["status"]
        assert all(uid != "0" for uid in status["Uid"].split())
        assert status["CapBnd"] == "0000000000000000"
        assert status["CapEff"] == "0000000000000000"
        assert status["NoNewPrivs"] == "1"
        assert status["Seccomp"] == "2"
        # Nothing of the host's files: never mounted, so not even there.
        assert wall["read"] == {
            str(secret): "ENOENT",
            "/etc/shadow": "ENOENT",
            "/root/.bashrc": "ENOENT",
            str(hive / "broker.sqlite"): "ENOENT",
        }
        assert set(wall["unix"].values()) == {"ENOENT"}  # this hive's and another hive's admin
        assert wall["abstract"] == {tag: "ECONNREFUSED"}  # the host's abstract socket is elsewhere
        if platform.machine() == "x86_64":
            assert wall["keyring"] == "EPERM"  # seccomp: no keyring call at all
        assert HOST_LOOPBACK_PORT not in wall["listening"]  # /proc/net is its own
    tcp = online["tcp"]
    assert tcp[f"127.0.0.1:{HOST_LOOPBACK_PORT}"] == "ECONNREFUSED"  # its own loopback
    # The host's loopback through slirp4netns's gateway address: refused by slirp4netns.
    assert tcp[f"10.0.2.2:{HOST_LOOPBACK_PORT}"] in {"ECONNREFUSED", "ENETUNREACH"}
    assert tcp[f"{internet.address}:{server_port}"] == "connected: hello from the internet"
    assert online["interfaces"] == ["lo", "tap0"]
    assert offline["interfaces"] == ["lo"]
    assert offline["tcp"][f"{internet.address}:{server_port}"] == "ENETUNREACH"
