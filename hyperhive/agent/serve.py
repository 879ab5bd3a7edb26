"""Assemble and run one agent's harness: settings, runtime, events bus, turn stats, signals."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import shlex
import signal
import sys
import time
from typing import TYPE_CHECKING, Final

import trio

from hyperhive.agent import login
from hyperhive.agent.claude import ClaudeOptions, ClaudeRuntime, claude_env, find_claude
from hyperhive.agent.events import EventBus, open_event_bus
from hyperhive.agent.harness import Harness, HarnessOptions, LoginCheck, LoginWatch
from hyperhive.agent.login_flow import LoginFlowDriver
from hyperhive.agent.mcp_server import import_sdk
from hyperhive.agent.page_server import PageServer, page_socket_path
from hyperhive.agent.runtime import CommandRuntime, TurnRunner
from hyperhive.agent.turn_stats import TurnStatsStore
from hyperhive.clock import SystemClock
from hyperhive.errors import ConfigError
from hyperhive.offload import Offload, to_thread

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from hyperhive.agent.settings import AgentSettings
    from hyperhive.clock import WallClock

__all__ = [
    "ENV_LOGIN_COMMAND",
    "LATER_MODULES",
    "READY_MARKER",
    "WARM_MARKER",
    "build_runtime",
    "open_harness",
    "serve_agent",
    "warm_up",
]

_log = logging.getLogger(__name__)
READY_MARKER: Final = "hyperhive agent serving"
WARM_MARKER: Final = "loaded what turns need: the turn loop's modules and the MCP SDK"
# The command the page's browser login drives (default: `<claude> auth login`).
ENV_LOGIN_COMMAND: Final = "HYPERHIVE_LOGIN_COMMAND"


def build_runtime(
    settings: AgentSettings,
    runtime: str,
    command: Sequence[str],
    claude_options: ClaudeOptions | None = None,
) -> tuple[TurnRunner, LoginCheck | None]:
    """The turn runner named `runtime` and, for Claude, its login probe.

    Raises:
        ConfigError: unknown runtime, a command runtime without a command, or no claude binary.
    """
    if runtime == "command":
        if not command:
            raise ConfigError("the command runtime needs --command (HYPERHIVE_RUNTIME_COMMAND)")
        return CommandRuntime(list(command), cwd=settings.paths.workdir), None
    if runtime != "claude":
        raise ConfigError(f"runtime must be claude or command, not {runtime!r}")
    claude = find_claude()

    async def check() -> login.LoginState:
        env = claude_env(os.environ, login.stored_credentials(settings.paths))
        return await login.probe(claude, env)

    return ClaudeRuntime(settings, claude, options=claude_options or ClaudeOptions()), check


@contextlib.asynccontextmanager
async def open_harness(
    settings: AgentSettings,
    runner: TurnRunner,
    clock: WallClock,
    *,
    options: HarnessOptions | None = None,
    login_check: LoginCheck | None = None,
    login_watch: LoginWatch | None = None,
    offload: Offload = to_thread,
    history_thread: bool = True,
) -> AsyncIterator[tuple[Harness, EventBus]]:
    """A harness wired to its events bus and turn-stats store (not yet running).

    `offload` is how the turn-stats store is reached and `history_thread` whether the events
    history has a thread of its own; tests pass `hyperhive.testing.inline` and False, so no
    task ever waits on a thread and an autojump clock is exact.

    Resource handling: on exit the events bus is flushed and closed and the turn-stats store
    closed; run the harness inside the block.
    """
    stats = await offload(TurnStatsStore, settings.paths.turn_stats_db)
    try:
        history = settings.paths.events_db
        async with open_event_bus(history, clock, own_thread=history_thread) as bus:
            harness = Harness(
                settings,
                runner,
                bus,
                clock=clock,
                stats=stats,
                options=options or HarnessOptions(),
                login_check=login_check,
                login_watch=login_watch,
                offload=offload,
            )
            yield harness, bus
    finally:
        stats.close()


async def serve_agent(
    settings: AgentSettings,
    *,
    runtime: str = "claude",
    command: Sequence[str] = (),
    options: HarnessOptions | None = None,
    claude_options: ClaudeOptions | None = None,
) -> None:
    """Run the harness until SIGINT/SIGTERM.

    Cancellation / shutdown: a signal cancels the loop; a running turn's processes are
    stopped (SIGTERM, then SIGKILL) and its messages stay in flight for the next start.
    """
    settings.ensure_state_dir()
    runner, login_check = build_runtime(settings, runtime, command, claude_options)
    async with contextlib.AsyncExitStack() as stack:
        login_watch = None
        if login_check is not None:
            watch = await stack.enter_async_context(
                login.open_credential_watch(settings.paths, os.environ)
            )
            login_watch = watch.wait
        wired = open_harness(
            settings,
            runner,
            SystemClock(),
            options=options,
            login_check=login_check,
            login_watch=login_watch,
        )
        harness, bus = await stack.enter_async_context(wired)
        flow = None
        if runner.name == "claude":
            flow = LoginFlowDriver(
                _login_command(),
                claude_env(os.environ, {}),
                str(settings.paths.workdir),
                harness.login_changed,
            )
        page = PageServer(
            harness,
            bus,
            socket_path=page_socket_path(settings.socket),
            stats=harness.stats,
            clock=harness.clock,
            offload=to_thread,
            login_flow=flow,
        )
        await _serve(settings, harness, page, runner.name)


def _login_command() -> list[str]:
    configured = os.environ.get(ENV_LOGIN_COMMAND, "").strip()
    return shlex.split(configured) if configured else [str(find_claude()), "auth", "login"]


async def _serve(settings: AgentSettings, harness: Harness, page: PageServer, runtime: str) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        await nursery.start(page.run)
        await nursery.start(harness.run)
        print(
            f"{READY_MARKER}: {settings.name} ({settings.role.value}, {runtime})",
            file=sys.stderr,
            flush=True,
        )
        gc.enable()  # off until now in a harness process of its own (hyperhive/__main__.py)
        nursery.start_soon(trio.to_thread.run_sync, warm_up)


# What a harness needs only once it is serving: the first turn, the MCP server's first session,
# the page's first request. Start-up imports none of them (docs/performance.md); `warm_up`
# imports them in a worker thread right after, so neither the first turn nor the first page
# request waits on an import.
LATER_MODULES: Final = (
    "hyperhive.agent.stream",
    "hyperhive.agent.claude_process",
    "hyperhive.agent.wake",
    "hyperhive.agent.prompts",
    "hyperhive.wire.page",
    "hyperhive.wire.commands",
    "hyperhive.agent.tools",
    "hyperhive.config_repo.agent_toml",
)


def warm_up() -> None:
    """Import what start-up left for later (blocking: run it in a worker thread)."""
    begun = time.monotonic()
    for module in LATER_MODULES:
        importlib.import_module(module)
    import_sdk()
    _log.info("%s (%.1f s)", WARM_MARKER, time.monotonic() - begun)


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            print(f"hyperhive agent stopping ({signal.Signals(signum).name})", file=sys.stderr)
            scope.cancel()
            return
