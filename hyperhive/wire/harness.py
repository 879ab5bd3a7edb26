"""The host <-> harness contract: what the daemon and an agent's harness agree on.

The daemon starts each agent's harness (`hyperhive agent serve`) with these environment
variables and reads the sentinel files the harness writes into the agent's state directory.
Both sides name them from here, so neither can drift from the other.

The harness's live events (tag: ``kind``) are typed here too: what its events bus publishes
and keeps, and what the agent's page reads (``{"seq", "at", "kind", "data"}``). `LIVE_EVENTS`
is their tag table.
"""

from __future__ import annotations

import re
from typing import Any, Final

import attrs

from hyperhive.value import value
from hyperhive.wire._bounds import INT64_MAX, number, strict, text
from hyperhive.wire._tags import TagTable

__all__ = [
    "AUTH_VARIABLES",
    "CREDENTIAL_VARIABLE",
    "DEPLOYED_SHA",
    "ENV_AGENT",
    "ENV_CONFIG",
    "ENV_OPERATOR_PRONOUNS",
    "ENV_ROLE",
    "ENV_SOCKET",
    "ENV_STATE",
    "ENV_TOOLS",
    "HIVE_SERVER",
    "LIVE_EVENTS",
    "MAX_REPORT_BYTES",
    "MODEL_FILE",
    "NEEDS_LOGIN",
    "PAGE_DIR",
    "PAGE_SOCKET",
    "RATE_LIMITED",
    "RECV_TOOL",
    "REPORT_FILE",
    "SOCKET_NAME",
    "TURN_STATES",
    "AgentReport",
    "ApiRetrying",
    "BackingOff",
    "ClaudeChanged",
    "HarnessStarted",
    "LastTurn",
    "LiveEventPayload",
    "LoggedIn",
    "ModelChosen",
    "NeedsLogin",
    "Note",
    "OutputLine",
    "RateLimitCleared",
    "RateLimited",
    "StateChanged",
    "StderrLine",
    "StreamLine",
    "TurnAcked",
    "TurnEnded",
    "TurnStarted",
    "UsageChanged",
]

# -- environment (set by the container backend, read by `hyperhive.agent.settings`) ----------
ENV_AGENT: Final = "HYPERHIVE_AGENT"  # the agent's name
ENV_ROLE: Final = "HYPERHIVE_ROLE"  # agent | manager
ENV_SOCKET: Final = "HYPERHIVE_SOCKET"  # the agent's hive.sock: its identity
ENV_STATE: Final = "HYPERHIVE_AGENT_STATE"  # its state directory (read-write)
ENV_CONFIG: Final = "HYPERHIVE_CONFIG_DIR"  # its config directory (read-only)
ENV_TOOLS: Final = "HYPERHIVE_TOOLS"  # its deploy's tools directory (/tools in a sandbox)
ENV_OPERATOR_PRONOUNS: Final = "HYPERHIVE_OPERATOR_PRONOUNS"  # as whoami answers them

# The agent's socket file, in the socket directory bound into its container.
SOCKET_NAME: Final = "hive.sock"

# The variables a credential the daemon hands an agent (`hyperhive login`) may set: Claude's own
# settings, the clouds' and a proxy's; nothing that changes how the harness itself runs (PATH,
# HOME, LD_*, HYPERHIVE_*). Both ends check it (core/credentials.py, agent/login.py).
CREDENTIAL_VARIABLE: Final = re.compile(
    r"(ANTHROPIC|CLAUDE_CODE|AWS|CLOUD_ML|VERTEX_REGION|GOOGLE_CLOUD)_[A-Z0-9_]{1,64}"
    r"|HTTPS?_PROXY|NO_PROXY|API_TIMEOUT_MS"
)
# Claude authenticates with any of these (no `claude auth status` needed), by login method.
AUTH_VARIABLES: Final = {
    "ANTHROPIC_API_KEY": "api_key",
    "CLAUDE_CODE_OAUTH_TOKEN": "oauth_token",
    "ANTHROPIC_AUTH_TOKEN": "auth_token",
    "CLAUDE_CODE_USE_BEDROCK": "bedrock",
    "CLAUDE_CODE_USE_VERTEX": "vertex",
}

# -- sentinels (written by the harness in the state directory, read by the daemon's view) -----
NEEDS_LOGIN: Final = "hyperhive-needs-login"  # present while claude has no credentials
RATE_LIMITED: Final = "hyperhive-rate-limited"  # present while it waits out a rate limit
MODEL_FILE: Final = "hyperhive-model"  # the model chosen on the agent's page
# Written by the config flow in the agent's host directory when it deploys a commit.
DEPLOYED_SHA: Final = "deployed-sha"
# The harness's report of what it is doing and why (`AgentReport`, JSON), rewritten whole on
# every change; the daemon reads it as hostile input, at most MAX_REPORT_BYTES.
REPORT_FILE: Final = "hyperhive-report.json"
MAX_REPORT_BYTES: Final = 8192
# The agent's page socket (`hyperhive.wire.page`): <socket dir>/page/page.sock, the agent's to
# write (the daemon opens it without following links: `hyperhive.web.harness_link`).
PAGE_DIR: Final = "page"
PAGE_SOCKET: Final = "page.sock"
# The hive's own MCP server, as claude's --mcp-config names it, and its recv tool as claude
# names that: a turn running it waits on mail.
HIVE_SERVER: Final = "hive"
RECV_TOOL: Final = f"mcp__{HIVE_SERVER}__recv"


# -- the harness's report (written by the harness, read by the daemon's view) -----------------
# Read from a file the agent can write: every field is bounded (checked when decoded, as a
# request's are), so the daemon shows only values inside these bounds.

TURN_STATES: Final = frozenset(
    {
        "starting",
        "idle",
        "running",
        "compacting",
        "rate_limited",
        "backing_off",
        "needs_login",
        "paused",
        "disconnected",
    }
)
_WHEN: Final = number(0, 1e11)  # wall-clock seconds, well past any real stamp
_COUNT: Final = number(0, INT64_MAX)


@strict  # in a file its agent can write: decoded as strictly as a request
@value
class ApiRetrying:
    """Claude is retrying an API call inside the running turn (``system/api_retry``)."""

    attempt: int = attrs.field(metadata=number(0, 1000))
    max_retries: int = attrs.field(metadata=number(0, 1000))
    error: str = attrs.field(default="", metadata=text(300))
    status: int | None = attrs.field(default=None, metadata=number(0, 999))


@strict  # in a file its agent can write: decoded as strictly as a request
@value
class LastTurn:
    """How the last turn ended: when, after how long, with which outcome; the context it
    ended with and what it cost."""

    ended_at: float = attrs.field(metadata=_WHEN)
    duration_ms: int = attrs.field(metadata=_COUNT)
    result: str = attrs.field(metadata=text(32))  # ok, failed, rate_limited, needs_login, ...
    detail: str = attrs.field(default="", metadata=text(300))
    ctx_tokens: int | None = attrs.field(default=None, metadata=_COUNT)  # what it last read
    cost_usd: float | None = attrs.field(default=None, metadata=number(0, 1e9))


@strict  # in a file its agent can write: decoded as strictly as a request
@value
class AgentReport:
    """What the harness is doing, and why (`REPORT_FILE`, and the page's `PageState.report`).

    ``state`` is one of `TURN_STATES`; ``since`` when it entered it; ``detail`` the reason
    (the login probe's, the failure's); ``until`` when a wait ends (a rate limit's reset, a
    backoff's retry), wall-clock; while a turn runs, ``tool`` the tool it waits on (`RECV_TOOL`:
    waiting for mail; None: the model is thinking) and ``retry`` an API retry in progress;
    ``interrupted`` that its last turn was cancelled and its messages wait for new work; then
    its last turn, how many turns it ran and how many failed in a row.
    """

    state: str = attrs.field(metadata=text(32))
    since: float = attrs.field(metadata=_WHEN)
    detail: str = attrs.field(default="", metadata=text(300))
    until: float | None = attrs.field(default=None, metadata=_WHEN)
    tool: str | None = attrs.field(default=None, metadata=text(200))
    retry: ApiRetrying | None = None
    interrupted: bool = False
    last_turn: LastTurn | None = None
    turns: int = attrs.field(default=0, metadata=_COUNT)
    failures: int = attrs.field(default=0, metadata=number(0, 1000))


# -- the harness's live events (agent/events.py publishes them) -------------------------------

LIVE_EVENTS = TagTable("live event")


@LIVE_EVENTS.tag("note")
@value
class Note:
    """A line of harness commentary (shown on the agent's page and logged)."""

    text: str


@LIVE_EVENTS.tag("started")
@value
class HarnessStarted:
    """The harness connected and put back `requeued` messages a previous run left in flight."""

    requeued: int
    agent: str


@LIVE_EVENTS.tag("state")
@value
class StateChanged:
    """idle, running, compacting, rate_limited, backing_off, needs_login, disconnected."""

    state: str


@LIVE_EVENTS.tag("turn_started")
@value
class TurnStarted:
    wake_from: str
    messages: int
    model: str | None
    fresh_session: bool
    compact_first: bool


@LIVE_EVENTS.tag("turn_ended")
@value
class TurnEnded:
    outcome: str
    detail: str
    duration_ms: int
    ctx: int | None
    cost_usd: float | None
    tool_calls: dict[str, int]
    model: str | None
    warm: bool | None


@LIVE_EVENTS.tag("usage")
@value
class UsageChanged:
    ctx: int | None
    cost_usd: float | None
    context_window: int | None


@LIVE_EVENTS.tag("acked")
@value
class TurnAcked:
    """The turn's messages were acked."""

    count: int


@LIVE_EVENTS.tag("model")
@value
class ModelChosen:
    """The model from the next turn on (None: the runtime's default)."""

    model: str | None


@LIVE_EVENTS.tag("rate_limited")
@value
class RateLimited:
    resets_at: float | None
    retry_in: float
    detail: str


@LIVE_EVENTS.tag("backing_off")
@value
class BackingOff:
    """A turn failed; its messages are retried in `retry_in` seconds."""

    outcome: str
    detail: str
    retry_in: float


@LIVE_EVENTS.tag("rate_limit_cleared")
@value
class RateLimitCleared:
    pass


@LIVE_EVENTS.tag("needs_login")
@value
class NeedsLogin:
    detail: str


@LIVE_EVENTS.tag("logged_in")
@value
class LoggedIn:
    method: str


@LIVE_EVENTS.tag("claude")
@value
class ClaudeChanged:
    """A Claude process `action`: ``started`` (with resume, model), ``stopped`` (reason,
    turns, age_seconds, exit) or ``model`` (changed in place)."""

    action: str
    pid: int
    resume: str | None = None
    model: str | None = None
    reason: str | None = None
    turns: int | None = None
    age_seconds: float | None = None
    exit: int | None = None


@LIVE_EVENTS.tag("stream")
@value
class StreamLine:
    """One stream-json line of claude's, as it printed it (agent-produced: data, never markup)."""

    data: dict[str, Any]


@LIVE_EVENTS.tag("stderr")
@value
class StderrLine:
    line: str


@LIVE_EVENTS.tag("output")
@value
class OutputLine:
    """A line the command runtime's process wrote."""

    line: str


LiveEventPayload = (
    Note
    | HarnessStarted
    | StateChanged
    | TurnStarted
    | TurnEnded
    | UsageChanged
    | TurnAcked
    | ModelChosen
    | RateLimited
    | BackingOff
    | RateLimitCleared
    | NeedsLogin
    | LoggedIn
    | ClaudeChanged
    | StreamLine
    | StderrLine
    | OutputLine
)
