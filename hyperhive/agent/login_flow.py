"""Drive ``claude auth login`` over pipes for the agent's page: show its URL, feed it the code.

The operator opens the URL the command prints in their own browser, logs in, and pastes the
code the browser shows back into the page; the daemon hands it to the harness (never to a
shell), which writes it to the command's stdin. Claude stores what it gets in the agent's own
``~/.claude`` (its HOME is in the agent's state directory), and the credential watch notices.

Nothing the command prints is logged: only the first URL is kept, for the page to show as
text. One flow at a time; a new start replaces a flow that is still waiting. A flow that waits
longer than `FLOW_TIMEOUT` for its code is ended.

`LoginFlowDriver.state()` is the `wire.LoginFlow` the page shows: ``idle``, ``starting``,
``waiting_code`` (with ``url``), ``checking`` (the code went in), ``done`` or ``failed``.
"""

from __future__ import annotations

import re
import subprocess
from typing import TYPE_CHECKING, Final

import trio

from hyperhive.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from hyperhive.wire.page import LoginFlow

__all__ = ["FLOW_TIMEOUT", "LoginFlowDriver", "find_url"]

FLOW_TIMEOUT: Final = 600.0
_URL: Final = re.compile(r"https?://[^\s\"'<>`]+")
_OUTPUT_CAP: Final = 64 * 1024  # read at most this much of what the command prints
_ESCAPES: Final = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def find_url(output: str) -> str | None:
    """The first http(s) URL in what the command printed (terminal escapes removed)."""
    found = _URL.search(_ESCAPES.sub("", output))
    return found.group(0).rstrip(".,;)") if found else None


class LoginFlowDriver:
    """One ``claude auth login`` at a time (see the module docstring).

    `command` is the argv (``[claude, "auth", "login"]``), `env` its environment and `cwd` its
    working directory; `on_done` is called when it exits 0 (the harness re-probes).
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        on_done: Callable[[], None],
    ) -> None:
        self._command = list(command)
        self._env = dict(env)
        self._cwd = cwd
        self._on_done = on_done
        self._flow: LoginFlow | None = None  # idle (the page types load on first use)
        self._stdin: trio.abc.SendStream | None = None
        self._scope: trio.CancelScope | None = None
        self._changed = trio.Event()

    def state(self) -> LoginFlow:
        from hyperhive.wire.page import LoginFlow

        return self._flow if self._flow is not None else LoginFlow()

    def _set(self, status: str, *, url: str | None = None, detail: str = "") -> None:
        from hyperhive.wire.page import LoginFlow

        self._flow = LoginFlow(status, url, detail[:2000])
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def start(self, nursery: trio.Nursery) -> None:
        """Start a flow (ending one that still runs) in `nursery`."""
        if self._scope is not None:
            self._scope.cancel()
        self._set("starting")
        nursery.start_soon(self._run)

    async def submit(self, code: str) -> None:
        """Write the pasted code to the waiting command.

        Raises:
            BadRequest: no flow waits for a code, or the code is not one line.
        """
        code = code.strip()
        if self._stdin is None or self.state().status != "waiting_code":
            raise BadRequest("no login is waiting for a code; start one first")
        if not code or any(c in code for c in "\r\n\x00"):
            raise BadRequest("paste the code the browser showed (one line)")
        try:
            await self._stdin.send_all(code.encode() + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._set("failed", detail="claude auth login is gone; start again")
            return
        self._set("checking", url=self.state().url)

    async def _run(self) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            try:
                await self._drive()
            except OSError as exc:
                self._set("failed", detail=f"cannot run claude auth login: {exc.strerror}")
        if self._scope is scope:
            self._scope = None

    async def _drive(self) -> None:
        process = await trio.lowlevel.open_process(
            self._command,
            env=self._env,
            cwd=self._cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        self._stdin = process.stdin
        try:
            with trio.move_on_after(FLOW_TIMEOUT) as timer:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read, process.stdout)
                    status = await process.wait()
                    nursery.cancel_scope.cancel()
            if timer.cancelled_caught:
                self._set("failed", detail="no code came within 10 minutes; start again")
            elif status == 0:
                self._set("done", detail="logged in")
                self._on_done()
            else:
                detail = f"claude auth login exited with status {status}"
                self._set("failed", url=self.state().url, detail=detail)
        finally:
            if self._stdin is process.stdin:  # not a newer flow's
                self._stdin = None
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(5, shield=True):
                    await process.wait()

    async def _read(self, stdout: trio.abc.ReceiveStream) -> None:
        seen = ""
        async for chunk in stdout:
            if len(seen) < _OUTPUT_CAP:
                seen += chunk.decode(errors="replace")
                if self.state().status == "starting" and (url := find_url(seen)):
                    self._set("waiting_code", url=url[:4000])
