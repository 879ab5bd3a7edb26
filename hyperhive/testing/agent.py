"""An agent harness run in-process against a test hive, for trio tests of the turn loop."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import trio

from hyperhive.agent.serve import open_harness
from hyperhive.agent.settings import AgentSettings, Role
from hyperhive.testing.offload import inline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.agent.events import LiveEvent, Subscription
    from hyperhive.agent.harness import Harness, HarnessOptions, LoginCheck, LoginWatch
    from hyperhive.agent.runtime import TurnRunner
    from hyperhive.clock import WallClock
    from hyperhive.testing.hive import TestHive

__all__ = ["agent_settings", "next_event", "open_test_harness"]


def agent_settings(hive: TestHive, state: Path, name: str) -> AgentSettings:
    """Settings for agent `name` of `hive`, keeping its state in `state`."""
    return AgentSettings(
        name=name, role=Role.AGENT, socket=hive.paths.agent_socket(name), state_dir=state
    )


@contextlib.asynccontextmanager
async def open_test_harness(
    hive: TestHive,
    name: str,
    state: Path,
    runner: TurnRunner,
    clock: WallClock,
    *,
    options: HarnessOptions | None = None,
    login_check: LoginCheck | None = None,
    login_watch: LoginWatch | None = None,
) -> AsyncIterator[tuple[Harness, Subscription]]:
    """A started harness for agent `name`; yields it and a feed of all its events.

    Resource handling: on exit the harness is cancelled (as a kill would stop it: nothing is
    acked that was not acked already), the events bus and turn stats are closed.
    """
    await inline(lambda: state.mkdir(parents=True, exist_ok=True))
    settings = agent_settings(hive, state, name)
    wired = open_harness(
        settings,
        runner,
        clock,
        options=options,
        login_check=login_check,
        login_watch=login_watch,
        offload=inline,
        history_thread=False,
    )
    async with wired as (harness, bus):
        feed = bus.subscribe(capacity=100_000)
        async with trio.open_nursery() as nursery:
            await nursery.start(harness.run)
            yield harness, feed
            nursery.cancel_scope.cancel()


async def next_event(feed: Subscription, kind: str, **match: Any) -> LiveEvent:
    """The next event of `kind` on `feed` whose data holds every item of `match`."""
    async for event in feed:
        if event.kind == kind and all(event.data.get(k) == v for k, v in match.items()):
            return event
    raise AssertionError(f"the feed ended before a {kind!r} event")
