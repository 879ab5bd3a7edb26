"""The Claude Code runtime: one ``claude -p`` process per turn, stream-json in and out.

Per turn the runtime starts::

    claude -p --input-format stream-json --output-format stream-json --verbose
           --mcp-config <hive + extra servers> --strict-mcp-config
           --allowedTools mcp__hive[,extra...] --settings <prompts/claude-settings.json>
           --append-system-prompt <role prompt> --system-prompt-snapshot off
           [--resume <session>] [--model <model>]

writes the wake prompt as one stream-json user message, and pumps stdout: every line goes to
the events bus (``stream``) and into a `TurnTracker`. Keeping stdin open until the turn's
``result`` lets the runtime send more in the same process: ``/compact`` before the prompt
(proactive compaction), ``/compact`` and the prompt again after a prompt-too-long result, and
an ``interrupt`` control request when the harness cancels the turn. A session the CLI cannot
resume, or one too small to compact, is replaced by a fresh session and the prompt retried
once.

The binary is the one bundled in the ``claude-agent-sdk`` wheel (so ``pip install`` brings it),
unless ``HYPERHIVE_CLAUDE_BIN`` names another, else ``claude`` on PATH.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from hyperhive.agent import login, prompts
from hyperhive.agent.runtime import Publish, TurnControl, TurnReport, TurnRequest, read_lines
from hyperhive.agent.runtime import stop_process as _stop_process
from hyperhive.agent.stream import Outcome, Result, TurnTracker, decode, parse_line
from hyperhive.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from hyperhive.agent.settings import AgentSettings

__all__ = [
    "ClaudeRuntime",
    "claude_argv",
    "claude_env",
    "find_claude",
    "load_extra_mcp",
    "mcp_config",
]

ENV_CLAUDE_BIN: Final = "HYPERHIVE_CLAUDE_BIN"
HIVE_SERVER: Final = "hive"
_MAX_LINE: Final = 32 * 1024 * 1024  # a tool result can be large; the SDK's 1 MiB cap bit people
_INTERRUPT_GRACE: Final = 15.0
_EXIT_GRACE: Final = 10.0
_STDERR_TAIL: Final = 20
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


@attrs.frozen
class ExtraServers:
    """MCP servers from the agent's config, merged into --mcp-config and --allowedTools."""

    servers: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    allowed_tools: tuple[str, ...] = ()


def load_extra_mcp(config_dir: Path | None) -> ExtraServers:
    """Read ``extra-mcp.json`` from the config dir: ``{key: {command, args, env, allowedTools}}``.

    ``allowedTools`` patterns map to ``mcp__<key>__<pattern>``; ``"*"`` (or none) allows the
    whole server. A missing file means no extra servers.

    Raises:
        ConfigError: the file exists but is not of that shape.
    """
    if config_dir is None:
        return ExtraServers()
    path = config_dir / "extra-mcp.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return ExtraServers()
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected an object of servers keyed by name")
    servers: dict[str, dict[str, Any]] = {}
    allowed: list[str] = []
    for key, entry in raw.items():
        if key == HIVE_SERVER or not isinstance(entry, dict) or not entry.get("command"):
            raise ConfigError(f"{path}: server {key!r} needs a command (and may not be 'hive')")
        servers[key] = {
            "type": "stdio",
            "command": str(entry["command"]),
            "args": [str(a) for a in entry.get("args", [])],
            "env": {str(k): str(v) for k, v in dict(entry.get("env", {})).items()},
        }
        patterns = entry.get("allowedTools") or ["*"]
        allowed += [f"mcp__{key}" if p == "*" else f"mcp__{key}__{p}" for p in patterns]
    return ExtraServers(servers, tuple(allowed))


def mcp_config(settings: AgentSettings, extra: ExtraServers) -> dict[str, Any]:
    """The --mcp-config object: the hive server (this harness's `agent mcp`) plus extras."""
    hive = {
        "type": "stdio",
        "command": sys.executable,
        "args": ["-m", "hyperhive", "agent", "mcp"],
        "env": {
            "HYPERHIVE_AGENT": settings.name,
            "HYPERHIVE_ROLE": settings.role.value,
            "HYPERHIVE_SOCKET": str(settings.socket),
            "HYPERHIVE_AGENT_STATE": str(settings.state_dir),
        },
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
    return argv


def claude_env(base: Mapping[str, str], credentials: Mapping[str, str]) -> dict[str, str]:
    """The environment for claude: the harness's own, quietened, with stored credentials.

    Credentials already in the environment win over ones entered through the login flow.
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
    if not (env.get("ANTHROPIC_API_KEY") or env.get("CLAUDE_CODE_OAUTH_TOKEN")):
        env.update(credentials)
    return env


def _user_message(text: str) -> bytes:
    message = {
        "type": "user",
        "message": {"role": "user", "content": text},
        "parent_tool_use_id": None,
        "session_id": "default",
        "uuid": str(uuid.uuid4()),
    }
    return json.dumps(message).encode() + b"\n"


def _interrupt_request() -> bytes:
    request = {
        "type": "control_request",
        "request_id": f"hyperhive-{uuid.uuid4().hex[:8]}",
        "request": {"subtype": "interrupt"},
    }
    return json.dumps(request).encode() + b"\n"


class _ClaudeProcess:
    """One running `claude -p` in stream-json mode, its stdout pumped into a tracker."""

    def __init__(self, process: trio.Process, tracker: TurnTracker, publish: Publish) -> None:
        self.process = process
        self.tracker = tracker
        self._publish = publish
        self._send_result, self._results = trio.open_memory_channel[Result](8)
        self.stderr_tail: list[str] = []

    async def pump_stdout(self) -> None:
        assert self.process.stdout is not None
        async with self._send_result:
            await read_lines(self.process.stdout, self._on_line, max_bytes=_MAX_LINE)

    def _on_line(self, line: bytes) -> None:
        for obj in parse_line(line):
            self._publish("stream", obj)
            for event in decode(obj):
                self.tracker.observe(event)
                if isinstance(event, Result):
                    self._send_result.send_nowait(event)

    async def pump_stderr(self) -> None:
        assert self.process.stderr is not None

        def on_line(line: bytes) -> None:
            text = line.decode("utf-8", "replace")
            self.stderr_tail = [*self.stderr_tail[-(_STDERR_TAIL - 1) :], text]
            self._publish("stderr", {"line": text})

        await read_lines(self.process.stderr, on_line, max_bytes=1024 * 1024)

    async def send(self, data: bytes) -> bool:
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def ask(self, text: str) -> Result | None:
        """Send one user message and wait for its result (None: claude ended without one)."""
        if not await self.send(_user_message(text)):
            return None
        try:
            return await self._results.receive()
        except trio.EndOfChannel:
            return None

    async def finish(self) -> int:
        """Close stdin and wait for claude to exit (bounded)."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        with trio.move_on_after(_EXIT_GRACE):
            return await self.process.wait()
        return await _stop_process(self.process)

    def failure(self) -> str:
        tail = " | ".join(self.stderr_tail[-3:])
        code = self.process.returncode
        return f"claude ended without a result (exit {code}){': ' + tail if tail else ''}"


@attrs.define
class ClaudeRuntime:
    """See the module docstring."""

    settings: AgentSettings
    claude: Path
    env: Mapping[str, str] | None = None  # default: os.environ at each turn
    name: str = "claude"

    async def run_turn(
        self, request: TurnRequest, control: TurnControl, publish: Publish
    ) -> TurnReport:
        tracker = TurnTracker()
        resume = None if request.fresh_session else self._stored_session()
        if request.prompt is None and resume is None:
            return TurnReport(Outcome.OK, tracker, "no conversation to compact yet")
        outcome, detail, again = await self._attempt(request, control, publish, tracker, resume)
        if again and not control.interrupt.is_set():
            publish("note", {"text": f"{detail}; retrying in a fresh session"})
            retry = attrs.evolve(request, compact_first=False)
            outcome, detail, _ = await self._attempt(retry, control, publish, tracker, None)
        if tracker.session_id:
            self._store_session(tracker.session_id)
        return TurnReport(outcome, tracker, detail)

    async def _attempt(
        self,
        request: TurnRequest,
        control: TurnControl,
        publish: Publish,
        tracker: TurnTracker,
        resume: str | None,
    ) -> tuple[Outcome, str, bool]:
        """One claude process. Returns (outcome, detail, worth retrying in a fresh session)."""
        try:
            process = await trio.lowlevel.open_process(
                self._argv(request, resume),
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
            return Outcome.FAILED, f"cannot start {self.claude}: {exc}", False
        claude = _ClaudeProcess(process, tracker, publish)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(claude.pump_stdout)
                nursery.start_soon(claude.pump_stderr)
                nursery.start_soon(self._watch_interrupt, control, claude)
                result = await self._converse(request, claude, publish, resume)
                await claude.finish()
                nursery.cancel_scope.cancel()
        finally:
            if process.returncode is None:
                await _stop_process(process)
        return self._judge(result, claude, resume, request)

    async def _converse(
        self, request: TurnRequest, claude: _ClaudeProcess, publish: Publish, resume: str | None
    ) -> Result | None:
        tracker = claude.tracker
        if resume is not None and (request.compact_first or request.prompt is None):
            publish("note", {"text": "compacting the conversation"})
            result = await claude.ask("/compact")
            if request.prompt is None or result is None:
                return result
        assert request.prompt is not None
        result = await claude.ask(request.prompt)
        if result is not None and tracker.outcome() is Outcome.PROMPT_TOO_LONG:
            before = tracker.compactions
            publish("note", {"text": "prompt too long: compacting, then retrying the turn"})
            compact = await claude.ask("/compact")
            if compact is None or tracker.compactions == before:
                return result  # nothing to compact: the caller starts a fresh session
            result = await claude.ask(request.prompt)
        return result

    def _judge(
        self,
        result: Result | None,
        claude: _ClaudeProcess,
        resume: str | None,
        request: TurnRequest,
    ) -> tuple[Outcome, str, bool]:
        if result is None:
            return Outcome.FAILED, claude.failure(), False
        outcome = claude.tracker.outcome()
        detail = result.text.strip().splitlines()[0][:300] if result.text.strip() else ""
        if outcome is Outcome.NO_SESSION:
            return outcome, f"session {resume} is gone", True
        if outcome is Outcome.PROMPT_TOO_LONG and resume is not None:
            return outcome, "prompt too long and compaction did not help", True
        return outcome, detail, False

    @staticmethod
    async def _watch_interrupt(control: TurnControl, claude: _ClaudeProcess) -> None:
        await control.interrupt.wait()
        await claude.send(_interrupt_request())
        await trio.sleep(_INTERRUPT_GRACE)
        await _stop_process(claude.process)

    def _argv(self, request: TurnRequest, resume: str | None) -> list[str]:
        extra = load_extra_mcp(self.settings.config_dir)
        return claude_argv(
            self.claude,
            mcp=mcp_config(self.settings, extra),
            allowed_tools=extra.allowed_tools,
            system_prompt=prompts.system_prompt(self.settings),
            settings_json=prompts.claude_settings(),
            resume=resume,
            model=request.model,
        )

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
