"""`hyperhive serve` run by a normal user, as the README's quick start is: bwrap, no root.

The test (root, as CI is) makes a system user and starts the daemon as that user with a
normal user's PATH and environment. The daemon does what an unprivileged daemon does: bwrap in
user namespaces, slirp4netns inside the sandbox's user namespace, no uid switching, state owned
by that user. Two details of this machine that a developer's machine does not share are evened
out in a private mount namespace of the daemon's own (nothing on the host changes):

- the Python and the checkout the tests run from may sit under a directory other users cannot
  enter (CI's /root): each such directory is covered by a traversable tmpfs with only the
  needed entry bound back in;
- `/dev/net/tun` may be 0600 (no udev): a 0666 node, the mode udev gives it, is bound over it,
  so the agents get the user-mode network a developer's machine gives them. The second test
  keeps the host's 0600 and checks the fallback instead: the dashboard asks for a token.

The real harness and the real `claude` run against the scripted model API, which listens in a
network namespace of the test's (`hyperhive.testing.netns`), reached out through slirp4netns.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive import wire
from hyperhive.agent.claude import find_claude
from hyperhive.client import Client, open_client
from hyperhive.containers.bwrap import HOST_NETWORK_NOTE
from hyperhive.errors import ConfigError, NotRunning
from hyperhive.testing.model_api import ApiRequest, Reply, Text, ToolCall, open_model_api
from hyperhive.testing.netns import netns_problem, open_netns_host

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

USER = "hh-unpriv-test"
USER_PATH = "/usr/local/bin:/usr/bin:/bin"  # a normal user's: no sbin

try:
    find_claude()
except ConfigError as exc:  # pragma: no cover - the dependency bundles it
    pytest.skip(f"no claude binary: {exc}", allow_module_level=True)


def _setup_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create the test's user"
    for tool in ("useradd", "setpriv", "unshare", "bwrap", "slirp4netns", "mount", "mknod"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            return f"{tool} is not installed"
    return netns_problem()


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_setup_problem() is not None, reason=str(_setup_problem())),
]


def _ensure_user() -> tuple[int, int]:
    """The test's system user (made once; no home, no login shell)."""
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(USER)
        return entry.pw_uid, entry.pw_gid
    useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
    assert useradd is not None
    done = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/bin/false", USER],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot create the test user: {done.stderr.strip()}")
    entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


def _as_user(uid: int, gid: int, argv: list[str]) -> list[str]:
    return [
        "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
        "env", "-i", f"PATH={USER_PATH}", "LANG=C.UTF-8", *argv,
    ]  # fmt: skip


def _userns_problem(uid: int, gid: int) -> str | None:
    probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-user", "--disable-userns"]
    probe += ["--unshare-pid", "--unshare-net", "--", "true"]
    done = subprocess.run(
        _as_user(uid, gid, probe), capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        return f"bwrap cannot sandbox as a normal user here: {done.stderr.strip()}"
    return None


def _closed_ancestors(paths: list[Path], uid: int) -> list[tuple[Path, set[str]]]:
    """Each directory on the way to `paths` that `uid` cannot enter, with the entries needed."""
    found: dict[Path, set[str]] = {}
    for path in paths:
        for parent, child in zip(path.parents, [path, *path.parents], strict=False):
            info = parent.stat()
            if info.st_mode & stat.S_IXOTH or info.st_uid == uid:
                continue
            found.setdefault(parent, set()).add(child.name)
    return sorted(found.items(), key=lambda item: len(item[0].parts))


def _namespace_script(
    closed: list[tuple[Path, set[str]]], scratch: Path, tun_mode: int | None, command: list[str]
) -> str:
    """The root shell script that sets the daemon's mount namespace up, then runs `command`.

    `tun_mode`: a tun node of that mode is bound over /dev/net/tun (made on a fresh tmpfs: the
    scratch directory's filesystem may be mounted nodev).
    """
    lines = ["set -e"]
    if tun_mode is not None:
        rdev = Path("/dev/net/tun").stat().st_rdev
        devices = scratch / "dev"
        devices.mkdir()
        lines += [
            f"mount -t tmpfs -o mode=0755 hh-dev {devices}",
            f"mknod -m {tun_mode:04o} {devices}/tun c {os.major(rdev)} {os.minor(rdev)}",
            f"mount --bind {devices}/tun /dev/net/tun",
        ]
    for number, (directory, entries) in enumerate(closed):
        original = scratch / f"closed-{number}"
        original.mkdir()
        lines += [
            f"mount --bind {directory} {original}",
            f"mount -t tmpfs -o mode=0755 hh-open {directory}",
        ]
        for entry in sorted(entries):
            make = "mkdir" if (directory / entry).is_dir() else "touch"  # seen from here
            lines += [
                f"{make} {directory / entry}",
                f"mount --bind {original / entry} {directory / entry}",
            ]
    lines.append("exec " + shlex.join(command))
    return "\n".join(lines)


def _tun_mode(tun: str, uid: int) -> int | None:
    """The mode of the tun node to bind over the host's, or None to keep the host's.

    "open": 0666 (udev's), unless the host's serves `uid` already; "closed": 0600, root's, as
    a host without udev has it, whatever this one's mode is.
    """
    if tun == "closed":
        return 0o600
    info = Path("/dev/net/tun").stat()
    if info.st_mode & 0o006 == 0o006 or info.st_uid == uid:
        return None
    return 0o666


def _runtime_paths() -> list[Path]:
    import hyperhive

    checkout = Path(hyperhive.__file__).resolve().parent.parent
    return [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), checkout]


@contextlib.contextmanager
def _user_daemon(
    root: Path, *, tun: str, serve_args: list[str]
) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    """`hyperhive serve` as the test user, its state in `root`/state (`tun`: open or closed)."""
    uid, gid = _ensure_user()
    problem = _userns_problem(uid, gid)
    if problem is not None:
        pytest.skip(problem)
    scratch = root / "ns"
    scratch.mkdir()
    state = root / "state"
    state.mkdir(mode=0o700)
    os.chown(state, uid, gid)
    root.chmod(0o755)
    serve = [sys.executable, "-m", "hyperhive", "serve", "--state-dir", str(state), *serve_args]
    command = _as_user(uid, gid, [f"HOME={state}/home", *serve])
    closed = _closed_ancestors(_runtime_paths(), uid)
    script = _namespace_script(closed, scratch, _tun_mode(tun, uid), command)
    log = (root / "serve.log").open("wb")
    daemon = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield daemon, state, uid
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        log.close()
        _kill_leftovers(uid)


def _user_processes(uid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid == uid:
                found.append(f"{entry.name} {(entry / 'comm').read_text().strip()}")
    return found


def _kill_leftovers(uid: int) -> None:
    for line in _user_processes(uid):
        with contextlib.suppress(OSError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


async def _wait_serving(state: Path, daemon: subprocess.Popen[bytes], log: Path) -> None:
    with trio.fail_after(30):
        while True:
            if daemon.poll() is not None:
                pytest.fail(f"serve exited {daemon.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(NotRunning, OSError):
                async with open_client(state / "admin.sock") as admin:
                    await admin.call(wire.GetStatus())
                    return
            await trio.sleep(0.1)


PROBE_MARK = "WALL-REPORT"
PING = re.compile(r"\bping (\w+)")


def _probe_command(state: Path, host_port: int, internet: tuple[str, int, int]) -> str:
    """What alice runs with Bash: which paths of the daemon and of bob exist for her, whether
    the host's loopback answers, who she is, and which of two ports on the test's "internet"
    host (`internet`: its address, the API's port, another port) her allowlist lets through."""
    paths = [
        state / "credentials" / "hive.json",
        state / "broker.sqlite",
        state / "admin.sock",
        state / "agents" / "bob" / "state" / "hyperhive-credentials.json",
        state,
    ]
    checks = " ".join(shlex.quote(str(p)) for p in paths)
    return (
        f"echo {PROBE_MARK} uid=$(id -u); "
        f'for p in {checks}; do if [ -e "$p" ]; then echo "SEEN $p"; '
        'else echo "HIDDEN $p"; fi; done; '
        f"for h in 127.0.0.1 10.0.2.2; do if (exec 3<>/dev/tcp/$h/{host_port}) 2>/dev/null; "
        'then echo "LOOPBACK-OPEN $h"; else echo "LOOPBACK-CLOSED $h"; fi; done; '
        "cat /state/hyperhive-credentials.json >/dev/null && echo OWN-CREDENTIALS-READABLE; "
        f"for port in {internet[1]} {internet[2]}; do "
        f"if (exec 3<>/dev/tcp/{internet[0]}/$port) 2>/dev/null; "
        'then echo "EGRESS-OPEN $port"; else echo "EGRESS-CLOSED $port"; fi; done'
    )


def _script(
    state: Path, host_port: int, internet: tuple[str, int, int]
) -> Callable[[ApiRequest], Reply]:
    reported = []

    def reply(request: ApiRequest) -> Reply:
        last = request.last_user_text
        if request.ends_with_tool_result:
            if PROBE_MARK in last and not reported:  # the probe's output: send it, once
                reported.append(True)
                start = last.index(PROBE_MARK)
                body = last[start : start + 2000]
                return ToolCall("mcp__hive__send", {"to": "operator", "body": body})
            return Text("done.")
        if "probe the wall" in last:
            command = _probe_command(state, host_port, internet)
            return ToolCall("Bash", {"command": command, "description": "probe"})
        if ping := PING.search(last):
            return ToolCall("mcp__hive__send", {"to": "operator", "body": f"pong {ping[1]}"})
        return Text("ok.")

    return reply


async def _operator_mail(admin: Client, count: int) -> list[wire.Message]:
    with trio.fail_after(60):
        while True:
            inbox = await admin.call(wire.ReadInbox())
            if len(inbox.messages) >= count:
                return sorted(inbox.messages, key=lambda message: message.id)
            await trio.sleep(0.2)


async def test_a_normal_user_runs_the_hive_on_bwrap_with_the_same_wall(short_tmp: Path) -> None:
    host_loopback = trio.socket.socket()  # a host service the agent must not reach
    await host_loopback.bind(("127.0.0.1", 0))
    host_loopback.listen(8)
    host_port = host_loopback.getsockname()[1]
    serve_args = ["--backend", "bwrap", "--no-manager", "--no-dashboard"]
    with (
        host_loopback,
        trio.fail_after(100),
        open_netns_host() as internet,
        internet.listen_tcp() as other,  # listening: a connection the wall lets by opens
        _user_daemon(short_tmp, tun="open", serve_args=serve_args) as (daemon, state, uid),
    ):
        async with open_model_api(internet.listen_tcp()) as api:
            ports = (internet.address, api.port, other.getsockname()[1])
            api.on(lambda request: True, _script(state, host_port, ports))
            await _wait_serving(state, daemon, short_tmp / "serve.log")
            async with open_client(state / "admin.sock") as admin:
                call = admin.call
                login = [f"ANTHROPIC_BASE_URL={api.base_url}", "ANTHROPIC_API_KEY=scripted-x"]
                await call(wire.Login(variables=(*login, "CLAUDE_CODE_MAX_RETRIES=0")))
                await call(wire.Spawn(name="alice"))
                await call(wire.Spawn(name="bob"))
                # alice may reach the API and nothing else (nftables in her namespace, loaded
                # by the daemon through the user namespace it does not own as root).
                sandbox = state / "agents" / "alice" / "sandbox.json"
                sandbox.write_text(json.dumps({"egress": [f"{internet.address}:{api.port}"]}))
                await call(wire.RestartAgent(name="alice"))
                started = trio.current_time()
                await call(wire.Send(to="alice", body="please probe the wall"))
                [report] = await _operator_mail(admin, 1)
                await call(wire.Send(to="bob", body="ping one"))
                await _operator_mail(admin, 2)
                # Past the point where the worker-thread trap killed every agent (about 10 s
                # after its start), both still run and answer.
                await trio.sleep(max(0.0, 16.0 - (trio.current_time() - started)))
                await call(wire.Send(to="alice", body="ping two"))
                mail = await _operator_mail(admin, 3)
                rows = {v.name: v for v in (await call(wire.ListContainers())).containers}
            users = _user_processes(uid)
            slirps = [line for line in users if line.endswith("slirp4netns")]
            daemon.send_signal(signal.SIGKILL)  # however the daemon dies, no agent stays
            daemon.wait(timeout=10)
            with trio.fail_after(10):
                while leftovers := _user_processes(uid):
                    await trio.sleep(0.1)
    assert leftovers == []
    assert report.sender == "alice"
    lines = report.body.splitlines()
    assert lines[0] == f"{PROBE_MARK} uid={uid}", report.body  # her own, as seen inside
    for path in ("credentials/hive.json", "broker.sqlite", "admin.sock"):
        assert f"HIDDEN {state / path}" in lines, report.body
    assert f"HIDDEN {state / 'agents/bob/state/hyperhive-credentials.json'}" in lines
    assert f"HIDDEN {state}" in lines
    assert "LOOPBACK-CLOSED 127.0.0.1" in lines
    assert "LOOPBACK-CLOSED 10.0.2.2" in lines
    assert "OWN-CREDENTIALS-READABLE" in lines  # her own login is hers
    assert f"EGRESS-OPEN {ports[1]}" in lines, report.body
    assert f"EGRESS-CLOSED {ports[2]}" in lines, report.body
    assert [(m.sender, m.body) for m in mail[1:]] == [("bob", "pong one"), ("alice", "pong two")]
    assert {name: (row.state, row.notes) for name, row in rows.items()} == {
        "alice": ("running", ()),
        "bob": ("running", ()),
    }
    assert len(slirps) == 2, users  # the agents' networks, run by the user, not root
    log = (short_tmp / "serve.log").read_text()
    assert "host network" not in log
    assert "Traceback" not in log


def _dashboard(port: int, path: str, *, token: str | None = None, body: bytes | None = None) -> int:
    headers = {"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers=headers,
        method="POST" if body else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # not listening yet


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_without_a_usable_tun_agents_share_the_network_and_the_dashboard_asks_a_token(
    short_tmp: Path,
) -> None:
    port = _free_port()
    serve_args = ["--backend", "bwrap", "--no-manager", "--dashboard", f"127.0.0.1:{port}"]
    with (
        trio.fail_after(60),
        _user_daemon(short_tmp, tun="closed", serve_args=serve_args) as (daemon, state, _uid),
    ):
        await _wait_serving(state, daemon, short_tmp / "serve.log")
        async with open_client(state / "admin.sock") as admin:
            await admin.call(wire.Spawn(name="alice"))
            rows = (await admin.call(wire.ListContainers())).containers
        token_file = state / "dashboard-token"
        with trio.fail_after(10):
            while await trio.to_thread.run_sync(lambda: _dashboard(port, "/api/state")) == 0:
                await trio.sleep(0.1)
        send = json.dumps({"to": "alice", "body": "as the operator?"}).encode()
        # What an agent on the host's network could try: refused without the token.
        refused = await trio.to_thread.run_sync(lambda: _dashboard(port, "/op-send", body=send))
        state_refused = await trio.to_thread.run_sync(lambda: _dashboard(port, "/api/state"))
        token = token_file.read_text().strip()
        allowed = await trio.to_thread.run_sync(lambda: _dashboard(port, "/api/state", token=token))
    log = (short_tmp / "serve.log").read_text()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert (refused, state_refused, allowed) == (401, 401, 200)
    assert f"asks for the operator token in {token_file}" in log
    assert "chmod 0666 /dev/net/tun" in log  # the warning says how to get the wall back
    assert [row.notes for row in rows] == [(HOST_NETWORK_NOTE,)]
