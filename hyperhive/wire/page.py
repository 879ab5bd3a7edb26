"""The agent's page socket: what the daemon asks an agent's harness, and what it may answer.

The per-agent page is served by the daemon (docs/web-ui.md); the harness only supplies data and
takes control requests, over a unix socket of its own in the agent's socket directory
(``<socket dir>/page/page.sock``: `hyperhive.wire.harness.PAGE_DIR` and ``PAGE_SOCKET``). One
request per connection: the daemon writes one JSON line tagged by ``cmd`` (`PAGE_COMMANDS`),
the harness answers one line
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; ``subscribe`` answers an ok line and
then one `PageEvent` per line for as long as the daemon reads.

The harness runs where the model can run code, so on the daemon's side every answer is hostile:
it is read with a size cap and a deadline and decoded into these types, whose fields carry
bounds (`hyperhive.wire._bounds`), before anything else sees it.

``state`` answers the harness's report of what it is doing (`hyperhive.wire.harness.AgentReport`,
the one it also writes to its state directory for the daemon's rows) with the badges' numbers.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from hyperhive.value import value
from hyperhive.wire._bounds import INT64_MAX, number, strict, text
from hyperhive.wire._tags import TagTable
from hyperhive.wire.harness import AgentReport

__all__ = [
    "LOGIN_KINDS",
    "MAX_EVENT_BYTES",
    "MAX_PAGE_REPLY_BYTES",
    "PAGE_COMMANDS",
    "LoginFlow",
    "PageCancel",
    "PageCompact",
    "PageEvent",
    "PageEvents",
    "PageGetState",
    "PageGetStats",
    "PageHistory",
    "PageLogin",
    "PageLoginCode",
    "PageLoginStart",
    "PageNewSession",
    "PageRequest",
    "PageSetModel",
    "PageState",
    "PageStats",
    "PageSubscribe",
    "StatsBucket",
]


# What one answer line may hold. A history page of 500 events, each a stream-json line.
MAX_PAGE_REPLY_BYTES: Final = 8 * 1024 * 1024
MAX_EVENT_BYTES: Final = 1024 * 1024  # one live event (a stream-json line)
MAX_SEQ: Final = INT64_MAX

LOGIN_KINDS: Final = ("oauth_token", "api_key")

PAGE_COMMANDS = TagTable("page command")
_NAME = text(200)
_DETAIL = text(2000)
_TIME = number(0, 1e11)
_COUNT = number(0, INT64_MAX)
_MONEY = number(0, 1e9)


# -- requests (daemon -> harness) ------------------------------------------------------------


@PAGE_COMMANDS.tag("state")
@value
class PageGetState:
    """What the harness is doing now (badges)."""


@PAGE_COMMANDS.tag("history")
@value
class PageHistory:
    """Stored events with seq > `after_seq` (the newest `limit`), oldest first."""

    after_seq: int = attrs.field(default=0, metadata=number(0, MAX_SEQ))
    limit: int = attrs.field(default=500, metadata=number(1, 2000))
    before_seq: int | None = attrs.field(default=None, metadata=number(1, MAX_SEQ))


@PAGE_COMMANDS.tag("subscribe")
@value
class PageSubscribe:
    """Every event from now on, after the stored ones past `after_seq` (None: none of those)."""

    after_seq: int | None = attrs.field(default=None, metadata=number(0, MAX_SEQ))


@PAGE_COMMANDS.tag("cancel")
@value
class PageCancel:
    """Interrupt the running turn."""


@PAGE_COMMANDS.tag("compact")
@value
class PageCompact:
    """Compact before the next turn (or at the next idle poll)."""


@PAGE_COMMANDS.tag("new_session")
@value
class PageNewSession:
    """The next turn starts a new session."""


@PAGE_COMMANDS.tag("set_model")
@value
class PageSetModel:
    """Use `model` from the next turn on (None or empty: the runtime's default)."""

    model: str | None = attrs.field(default=None, metadata=text(100))


@PAGE_COMMANDS.tag("login")
@value
class PageLogin:
    """Store a credential: `kind` ``oauth_token`` (what ``claude setup-token`` printed, whole
    or just the token) or ``api_key``."""

    kind: str = attrs.field(metadata=text(20))
    value: str = attrs.field(metadata=text(20_000))


@PAGE_COMMANDS.tag("login_start")
@value
class PageLoginStart:
    """Start ``claude auth login`` over pipes; its URL arrives in the login flow's state."""


@PAGE_COMMANDS.tag("login_code")
@value
class PageLoginCode:
    """The code the browser showed after the login URL, for the running ``claude auth login``."""

    code: str = attrs.field(metadata=text(2000))


@PAGE_COMMANDS.tag("stats")
@value
class PageGetStats:
    """Turn stats bucketed by ``hour`` or ``day``, the newest `buckets` of them."""

    bucket: str = attrs.field(default="hour", metadata=text(8))
    buckets: int = attrs.field(default=48, metadata=number(1, 400))


PageRequest = (
    PageGetState
    | PageHistory
    | PageSubscribe
    | PageCancel
    | PageCompact
    | PageNewSession
    | PageSetModel
    | PageLogin
    | PageLoginStart
    | PageLoginCode
    | PageGetStats
)


# -- replies (harness -> daemon: hostile, decoded with these bounds) ---------------------------


@value
class LoginFlow:
    """The ``claude auth login`` the page drives: ``status`` idle, starting, waiting_code
    (``url`` is where to log in), checking, done or failed (``detail`` says why)."""

    status: str = attrs.field(default="idle", metadata=text(20))
    url: str | None = attrs.field(default=None, metadata=text(4000))
    detail: str = attrs.field(default="", metadata=_DETAIL)


@value
class PageState:
    """The badges' data: the report, the model, context and cost of the last turn, login."""

    report: AgentReport
    model: str | None = attrs.field(default=None, metadata=text(100))
    ctx: int | None = attrs.field(default=None, metadata=_COUNT)
    context_window: int | None = attrs.field(default=None, metadata=_COUNT)
    cost_usd: float | None = attrs.field(default=None, metadata=_MONEY)
    turns: int = attrs.field(default=0, metadata=_COUNT)
    last_seq: int = attrs.field(default=0, metadata=_COUNT)
    logged_in: bool | None = None
    login: LoginFlow = LoginFlow()
    runtime: str = attrs.field(default="", metadata=text(40))


@value
class PageEvent:
    """One live event (`hyperhive.wire.harness`): ``kind`` tells how to read ``data``; a kind
    this daemon does not know is still passed on, for the page to show as unknown."""

    seq: int = attrs.field(metadata=number(1, MAX_SEQ))
    at: float = attrs.field(metadata=_TIME)
    kind: str = attrs.field(metadata=text(40))
    data: dict[str, Any]


@value
class PageEvents:
    events: tuple[PageEvent, ...]
    last_seq: int = attrs.field(default=0, metadata=_COUNT)


@value
class StatsBucket:
    """One hour or day of turns (``start`` is its first second, unix time)."""

    start: float = attrs.field(metadata=_TIME)
    turns: int = attrs.field(metadata=_COUNT)
    ok: int = attrs.field(metadata=_COUNT)
    duration_ms: int = attrs.field(metadata=_COUNT)
    input_tokens: int = attrs.field(metadata=_COUNT)
    output_tokens: int = attrs.field(metadata=_COUNT)
    cache_read_tokens: int = attrs.field(metadata=_COUNT)
    cache_creation_tokens: int = attrs.field(metadata=_COUNT)
    cost_usd: float = attrs.field(metadata=_MONEY)
    tool_calls: int = attrs.field(metadata=_COUNT)


@value
class PageStats:
    """Turn stats by `bucket` (oldest first), with the model mix and tool use over them all,
    and the newest turns."""

    bucket: str = attrs.field(metadata=text(8))
    buckets: tuple[StatsBucket, ...]
    models: dict[str, int]
    tools: dict[str, int]
    results: dict[str, int]
    recent: tuple[dict[str, Any], ...] = ()


# What a harness answers is hostile input: every page type is decoded as strictly as a request.
for _page_type in (
    *PAGE_COMMANDS.values(),
    LoginFlow,
    PageEvent,
    PageEvents,
    PageState,
    PageStats,
    StatsBucket,
):
    strict(_page_type)
