"""Run the real `hyperhive` command in a child process, for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DaemonProcess", "cli_error", "cli_ok", "run_cli"]

READY_MARKER = "hyperhive serving"
DASHBOARD_MARKER = "dashboard: "


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hyperhive", *args]


def run_cli(
    state_dir: Path, *args: str, timeout: float = 30.0, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run one `hyperhive` command against `state_dir` (`stdin` typed into it) and capture
    its output."""
    return subprocess.run(
        _command(*args, "--state-dir", str(state_dir)),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_ok(state_dir: Path, *args: str, stdin: str = "", timeout: float = 60.0) -> str:
    """The stdout of a `hyperhive` command that must succeed without a traceback."""
    result = run_cli(state_dir, *args, timeout=timeout, stdin=stdin)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def cli_error(state_dir: Path, *args: str) -> str:
    """The one-line error (whitespace folded: rich wraps long sentences) of a `hyperhive`
    command that must fail with exit status 1, as every command reports a refusal."""
    result = run_cli(state_dir, *args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: "), result.stderr
    return " ".join(result.stderr.split())


class DaemonProcess:
    """`hyperhive serve` in a child process; `start` returns once it serves the admin socket.

    The daemon's stderr is collected in `log` (a thread drains it so the pipe never fills).
    """

    def __init__(self, state_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self._argv = _command("serve", "--state-dir", str(state_dir), *extra)
        # No containers unless a test asks (`--backend ...` or env): a plain daemon stays fast.
        # The dashboard on a free loopback port, never the default 7000 someone else may use.
        self._env = {
            "HYPERHIVE_BACKEND": "none",
            **os.environ,
            "HYPERHIVE_DASHBOARD": "127.0.0.1:0",
            **(env or {}),
        }
        self._proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._drained = threading.Event()

    @property
    def log(self) -> str:
        """Everything the daemon wrote to stderr so far."""
        return "".join(self._lines)

    @property
    def dashboard_url(self) -> str | None:
        """The dashboard's address, as `serve` announced it (None if it runs none)."""
        for line in self._lines:
            if line.startswith(DASHBOARD_MARKER):
                return line[len(DASHBOARD_MARKER) :].strip()
        return None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        """Start the daemon and wait until it logs that it is serving."""
        self._proc = subprocess.Popen(
            self._argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=self._env
        )
        assert self._proc.stderr is not None
        threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True).start()
        if not self._ready.wait(timeout) or self._proc.poll() is not None:
            self.kill()
            raise RuntimeError(f"hyperhive serve did not become ready:\n{self.log}")
        return self

    def _drain(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self._lines.append(line)
                if READY_MARKER in line:
                    self._ready.set()
        self._ready.set()
        self._drained.set()

    def signal(self, signum: signal.Signals) -> None:
        """Send `signum` to the daemon."""
        assert self._proc is not None
        self._proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the daemon to exit and return its exit status."""
        assert self._proc is not None
        status = self._proc.wait(timeout)
        self._drained.wait(timeout)
        return status

    def kill(self) -> None:
        """SIGKILL the daemon (a power cut, as far as its files are concerned)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self.wait(10)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._drained.wait(10)
