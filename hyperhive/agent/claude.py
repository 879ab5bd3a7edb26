"""The Claude Code runtime: a warm ``claude -p`` per agent, fed turns over stream-json.

The runtime keeps one process per agent::

    claude -p --input-format stream-json --output-format stream-json --verbose
           --mcp-config <hive + extra servers> --strict-mcp-config
           --allowedTools mcp__hive[,extra...] --settings <prompts/claude-settings.json>
           --append-system-prompt <role prompt> --system-prompt-snapshot off
           [--resume <session>] [--model <model>, or default when resuming]

and writes each turn's wake prompt into it as one stream-json user message (the process and
its MCP servers are already up, so a warm turn starts in milliseconds). Within a turn the same
process takes ``/compact`` before the prompt (proactive compaction), ``/compact`` and the
prompt again after a prompt-too-long result, and an ``interrupt`` control request when the
harness cancels. A model change (back to the default too) is a ``set_model`` control request
between turns; a new session, a session claude cannot resume, or one too small to compact gets
a fresh process. A process resuming a session without a chosen model (page, ``agent.toml`` or
the operator's ``ANTHROPIC_MODEL``) is started with ``--model default``: otherwise claude would
carry on with the model the session last used.

The process is replaced, resuming the session, when it dies, stops answering (`Limits`), or
reaches `ClaudeOptions.max_turns` or `max_age`; one idle for `idle_release` is let go, and the
next wake starts cold. With ``warm=False`` every turn gets a process of its own (the behaviour
before warm turns). Each of these is published as a ``claude`` event.

The binary is the one bundled in the ``claude-agent-sdk`` wheel (so ``pip install`` brings it),
unless ``HYPERHIVE_CLAUDE_BIN`` names another, else ``claude`` on PATH.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from hyperhive.agent import login
from hyperhive.agent.mcp_server import open_mcp_socket, serve_mcp
from hyperhive.agent.outcome import Outcome
from hyperhive.agent.runtime import Publish, TurnControl, TurnReport, TurnRequest
from hyperhive.agent.settings import Role
from hyperhive.errors import ConfigError
from hyperhive.value import value
from hyperhive.wire.harness import AUTH_VARIABLES, HIVE_SERVER, ClaudeChanged, Note

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hyperhive.agent.claude_process import ClaudeProcess
    from hyperhive.agent.settings import AgentSettings
    from hyperhive.agent.stream import Result, TurnTracker

__all__ = [
    "ClaudeOptions",
    "ClaudeRuntime",
    "Limits",
    "claude_argv",
    "claude_env",
    "find_claude",
    "load_config_extras",
    "mcp_config",
]

ENV_CLAUDE_BIN: Final = "HYPERHIVE_CLAUDE_BIN"
_log = logging.getLogger(__name__)


def find_claude() -> Path:
    """The `claude` binary to run.

    Raises:
        ConfigError: none found; the text says how to get one.
    """
    if explicit := os.environ.get(ENV_CLAUDE_BIN):
        return Path(explicit)
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "_bundled" / "claude"
        if bundled.is_file():
            return bundled
    if found := shutil.which("claude"):
        return Path(found)
    raise ConfigError(
        "no claude binary: install hyperhive with its dependencies (claude-agent-sdk bundles "
        f"one), put claude on PATH, or set {ENV_CLAUDE_BIN}"
    )


MAX_INSTRUCTIONS: Final = 64 * 1024


@value
class ConfigExtras:
    """What the agent's deployed ``agent.toml`` adds to each claude: its MCP servers (merged
    into --mcp-config), their tools and Claude's allowed tools (merged into --allowedTools),
    its model (the default when nobody chose one on the agent's page) and the standing
    instructions of its ``CLAUDE.md`` (appended to the system prompt)."""

    servers: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    allowed_tools: tuple[str, ...] = ()
    model: str | None = None
    instructions: str = ""


def load_config_extras(config_dir: Path | None) -> ConfigExtras:
    """Read the agent's ``agent.toml`` (and ``CLAUDE.md``) from its config directory.

    ``mcp_servers.<key>.allowed_tools`` patterns map to ``mcp__<key>__<pattern>``; ``"*"``
    allows the whole server. No file means nothing extra (an agent whose config did not come
    through an approval).

    Raises:
        ConfigError: ``agent.toml`` exists but is not valid; the text names the field.
    """
    if config_dir is None:
        return ConfigExtras()
    try:
        text = (config_dir / "agent.toml").read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {config_dir / 'agent.toml'}: {exc}") from exc
    try:
        with (config_dir / "CLAUDE.md").open("rb") as handle:
            instructions = handle.read(MAX_INSTRUCTIONS).decode("utf-8", errors="replace")
    except OSError:
        instructions = ""
    if text is None:
        return ConfigExtras(instructions=instructions.strip())
    from hyperhive.config_repo.agent_toml import parse_agent_toml  # at a turn, not at start

    config = parse_agent_toml(text)
    servers: dict[str, dict[str, Any]] = {}
    allowed: list[str] = list(config.allowed_tools)
    for key, server in config.mcp_servers.items():
        servers[key] = {
            "type": "stdio",
            "command": server.command,
            "args": list(server.args),
            "env": dict(server.env),
        }
        allowed += [f"mcp__{key}" if p == "*" else f"mcp__{key}__{p}" for p in server.allowed_tools]
    return ConfigExtras(servers, tuple(allowed), config.model, instructions.strip())


def mcp_config(mcp_socket: Path, extra: ConfigExtras) -> dict[str, Any]:
    """The --mcp-config object: the hive server (`agent mcp`, a relay to this harness's own
    MCP server on `mcp_socket`) plus extras."""
    hive = {
        "type": "stdio",
        "command": sys.executable,
        "args": ["-m", "hyperhive", "agent", "mcp", "--connect", str(mcp_socket)],
    }
    return {"mcpServers": {HIVE_SERVER: hive, **extra.servers}}


def claude_argv(
    claude: Path,
    *,
    mcp: Mapping[str, Any],
    allowed_tools: tuple[str, ...],
    system_prompt: str,
    settings_json: str,
    resume: str | None,
    model: str | None,
) -> list[str]:
    """The command line for one turn (pure)."""
    argv = [
        str(claude),
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--mcp-config",
        json.dumps(mcp, separators=(",", ":")),
        "--strict-mcp-config",
        "--allowedTools",
        ",".join((f"mcp__{HIVE_SERVER}", *allowed_tools)),
        "--settings",
        settings_json,
        "--append-system-prompt",
        system_prompt,
        # The prompt is re-read every turn, so a new harness or pronoun change takes effect
        # without waiting for a compaction (research note, pitfall P1).
        "--system-prompt-snapshot",
        "off",
    ]
    if resume:
        argv += ["--resume", resume]
    if model:
        argv += ["--model", model]
    elif resume:
        # Resumed over stream-json, claude carries on with the model the session last used;
        # "default" is its own name for the default model.
        argv += ["--model", "default"]
    return argv


def claude_env(base: Mapping[str, str], credentials: Mapping[str, str]) -> dict[str, str]:
    """The environment for claude: the harness's own, quietened, with stored credentials.

    Credentials already in the environment win over ones entered through the login flow or
    given by the daemon.
    """
    env = {k: v for k, v in base.items() if k != "CLAUDECODE"}
    env.update(
        {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            # Without this, MCP tools hide behind ToolSearch and the model may not see `send`.
            "ENABLE_TOOL_SEARCH": "false",
        }
    )
    if not any(env.get(name) for name in AUTH_VARIABLES):
        env.update(credentials)
    return env


@value
class Limits:
    """How long a process may take before it counts as wedged (seconds)."""

    answer_timeout: float = 60.0  # no output at all after a message
    stall_timeout: float = 900.0  # no output inside a turn (tool progress arrives every 30 s)
    interrupt_grace: float = 15.0  # after an interrupt request, before the kill
    exit_grace: float = 10.0  # after stdin closes, before the kill
    control_timeout: float = 10.0  # for a control request's answer


@value
class ClaudeOptions:
    """How long a Claude process lives. Durations in seconds; 0 means no limit."""

    warm: bool = True  # False: one process per turn
    idle_release: float = 600.0  # let an idle process go after this long
    max_age: float = 4 * 3600.0  # replace a process this old (between turns)
    max_turns: int = 100  # replace a process after this many turns
    limits: Limits = attrs.field(factory=Limits)


@attrs.define(eq=False)  # a mutable holder: equal only to itself
class ClaudeRuntime:
    """See the module docstring. `run` must be running while turns are."""

    settings: AgentSettings
    claude: Path
    env: Mapping[str, str] | None = None  # default: os.environ at each start
    options: ClaudeOptions = ClaudeOptions()
    name: str = "claude"
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    _mcp_socket: Path | None = attrs.field(default=None, init=False)
    _current: ClaudeProcess | None = attrs.field(default=None, init=False)
    _lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    _idle_since: float = attrs.field(default=0.0, init=False)
    _busy: bool = attrs.field(default=False, init=False)
    _warm_start: bool | None = attrs.field(default=None, init=False)
    _publish: Publish = attrs.field(default=lambda payload: None, init=False)

    @property
    def process(self) -> ClaudeProcess | None:
        """The warm process, if there is one (for the agent's page and tests)."""
        return self._current

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the processes and their ``hive`` MCP server: pump them, let idle or old ones go.
        Never returns.

        Cancellation: the warm process is stopped (SIGTERM, then SIGKILL), the MCP server's
        socket removed.
        """
        manager = self.settings.role is Role.MANAGER
        with open_mcp_socket() as mcp_socket, trio.CancelScope() as mcp_scope:
            async with trio.open_nursery() as outer:
                await outer.start(
                    functools.partial(serve_mcp, mcp_socket, self.settings.socket, manager=manager)
                )
                self._mcp_socket = mcp_socket
                await self._run(task_status)
                mcp_scope.cancel()

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._release_forever)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None
                current, self._current = self._current, None
                if current is not None:
                    with trio.CancelScope(shield=True):
                        await current.kill()
                nursery.cancel_scope.cancel()

    # -- one turn -------------------------------------------------------------------------------

    async def run_turn(
        self, request: TurnRequest, control: TurnControl, publish: Publish
    ) -> TurnReport:
        self._publish = publish
        from hyperhive.agent.stream import TurnTracker  # the parser loads at the first turn

        tracker = TurnTracker()
        async with self._lock:
            self._busy = True
            try:
                report = await self._turn(request, control, publish, tracker)
            except BaseException:
                await self._drop("the turn was cancelled", kill=True)
                raise
            finally:
                self._busy = False
                self._idle_since = trio.current_time()
                self._changed.set()
            if tracker.session_id:
                self._store_session(tracker.session_id)
            await self._after_turn()
        return report

    async def _turn(
        self, request: TurnRequest, control: TurnControl, publish: Publish, tracker: TurnTracker
    ) -> TurnReport:
        fresh = request.fresh_session
        if request.prompt is None and not self._has_conversation():
            return TurnReport(Outcome.OK, tracker, "no conversation to compact yet")
        self._warm_start = None
        outcome, detail, again = await self._attempt(request, control, tracker, fresh=fresh)
        if again and not control.interrupt.is_set():
            publish(Note(f"{detail}; retrying in a fresh session"))
            retry = attrs.evolve(request, compact_first=False)
            outcome, detail, _ = await self._attempt(retry, control, tracker, fresh=True)
        return TurnReport(outcome, tracker, detail, warm=self._warm_start)

    def _has_conversation(self) -> bool:
        current = self._current
        if current is not None and current.alive:
            return current.has_conversation
        return self._stored_session() is not None

    async def _attempt(
        self, request: TurnRequest, control: TurnControl, tracker: TurnTracker, *, fresh: bool
    ) -> tuple[Outcome, str, bool]:
        """One go in one process. Returns (outcome, detail, worth retrying in a fresh session)."""
        for replacements in range(2):
            claude = await self._process_for(request, fresh=fresh)
            if isinstance(claude, str):
                return Outcome.FAILED, claude, False
            results_before = len(tracker.results)
            claude.attach(tracker)
            try:
                result = await self._converse(request, claude, control, tracker)
            finally:
                claude.detach()
            silent = claude.unanswered and len(tracker.results) == results_before
            if result is None and silent and replacements == 0:
                # It took the message and said nothing at all: nothing happened, so a new
                # process can take the same message at once.
                await self._drop(claude.wedged or "it did not answer", kill=True)
                continue
            return self._judge(result, claude, tracker)
        return Outcome.FAILED, "claude did not answer twice in a row", False

    async def _converse(
        self,
        request: TurnRequest,
        claude: ClaudeProcess,
        control: TurnControl,
        tracker: TurnTracker,
    ) -> Result | None:
        publish = self._publish
        if claude.has_conversation and (request.compact_first or request.prompt is None):
            publish(Note("compacting the conversation"))
            result = await claude.ask("/compact", control)
            if request.prompt is None or result is None or control.interrupt.is_set():
                return result
        if request.prompt is None:
            return None
        result = await claude.ask(request.prompt, control)
        if result is None or tracker.outcome() is not Outcome.PROMPT_TOO_LONG:
            return result
        if control.interrupt.is_set():
            return result
        before = tracker.compactions
        publish(Note("prompt too long: compacting, then retrying the turn"))
        compact = await claude.ask("/compact", control)
        if compact is None or tracker.compactions == before:
            return result  # nothing to compact: the caller starts a fresh session
        return await claude.ask(request.prompt, control)

    @staticmethod
    def _judge(
        result: Result | None, claude: ClaudeProcess, tracker: TurnTracker
    ) -> tuple[Outcome, str, bool]:
        if result is None:
            return Outcome.FAILED, claude.failure(), False
        outcome = tracker.outcome()
        detail = result.text.strip().splitlines()[0][:300] if result.text.strip() else ""
        if outcome is Outcome.NO_SESSION:
            return outcome, f"session {claude.session_id} is gone", True
        if outcome is Outcome.PROMPT_TOO_LONG and claude.has_conversation:
            return outcome, "prompt too long and compaction did not help", True
        return outcome, detail, False

    # -- the process ----------------------------------------------------------------------------

    async def _process_for(self, request: TurnRequest, *, fresh: bool) -> ClaudeProcess | str:
        """The warm process if it can take this turn, else a new one (or why none started)."""
        current = self._current
        if current is not None:
            reason = await self._unfit(current, request, fresh=fresh)
            if reason is None:
                if self._warm_start is None:
                    self._warm_start = True
                return current
            await self._drop(reason)
        if self._warm_start is None:
            self._warm_start = False
        resume = None if fresh else self._stored_session()
        return await self._spawn(model=self._wanted_model(request), resume=resume)

    def _wanted_model(self, request: TurnRequest) -> str | None:
        """The model chosen on the agent's page, else its deployed ``agent.toml``'s, else the
        operator's ``ANTHROPIC_MODEL`` (the harness's environment or a stored gateway login).

        The last matters for a resumed process, which is otherwise started with
        ``--model default`` and would not honour the variable.
        """
        if request.model:
            return request.model
        try:
            deployed = load_config_extras(self.settings.config_dir).model
        except ConfigError:  # the turn fails with it when claude starts
            deployed = None
        return deployed or self._env().get("ANTHROPIC_MODEL") or None

    async def _unfit(
        self, claude: ClaudeProcess, request: TurnRequest, *, fresh: bool
    ) -> str | None:
        """Why `claude` cannot take this turn (None: it can)."""
        if not claude.alive:
            return f"it had exited ({claude.process.returncode})"
        if fresh:
            return "a new session was asked for"
        if claude.hive_status not in (None, "connected"):
            return f"its hive tools are {claude.hive_status}"
        wanted = self._wanted_model(request)
        if wanted != claude.model:
            # No model (null) is claude's default model: that change applies in place too.
            if await claude.control("set_model", model=wanted):
                self._publish(ClaudeChanged("model", claude.pid, model=wanted))
                claude.model = wanted
                return None
            return f"the model changed to {wanted or 'the default'}"
        return None

    async def _spawn(self, *, model: str | None, resume: str | None) -> ClaudeProcess | str:
        if self._nursery is None:
            raise RuntimeError("ClaudeRuntime.run must be running")
        try:
            argv = self._argv(model, resume)
        except ConfigError as exc:  # the config's agent.toml: the turn fails with its errors
            return f"cannot start claude: {exc}"
        try:
            process = await trio.lowlevel.open_process(
                argv,
                stdin=-1,
                stdout=-1,
                stderr=-1,
                cwd=self.settings.paths.workdir,
                env=self._env(),
                # Same process group as the harness: whatever kills the harness's group (a
                # sandbox teardown, a test) takes claude with it instead of leaving it to
                # finish a turn nobody will ack.
            )
        except OSError as exc:
            return f"cannot start {self.claude}: {exc}"
        from hyperhive.agent.claude_process import ClaudeProcess

        claude = ClaudeProcess(
            process,
            self._publish,
            model=model,
            resumed=resume,
            limits=self.options.limits,
            on_exit=lambda: self._changed.set(),
        )
        claude.start(self._nursery)
        self._current = claude
        self._publish(ClaudeChanged("started", claude.pid, resume=resume, model=model))
        return claude

    async def _drop(self, reason: str, *, kill: bool = False) -> None:
        """Let the current process go: close its stdin and wait (or kill it)."""
        claude, self._current = self._current, None
        if claude is None:
            return
        age = trio.current_time() - claude.started_at
        code = claude.process.returncode
        if code is None:  # bounded: close waits its grace, then kills
            with trio.CancelScope(shield=True):
                code = await (claude.kill() if kill else claude.close())
        self._publish(
            ClaudeChanged(
                "stopped",
                claude.pid,
                reason=reason,
                turns=claude.turns,
                age_seconds=round(age, 1),
                exit=code,
            )
        )

    async def _after_turn(self) -> None:
        claude = self._current
        if claude is None:
            return
        claude.turns += 1
        if not claude.alive:
            # Died right after it answered the turn: between turns, not a turn without a result.
            reason = await claude.exited_between_turns() if claude.answered else claude.failure()
            await self._drop(reason)
            return
        if not self.options.warm:
            await self._drop("one process per turn (cold mode)")
            return
        limit = self._limit_reached(claude)
        if limit is not None:
            await self._drop(limit)
            await self._spawn(model=claude.model, resume=self._stored_session())  # warm again

    def _limit_reached(self, claude: ClaudeProcess) -> str | None:
        options = self.options
        if options.max_turns and claude.turns >= options.max_turns:
            return f"turn limit ({options.max_turns})"
        if options.max_age and trio.current_time() - claude.started_at >= options.max_age:
            return f"age limit ({options.max_age:.0f}s)"
        return None

    async def _release_forever(self) -> None:
        """Between turns: let an idle or old process go, note one that died."""
        while True:
            self._changed = trio.Event()
            claude = self._current
            deadline = math.inf
            if claude is not None and not self._busy:
                if not claude.alive:
                    async with self._lock:
                        if self._current is claude:
                            await self._drop(await claude.exited_between_turns())
                    continue
                if self.options.idle_release:
                    deadline = self._idle_since + self.options.idle_release
                if self.options.max_age:
                    deadline = min(deadline, claude.started_at + self.options.max_age)
            with trio.move_on_at(deadline):
                await self._changed.wait()
                continue
            async with self._lock:  # a turn may have started and ended meanwhile: look again
                if claude is None or self._current is not claude or self._busy:
                    continue
                too_old = self._limit_reached(claude)
                idle = self.options.idle_release
                if too_old is not None:
                    await self._drop(too_old)
                    await self._spawn(model=claude.model, resume=self._stored_session())
                elif idle and trio.current_time() >= self._idle_since + idle:
                    await self._drop(f"idle for {idle:.0f}s: the next wake starts cold")

    def _argv(self, model: str | None, resume: str | None) -> list[str]:
        from hyperhive.agent import prompts  # at the first spawn, not at start-up

        extra = load_config_extras(self.settings.config_dir)
        system = prompts.system_prompt(self.settings)
        if extra.instructions:
            system += "\n\n## Standing instructions (your /config/CLAUDE.md)\n\n"
            system += extra.instructions
        return claude_argv(
            self.claude,
            mcp=mcp_config(self._need_mcp_socket(), extra),
            allowed_tools=extra.allowed_tools,
            system_prompt=system,
            settings_json=prompts.claude_settings(),
            resume=resume,
            model=model or extra.model,
        )

    def _need_mcp_socket(self) -> Path:
        if self._mcp_socket is None:
            raise RuntimeError("ClaudeRuntime.run must be running")
        return self._mcp_socket

    def _env(self) -> dict[str, str]:
        base = self.env if self.env is not None else os.environ
        return claude_env(base, login.stored_credentials(self.settings.paths))

    def _stored_session(self) -> str | None:
        try:
            text = self.settings.paths.session.read_text().strip()
        except OSError:
            return None
        return text or None

    def _store_session(self, session_id: str) -> None:
        try:
            self.settings.paths.session.write_text(session_id + "\n")
        except OSError as exc:
            _log.warning("cannot remember session %s: %s", session_id, exc)
