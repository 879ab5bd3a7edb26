"""Claude Code's stream-json output, parsed: pure code, no I/O, no trio.

`parse_line` turns one stdout line into zero or more raw event objects (tolerating blank lines,
non-JSON noise and the upstream bug where a ``rate_limit_event`` is written into the middle of
another line). `decode` turns a raw object into a typed event; unknown types become `Other`, so
a newer CLI never breaks the harness. `TurnTracker` folds the events of one turn into what the
harness needs: the outcome, token usage, cost, context size, model and tool calls.

Facts this relies on (research note `claude-mcp.md`, captured from CLI 2.1.330):

- ``is_error`` is the truth, not ``subtype`` (API errors come as ``subtype: "success"``);
- one API response arrives as one ``assistant`` event per content block, all sharing
  ``message.id``, each carrying the ``message_start`` usage snapshot (so never sum them);
- ``total_cost_usd`` (and ``modelUsage``) are cumulative per process in stream-json input
  mode; the per-result figures are in ``model_usage_since_last_result``, which also counts a
  compaction's own summary call (``usage`` does not);
- subscription limits arrive as ``rate_limit_event`` with ``status: "rejected"`` and
  ``resetsAt`` (unix seconds); API-key 429s as ``api_error_status: 429``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from hyperhive.agent.outcome import Outcome

__all__ = [
    "ApiRetry",
    "AssistantBlock",
    "Compacted",
    "ControlResponse",
    "Init",
    "Other",
    "PermissionDenied",
    "RateLimit",
    "Result",
    "StatusChange",
    "StreamEvent",
    "ToolProgress",
    "ToolResult",
    "TurnTracker",
    "Usage",
    "classify",
    "decode",
    "parse_line",
]

_EVENT_START: Final = '{"type":'
# A torn line is salvaged only when it is short enough to rescan cheaply: each attempt may scan
# the rest of the line, so both the length and the number of attempts are bounded.
_SALVAGE_MAX_CHARS: Final = 1024 * 1024
_SALVAGE_MAX_ATTEMPTS: Final = 32
# Counts and ids land in sqlite (signed 64 bits) and in arithmetic: anything past 2**53 (or
# not finite) is not a real count, so it reads as missing.
_MAX_INT: Final = 2**53


def parse_line(line: bytes | str) -> list[dict[str, Any]]:
    """The JSON objects on one stdout line: usually one, none for noise, more for a torn line.

    Never raises, whatever the line holds (invalid UTF-8, ``NaN``, ``1e400``, nesting deeper
    than the interpreter's recursion limit, a 5000-digit integer). A line that is not one JSON
    object is scanned for embedded ``{"type":...}`` objects, which recovers a
    ``rate_limit_event`` spliced into another event's text (anthropics/claude-code#49640);
    whatever cannot be recovered is dropped.
    """
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text:
        return []
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, too many digits, too deep
        return _salvage(text)
    return [obj] if isinstance(obj, dict) else []


def _salvage(text: str) -> list[dict[str, Any]]:
    if len(text) > _SALVAGE_MAX_CHARS:
        return []
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    start = text.find(_EVENT_START)
    attempts = 0
    while start >= 0 and attempts < _SALVAGE_MAX_ATTEMPTS:
        attempts += 1
        try:
            obj, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            start = text.find(_EVENT_START, start + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        start = text.find(_EVENT_START, end)
    return found


# --------------------------------------------------------------------------------------------
# Typed events
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Usage:
    """Token counts; `prompt` is what the model read (the context size of that inference)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    @property
    def prompt(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            min(self.input_tokens + other.input_tokens, _MAX_INT),
            min(self.output_tokens + other.output_tokens, _MAX_INT),
            min(self.cache_read_tokens + other.cache_read_tokens, _MAX_INT),
            min(self.cache_creation_tokens + other.cache_creation_tokens, _MAX_INT),
        )

    @classmethod
    def from_api(cls, raw: object) -> Usage:
        """From the API's snake_case usage object (missing or malformed counts are 0)."""
        d = raw if isinstance(raw, Mapping) else {}
        return cls(
            _count(d.get("input_tokens")),
            _count(d.get("output_tokens")),
            _count(d.get("cache_read_input_tokens")),
            _count(d.get("cache_creation_input_tokens")),
        )

    @classmethod
    def from_model_usage(cls, raw: object) -> Usage:
        """From the CLI's camelCase per-model usage object."""
        d = raw if isinstance(raw, Mapping) else {}
        return cls(
            _count(d.get("inputTokens")),
            _count(d.get("outputTokens")),
            _count(d.get("cacheReadInputTokens")),
            _count(d.get("cacheCreationInputTokens")),
        )


@attrs.frozen
class Init:
    """``system/init``: the start of every turn (once per user message in stream-json input)."""

    session_id: str
    model: str
    mcp_servers: tuple[tuple[str, str], ...]  # (name, status)
    tools: tuple[str, ...]


@attrs.frozen
class AssistantBlock:
    """One content block of an assistant message (text, thinking, tool_use, ...)."""

    message_id: str
    model: str
    block_type: str
    text: str = ""
    tool_id: str = ""
    tool_name: str = ""
    tool_input: Mapping[str, Any] = attrs.field(factory=dict)
    usage: Usage = Usage()
    error: str | None = None  # "rate_limit" | "invalid_request" | "authentication_failed" ...
    api_error_status: int | None = None
    subagent: bool = False

    @property
    def synthetic(self) -> bool:
        """Written by the CLI itself (an API error), not by the model."""
        return self.model == "<synthetic>"


@attrs.frozen
class ToolResult:
    tool_use_id: str
    is_error: bool
    text: str


@attrs.frozen
class RateLimit:
    """``rate_limit_event``: ``status`` is allowed, allowed_warning or rejected."""

    status: str
    resets_at: float | None
    limit_type: str | None


@attrs.frozen
class ApiRetry:
    attempt: int
    max_retries: int
    delay_ms: int
    error_status: int | None
    error: str | None


@attrs.frozen
class Compacted:
    """``system/compact_boundary``: the conversation was summarised."""

    trigger: str  # "manual" | "auto"
    pre_tokens: int
    post_tokens: int


@attrs.frozen
class StatusChange:
    status: str | None  # "requesting" | "compacting" | None


@attrs.frozen
class PermissionDenied:
    tool_name: str
    message: str


@attrs.frozen
class ToolProgress:
    tool_name: str
    elapsed_seconds: float


@attrs.frozen
class ControlResponse:
    request_id: str
    subtype: str


@attrs.frozen
class Result:
    """``result``: the last line of a turn."""

    is_error: bool
    subtype: str
    terminal_reason: str | None
    text: str
    session_id: str
    usage: Usage
    cost_usd: float | None  # this result's own cost, when the CLI says it
    total_cost_usd: float
    context_window: int | None
    api_error_status: int | None
    api_error: str | None
    num_turns: int
    duration_ms: int
    errors: tuple[str, ...]


@attrs.frozen
class Other:
    """Anything the harness does not act on (stream_event, thinking_tokens, new types...)."""

    type: str
    subtype: str | None


StreamEvent = (
    Init
    | AssistantBlock
    | ToolResult
    | RateLimit
    | ApiRetry
    | Compacted
    | StatusChange
    | PermissionDenied
    | ToolProgress
    | ControlResponse
    | Result
    | Other
)


def decode(obj: Mapping[str, Any]) -> list[StreamEvent]:
    """The typed events in one raw object (an assistant or user line may hold several blocks).

    Never raises: a field of the wrong shape reads as empty.
    """
    kind = _str(obj.get("type"))
    subtype = obj.get("subtype")
    if kind == "system":
        return [_decode_system(obj, _str(subtype))]
    if kind == "assistant":
        return list(_decode_assistant(obj))
    if kind == "user":
        return list(_decode_user(obj))
    if kind == "result":
        return [_decode_result(obj)]
    if kind == "rate_limit_event":
        return [_rate_limit(obj.get("rate_limit_info"))]
    if kind == "tool_progress":
        return [ToolProgress(_str(obj.get("tool_name")), _float(obj.get("elapsed_time_seconds")))]
    if kind == "control_response":
        response = _map(obj.get("response"))
        return [ControlResponse(_str(response.get("request_id")), _str(response.get("subtype")))]
    return [Other(kind, subtype if isinstance(subtype, str) else None)]


def _decode_system(obj: Mapping[str, Any], subtype: str) -> StreamEvent:
    match subtype:
        case "init":
            servers = tuple(
                (_str(s.get("name")), _str(s.get("status")))
                for s in _list(obj.get("mcp_servers"))
                if isinstance(s, Mapping)
            )
            tools = tuple(t for t in _list(obj.get("tools")) if isinstance(t, str))
            return Init(_str(obj.get("session_id")), _str(obj.get("model")), servers, tools)
        case "compact_boundary":
            meta = _map(obj.get("compact_metadata"))
            return Compacted(
                _str(meta.get("trigger")),
                _int(meta.get("pre_tokens")),
                _int(meta.get("post_tokens")),
            )
        case "status":
            status = obj.get("status")
            return StatusChange(status if isinstance(status, str) else None)
        case "api_retry":
            return ApiRetry(
                _int(obj.get("attempt")),
                _int(obj.get("max_retries")),
                _int(obj.get("retry_delay_ms")),
                _opt_int(obj.get("error_status")),
                _opt_str(obj.get("error")),
            )
        case "permission_denied":
            return PermissionDenied(_str(obj.get("tool_name")), _str(obj.get("message")))
    return Other("system", subtype or None)


def _decode_assistant(obj: Mapping[str, Any]) -> list[StreamEvent]:
    message = _map(obj.get("message"))
    common: dict[str, Any] = {
        "message_id": _str(message.get("id")),
        "model": _str(message.get("model")),
        "usage": Usage.from_api(message.get("usage")),
        "error": _opt_str(obj.get("error")),
        "api_error_status": _opt_int(obj.get("api_error_status")),
        "subagent": obj.get("parent_tool_use_id") is not None,
    }
    events: list[StreamEvent] = []
    for block in _list(message.get("content")):
        if not isinstance(block, Mapping):
            continue
        block_type = _str(block.get("type"))
        if block_type == "tool_use":
            tool_input = block.get("input")
            events.append(
                AssistantBlock(
                    block_type=block_type,
                    tool_id=_str(block.get("id")),
                    tool_name=_str(block.get("name")),
                    tool_input=tool_input if isinstance(tool_input, Mapping) else {},
                    **common,
                )
            )
        else:
            text = block.get("text", block.get("thinking", ""))
            events.append(AssistantBlock(block_type=block_type, text=_str(text), **common))
    return events


def _decode_user(obj: Mapping[str, Any]) -> list[StreamEvent]:
    content = _map(obj.get("message")).get("content")
    events: list[StreamEvent] = []
    for block in _list(content):
        if isinstance(block, Mapping) and block.get("type") == "tool_result":
            events.append(
                ToolResult(
                    _str(block.get("tool_use_id")),
                    block.get("is_error") is True,
                    _content_text(block.get("content")),
                )
            )
    return events or [Other("user", None)]


def _decode_result(obj: Mapping[str, Any]) -> Result:
    # Per result, the CLI's own account of every API call since the previous result (a
    # compaction's summary call included, which `usage` leaves out); `usage` otherwise.
    per_model = _map(obj.get("model_usage_since_last_result"))
    cost: float | None = None
    usage = Usage.from_api(obj.get("usage"))
    if per_model:
        cost = sum(max(0.0, _float(_map(u).get("costUSD"))) for u in per_model.values())
        usage = sum((Usage.from_model_usage(u) for u in per_model.values()), Usage())
    windows = [
        _int(_map(u).get("contextWindow"))
        for u in (per_model or _map(obj.get("modelUsage"))).values()
    ]
    errors = tuple(e for e in _list(obj.get("errors")) if isinstance(e, str))
    return Result(
        is_error=obj.get("is_error") is True,
        subtype=_str(obj.get("subtype")),
        terminal_reason=_opt_str(obj.get("terminal_reason")),
        text=_str(obj.get("result")),
        session_id=_str(obj.get("session_id")),
        usage=usage,
        cost_usd=cost,
        total_cost_usd=_float(obj.get("total_cost_usd")),
        context_window=max(windows) if any(windows) else None,
        api_error_status=_opt_int(obj.get("api_error_status")),
        api_error=_opt_str(obj.get("api_error")),
        num_turns=_int(obj.get("num_turns")),
        duration_ms=_int(obj.get("duration_ms")),
        errors=errors,
    )


def _rate_limit(raw: object) -> RateLimit:
    info = _map(raw)
    return RateLimit(
        _str(info.get("status")),
        _opt_float(info.get("resetsAt")),
        _opt_str(info.get("rateLimitType")),
    )


# --------------------------------------------------------------------------------------------
# One turn, folded
# --------------------------------------------------------------------------------------------


def classify(result: Result | None, *, rate_limit_rejected: bool = False) -> Outcome:
    """The outcome of a turn from its `result` line (None: the process ended without one)."""
    if result is None:
        return Outcome.FAILED
    if not result.is_error:
        return Outcome.OK
    reason = result.terminal_reason or ""
    if reason == "prompt_too_long":
        return Outcome.PROMPT_TOO_LONG
    if result.api_error_status == 429 or rate_limit_rejected:
        return Outcome.RATE_LIMITED
    if result.api_error_status in (401, 403) or result.api_error == "authentication_failed":
        return Outcome.NEEDS_LOGIN
    if reason.startswith("aborted"):
        return Outcome.INTERRUPTED
    if any("No conversation found" in e for e in result.errors):
        return Outcome.NO_SESSION
    return Outcome.FAILED


@attrs.define
class TurnTracker:
    """Feed it every event of a turn (`observe`); read the tallies when it ends.

    Context size is the prompt of the *last* real inference (what the model last read);
    usage and cost are summed over every `result` (a turn may hold several: a compaction and
    the retried prompt). Tool calls are counted once per tool-use id.
    """

    session_id: str | None = None
    model: str | None = None
    mcp_servers: dict[str, str] = attrs.field(factory=dict)
    usage: Usage = Usage()
    cost_usd: float = 0.0
    ctx_tokens: int | None = None
    context_window: int | None = None
    tool_calls: dict[str, int] = attrs.field(factory=dict)
    compactions: int = 0
    results: list[Result] = attrs.field(factory=list)
    resets_at: float | None = None
    rate_limit_rejected: bool = False
    auth_failed: bool = False
    assistant_text: list[str] = attrs.field(factory=list)
    # The process's total_cost_usd before this turn: in stream-json input mode it is
    # cumulative per process, so a warm process's later turns diff against it.
    total_cost_before: float = 0.0
    _tool_ids: set[str] = attrs.field(factory=set)

    def observe(self, event: StreamEvent) -> None:
        match event:
            case Init(session_id=sid, model=model, mcp_servers=servers):
                self.session_id = sid or self.session_id
                self.model = model or self.model
                self.mcp_servers.update(servers)
            case AssistantBlock() as block:
                self._on_block(block)
            case RateLimit(status="rejected", resets_at=resets):
                self.rate_limit_rejected = True
                self.resets_at = resets or self.resets_at
            case Compacted():
                self.compactions += 1
            case Result() as result:
                self._on_result(result)

    def _on_block(self, block: AssistantBlock) -> None:
        if block.synthetic:
            self.auth_failed |= block.error == "authentication_failed"
            return
        if block.model:
            self.model = block.model
        if not block.subagent and block.usage.prompt:
            self.ctx_tokens = block.usage.prompt
        if block.block_type == "tool_use" and block.tool_id not in self._tool_ids:
            self._tool_ids.add(block.tool_id)
            self.tool_calls[block.tool_name] = self.tool_calls.get(block.tool_name, 0) + 1
        elif block.block_type == "text" and not block.subagent and block.text:
            self.assistant_text.append(block.text)

    def _on_result(self, result: Result) -> None:
        self.results.append(result)
        self.session_id = result.session_id or self.session_id
        self.usage = self.usage + result.usage
        if result.cost_usd is not None:
            self.cost_usd += result.cost_usd
        else:  # cumulative per process: take the increase
            self.cost_usd += max(0.0, result.total_cost_usd - self.total_cost_before)
        self.total_cost_before = max(self.total_cost_before, result.total_cost_usd)
        self.context_window = result.context_window or self.context_window

    @property
    def tool_call_count(self) -> int:
        return sum(self.tool_calls.values())

    @property
    def last_result(self) -> Result | None:
        return self.results[-1] if self.results else None

    def outcome(self) -> Outcome:
        """The outcome of the last result seen (FAILED if there was none)."""
        last = self.last_result
        if last is not None and last.is_error and self.auth_failed:
            return Outcome.NEEDS_LOGIN
        return classify(last, rate_limit_rejected=self.rate_limit_rejected)


# --------------------------------------------------------------------------------------------
# Lenient field readers
# --------------------------------------------------------------------------------------------


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    """An integer within ±2**53, else None (NaN, infinity, 1e400 and 10**400 included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    number = int(value)
    return number if -_MAX_INT <= number <= _MAX_INT else None


def _int(value: object) -> int:
    number = _opt_int(value)
    return 0 if number is None else number


def _count(value: object) -> int:
    return max(0, _int(value))


def _opt_float(value: object) -> float | None:
    """A finite float within ±2**53, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and not -_MAX_INT <= value <= _MAX_INT:
        return None
    number = float(value)
    return number if math.isfinite(number) and abs(number) <= _MAX_INT else None


def _float(value: object) -> float:
    number = _opt_float(value)
    return 0.0 if number is None else number


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    parts = [_str(b.get("text")) for b in _list(content) if isinstance(b, Mapping) and "text" in b]
    return "\n".join(parts)
