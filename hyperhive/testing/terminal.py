"""A pseudo-terminal to drive a `hyperhive` command in, with pyte as the screen.

`Terminal` starts the real command on the slave side of a pty of the given size, reads what it
writes on a thread into a pyte screen (a VT100 emulator, so a test sees what a person would:
the alternate screen, cursor moves, cropping), and sends keys as a terminal does. `wait_for`
polls the screen until a predicate holds or its deadline passes (real time: a process test).
pyte is a dev dependency, imported when a `Terminal` is made.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["KEYS", "Terminal"]

KEYS = {
    "up": "\x1b[A",
    "down": "\x1b[B",
    "pageup": "\x1b[5~",
    "pagedown": "\x1b[6~",
    "home": "\x1b[H",
    "end": "\x1b[F",
    "tab": "\t",
    "backtab": "\x1b[Z",
    "enter": "\r",
    "escape": "\x1b",
}


def _take_terminal() -> None:
    """In the child: a session of its own with the pty as its controlling terminal, so that
    Ctrl-C and a resize reach it as signals, as in a real terminal. SIGINT back to its default
    too: a test run started in the background of a shell inherits it ignored, and an
    interactive terminal never has it so."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """`hyperhive ARGV...` on a pseudo-terminal of `columns` x `lines` (module docstring)."""

    def __init__(self, argv: Sequence[str], *, columns: int, lines: int) -> None:
        import pyte

        self.columns, self.lines = columns, lines
        self.screen = pyte.Screen(columns, lines)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        # The size comes from the pty, as in a real terminal, never from COLUMNS / LINES.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperhive", *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            preexec_fn=_take_terminal,
            close_fds=True,
        )
        os.close(slave)
        self._master = master
        self.raw = bytearray()
        self._last_output = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.raw += data
                self._stream.feed(data)
                self._last_output = time.monotonic()

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.screen.display)

    def row(self, y: int) -> str:
        with self._lock:
            return self.screen.display[y]

    def highlighted(self) -> list[str]:
        """The rows shown in reverse video (a selection, a focused pane's title)."""
        with self._lock:
            buffer = self.screen.buffer
            return [
                self.screen.display[y]
                for y in range(self.lines)
                if any(buffer[y][x].reverse for x in range(self.columns))
            ]

    def press(self, *keys: str) -> None:
        for key in keys:
            os.write(self._master, KEYS.get(key, key).encode())
            time.sleep(0.02)  # one read per key, as a person types

    def type(self, text: str) -> None:
        os.write(self._master, text.encode())

    def resize(self, *, columns: int, lines: int) -> None:
        with self._lock:
            self.columns, self.lines = columns, lines
            self.screen.resize(lines, columns)
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        # The kernel signals the foreground process group itself on TIOCSWINSZ; say it again
        # for a child that has not taken the terminal yet.
        os.killpg(self.proc.pid, signal.SIGWINCH)

    def wait_for(
        self, check: Callable[[str], bool], timeout: float = 15.0, *, quiet: float = 0.1
    ) -> str:
        """The screen once `check` holds on it, looked at only after `quiet` seconds without
        output (so never a frame half drawn).

        Raises:
            AssertionError: not within `timeout` seconds, or the command ended; with the screen.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                settled = time.monotonic() - self._last_output >= quiet
                shown = "\n".join(self.screen.display)
            if settled and check(shown):
                return shown
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"the screen never matched; it shows:\n{shown}")
            time.sleep(0.02)

    def close(self) -> int:
        if self.proc.poll() is None:
            self.press("q")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        os.close(self._master)
        self._reader.join(5)
        return self.proc.returncode

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
