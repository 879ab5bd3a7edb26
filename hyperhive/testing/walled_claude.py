"""The real harness and `claude` inside the bwrap wall, against the scripted model API.

`walled_claude_problem()` says why that cannot run here (None when it can). `open_walled_api`
serves a `ModelAPI` in a network namespace of the test's own (`hyperhive.testing.netns`): a
walled agent reaches it the way it would reach Claude's API, out through slirp4netns and the
host's routing, not on the host's loopback, which the wall keeps it from (docs/security.md).
`walled_claude_settings(api)` are the container settings that run agents there, pointed at
that API with a placeholder key and no retries (a failed request ends the turn at once).
`until(hive, check)` polls for what a test waits on and fails at once, naming the agent and
why, when an agent's turn failed (its claude could not reach the API, say): the step the
test waits for would never come.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, TypeVar

import trio

from hyperhive.containers.settings import ContainerSettings
from hyperhive.testing.model_api import open_model_api
from hyperhive.testing.netns import netns_problem, open_netns_host

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from hyperhive.testing.hive import TestHive
    from hyperhive.testing.model_api import ModelAPI

__all__ = ["open_walled_api", "until", "walled_claude_problem", "walled_claude_settings"]

T = TypeVar("T")


@functools.cache
def walled_claude_problem() -> str | None:
    """None if walled agents can run the real `claude` here, else why not (blocking: it runs
    bwrap once; call it at collection, before the event loop starts)."""
    from hyperhive.agent.claude import find_claude
    from hyperhive.containers.bwrap import bwrap_works
    from hyperhive.errors import ConfigError

    try:
        find_claude()
    except ConfigError as exc:  # pragma: no cover - the dependency bundles it
        return str(exc)
    return bwrap_works() or netns_problem()


@contextlib.asynccontextmanager
async def open_walled_api() -> AsyncIterator[ModelAPI]:
    """A scripted `ModelAPI` in a network namespace of its own, removed on exit."""
    with open_netns_host() as internet:
        async with open_model_api(internet.listen_tcp()) as api:
            yield api


def walled_claude_settings(api: ModelAPI, *, ensure_manager: bool = False) -> ContainerSettings:
    """bwrap agents running the real harness and `claude` against `api`."""
    return ContainerSettings(
        backend="bwrap",
        env={
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": "scripted-not-a-key",
            "CLAUDE_CODE_MAX_RETRIES": "0",
        },
        ensure_manager=ensure_manager,
        stop_grace=5.0,
        shutdown_grace=3.0,
    )


async def until(hive: TestHive, check: Callable[[], Awaitable[T | None]]) -> T:
    """What `check` returns once it is not None, polled every 0.2 s (bound it with
    `trio.fail_after`). Raises AssertionError at once when an agent's last turn failed."""
    while True:
        found = await check()
        if found is not None:
            return found
        for name, view in (await hive.handles.agents.views()).items():
            turn = view.last_turn
            assert turn is None or turn.result != "failed", f"{name}'s turn failed: {turn.detail}"
        await trio.sleep(0.2)
