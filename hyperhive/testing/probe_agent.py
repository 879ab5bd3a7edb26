"""A stand-in for the agent harness that reports what it can see and do. Stdlib only.

Run by the container conformance suite and the sandbox tests as an agent's command
(`python -S path/to/probe_agent.py`). On start it:

- counts its starts in `$HYPERHIVE_AGENT_STATE/probe-counter` (persistence across restarts);
- reads `$HYPERHIVE_CONFIG_DIR/probe.txt` and tries to write into the config directory;
- tries to write every path listed in `probe-targets.json` in its config dir, and checks which
  of the paths listed in `probe-hidden.json` it can see at all;
- connects to `$HYPERHIVE_SOCKET`, sends one line (`probe-line.txt` in its config dir, else a
  hive `send` to the operator) and records the first line it gets back;
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
        "home": os.environ.get("HOME"),
        "cwd": os.getcwd(),
        "config": probe_txt.read_text() if probe_txt.exists() else None,
        "config_write": _try_write(config / "probe-evil"),
        "host_writes": {t: _try_write(Path(t)) for t in _json(config / "probe-targets.json", [])},
        "visible": {p: os.path.exists(p) for p in _json(config / "probe-hidden.json", [])},
        "socket": _try_socket(os.environ["HYPERHIVE_SOCKET"], line),
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
