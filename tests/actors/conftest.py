"""Shared test actors for the actors runtime.

House rules for these tests: no real sleeps; anything timed runs under `autojump_clock` and
asserts exact virtual times; ordering comes from awaiting the thing itself or
`trio.testing.wait_all_tasks_blocked`, never from sleeping a little.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio

from actors import ChildSpec, Mailbox, Reply


@attrs.frozen
class Note:
    """Record `text` in the probe's timeline."""

    text: str


@attrs.frozen
class Crash:
    """Raise RuntimeError(reason) while handling this message."""

    reason: str


@attrs.frozen
class Echo:
    """Answer `text` upper-cased."""

    text: str
    reply: Reply[str]


@attrs.frozen
class CrashHolding:
    """Take a request, then crash without answering it."""

    reason: str
    reply: Reply[str]


@attrs.frozen
class Hold:
    """Take a request and never answer it, but keep serving."""

    reply: Reply[str]


ProbeMsg = Note | Crash | Echo | CrashHolding | Hold


class Probe:
    """A test actor in the house shape, which logs what happens to it into a shared timeline.

    `fail_starts` makes its first n starts raise before `task_status.started()`;
    `ready_after` delays readiness by that many (virtual) seconds; `ignore_stop` makes it
    keep running after its inbox loop ends, so only cancellation stops it.
    """

    def __init__(
        self,
        name: str,
        timeline: list[str],
        *,
        fail_starts: int = 0,
        ready_after: float = 0.0,
        ignore_stop: bool = False,
        size: int = 8,
    ) -> None:
        self.name = name
        self.timeline = timeline
        self.mailbox: Mailbox[ProbeMsg] = Mailbox(name, size)
        self._inbox = self.mailbox.inbox
        self.fail_starts = fail_starts
        self.ready_after = ready_after
        self.ignore_stop = ignore_stop
        self.starts = 0
        self.ready = False
        self.saw_ready: dict[str, bool] = {}
        self.peers: list[Probe] = []

    def spec(self, **kwargs: Any) -> ChildSpec:
        return ChildSpec(self.name, self.run, mailbox=self.mailbox, **kwargs)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts += 1
        self.timeline.append(f"start {self.name}")
        self.saw_ready = {peer.name: peer.ready for peer in self.peers}
        if self.starts <= self.fail_starts:
            raise RuntimeError(f"{self.name} start {self.starts} failed")
        await trio.sleep(self.ready_after)
        self.ready = True
        task_status.started()
        try:
            async for msg in self._inbox:
                self._handle(msg)
            if self.ignore_stop:
                await trio.sleep_forever()
        finally:
            self.ready = False
            self.timeline.append(f"stop {self.name}")

    def _handle(self, msg: ProbeMsg) -> None:
        match msg:
            case Note(text=text):
                self.timeline.append(f"{self.name} got {text}")
            case Crash(reason=reason) | CrashHolding(reason=reason):
                raise RuntimeError(reason)
            case Echo(text=text, reply=reply):
                reply.send(text.upper())
            case Hold():
                pass

    async def note(self, text: str) -> None:
        await self.mailbox.cast(Note(text))

    async def crash(self, reason: str = "boom") -> None:
        await self.mailbox.cast(Crash(reason))

    async def echo(self, text: str, *, timeout: float = 5.0) -> str:
        return await self.mailbox.call(lambda reply: Echo(text, reply), timeout=timeout)

    async def call_and_crash(self, reason: str = "boom", *, timeout: float = 5.0) -> str:
        return await self.mailbox.call(lambda reply: CrashHolding(reason, reply), timeout=timeout)

    async def call_and_hold(self, *, timeout: float = 5.0) -> str:
        return await self.mailbox.call(Hold, timeout=timeout)


@pytest.fixture
def timeline() -> list[str]:
    return []


@pytest.fixture
def make_probe(timeline: list[str]) -> Callable[..., Probe]:
    def make(name: str, **kwargs: Any) -> Probe:
        return Probe(name, timeline, **kwargs)

    return make
