"""A stand-in for the agent harness that reports what it can see and do. Stdlib only.

Run by the container conformance suite and the sandbox tests as an agent's command
(`python -S path/to/probe_agent.py`). On start it:

- counts its starts in `$HYPERHIVE_AGENT_STATE/probe-counter` (persistence across restarts);
- reads `$HYPERHIVE_CONFIG_DIR/probe.txt` and tries to write into the config directory;
- tries to write every path listed in `probe-targets.json` in its config dir, and checks which
  of the paths listed in `probe-hidden.json` it can see at all;
- records the environment variables named in `probe-env.json` in its config dir (None where
  unset);
- connects to `$HYPERHIVE_SOCKET`, sends one line (`probe-line.txt` in its config dir, else a
  hive `send` to the operator) and records the first line it gets back;
- if `probe-wall.json` is in its config dir, tries what it lists against the sandbox's walls
  (`_wall`: files to read, unix, abstract and TCP addresses to connect to, a key to find in the
  user keyring) and records its own credentials, capabilities, seccomp mode, interfaces and
  listening TCP ports as `/proc` shows them;
- writes all of that to `$HYPERHIVE_AGENT_STATE/probe-report.json` and prints
  `agent NAME started`.

Then it polls `probe-command` in its state directory every 20 ms: `exit N` exits with N,
`ignore-term` ignores SIGTERM from then on, `kill SIG` sends itself that signal. Each command is
acknowledged in `probe-ack`. SIGTERM (unless ignored) writes `probe-stopped` and exits 0.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.02


def _try_write(path: Path) -> str:
    try:
        path.write_text("probe was here\n")
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def _try_socket(path: str, line: bytes) -> str:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(line.rstrip(b"\n") + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        return f"error: {errno.errorcode.get(exc.errno or 0, str(exc))}"
    return reply.decode(errors="replace").strip()


def _json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _report(name: str, state: Path, config: Path) -> dict[str, Any]:
    counter = state / "probe-counter"
    starts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(starts))
    probe_txt = config / "probe.txt"
    line_file = config / "probe-line.txt"
    line = (
        line_file.read_bytes()
        if line_file.exists()
        else json.dumps({"cmd": "send", "to": "operator", "body": f"hello from {name}"}).encode()
    )
    return {
        "name": name,
        "pid": os.getpid(),
        "starts": starts,
        "env": {k: v for k, v in os.environ.items() if k.startswith("HYPERHIVE_")},
        "named_env": {k: os.environ.get(k) for k in _json(config / "probe-env.json", [])},
        "home": os.environ.get("HOME"),
        "cwd": os.getcwd(),
        "config": probe_txt.read_text() if probe_txt.exists() else None,
        "config_write": _try_write(config / "probe-evil"),
        "host_writes": {t: _try_write(Path(t)) for t in _json(config / "probe-targets.json", [])},
        "visible": {p: os.path.exists(p) for p in _json(config / "probe-hidden.json", [])},
        "socket": _try_socket(os.environ["HYPERHIVE_SOCKET"], line),
        "wall": _wall(_json(config / "probe-wall.json", {})),
    }


def _errno(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc))


def _try_read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return "read: " + handle.read(64).decode(errors="replace")
    except OSError as exc:
        return _errno(exc)


def _try_connect(family: int, address: Any) -> str:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.settimeout(1)
            try:
                return "connected: " + sock.recv(256).decode(errors="replace").strip()
            except OSError:
                return "connected"
    except OSError as exc:
        return _errno(exc)


def _try_keyring(description: str) -> str:
    import ctypes
    import platform

    numbers = {"x86_64": 250, "aarch64": 219}
    if platform.machine() not in numbers:
        return "skipped"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    key_spec_user_keyring, keyctl_search = -4, 10
    found = libc.syscall(
        ctypes.c_long(numbers[platform.machine()]),
        ctypes.c_long(keyctl_search),
        ctypes.c_long(key_spec_user_keyring),
        ctypes.c_char_p(b"user"),
        ctypes.c_char_p(description.encode()),
        ctypes.c_long(0),
    )
    if found < 0:
        return errno.errorcode.get(ctypes.get_errno(), "error")
    return f"found key {found}"


def _status() -> dict[str, str]:
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
                fields[key] = value.strip()
    return fields


def _listening_ports() -> list[int]:
    ports = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == "0A":  # LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(set(ports))


def _wall(plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": _status(),
        "interfaces": [name for _, name in socket.if_nameindex()],
        "listening": _listening_ports(),
        "read": {path: _try_read(path) for path in plan.get("read", [])},
        "unix": {path: _try_connect(socket.AF_UNIX, path) for path in plan.get("unix", [])},
        "abstract": {
            name: _try_connect(socket.AF_UNIX, "\0" + name) for name in plan.get("abstract", [])
        },
        "tcp": {
            f"{host}:{port}": _try_connect(socket.AF_INET, (host, port))
            for host, port in plan.get("tcp", [])
        },
        "keyring": _try_keyring(plan["keyring"]) if plan.get("keyring") else None,
    }


def _on_term(state: Path) -> Any:
    def handler(signum: int, frame: object) -> None:
        (state / "probe-stopped").write_text("sigterm\n")
        sys.exit(0)

    return handler


def main() -> None:
    name = os.environ["HYPERHIVE_AGENT"]
    state = Path(os.environ["HYPERHIVE_AGENT_STATE"])
    config = Path(os.environ["HYPERHIVE_CONFIG_DIR"])
    signal.signal(signal.SIGTERM, _on_term(state))
    report = _report(name, state, config)
    scratch = state / "probe-report.json.tmp"
    scratch.write_text(json.dumps(report))
    scratch.replace(state / "probe-report.json")
    print(f"agent {name} started", flush=True)
    command_file = state / "probe-command"
    while True:
        time.sleep(POLL_SECONDS)
        try:
            command = command_file.read_text().split()
        except OSError:
            continue
        command_file.unlink()
        (state / "probe-ack").write_text(" ".join(command))
        if command[:1] == ["exit"]:
            print(f"agent {name} exiting with {command[1]}", flush=True)
            sys.exit(int(command[1]))
        if command[:1] == ["ignore-term"]:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if command[:1] == ["kill"]:
            os.kill(os.getpid(), signal.Signals[command[1]])


if __name__ == "__main__":
    main()
