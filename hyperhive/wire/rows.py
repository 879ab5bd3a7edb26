"""Stored rows: what the stores hand out and the wire carries, one attrs class each.

The same classes describe the sqlite rows (``DeadLetter``, ``Question``, ``Reminder``, and
`hyperhive.wire.mail`'s ``Message`` and ``Delivery``) and their JSON form, so a row and its wire
shape cannot drift apart. On the wire ``sender`` and ``recipient`` are spelled ``from`` and
``to``.
"""

from __future__ import annotations

import attrs

from hyperhive.value import value
from hyperhive.wire._bounds import strict, text
from hyperhive.wire.harness import LastTurn

__all__ = [
    "AgentStatusRow",
    "Approval",
    "ConfigTag",
    "ContainerView",
    "DeadLetter",
    "HiveUrls",
    "LooseApproval",
    "Question",
    "Reminder",
    "Scope",
    "Tombstone",
]


@value
class DeadLetter:
    """A message parked after too many unacked deliveries, waiting for the operator."""

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float
    attempts: int
    dead_at: float


@value
class Question:
    """A question as stored (docs/questions.md). ``target`` is ``operator`` or an agent name.

    Open while ``answered_at`` is None; ``answerer`` is ``operator``, the answering agent's name,
    ``ttl-watchdog``, or whoever cancelled it. Times are wall-clock unix seconds.
    """

    id: int
    asker: str
    target: str
    question: str
    options: tuple[str, ...]
    multi: bool
    asked_at: float
    expires_at: float | None = None
    answer: str | None = None
    answerer: str | None = None
    answered_at: float | None = None


@value
class Reminder:
    """A reminder as stored (docs/reminders.md).

    ``state`` is ``pending``, ``delivered`` or ``failed``; ``fired_at`` is when it was delivered
    or failed, and ``failure`` says why a failed one never reached its owner.
    """

    id: int
    owner: str
    message: str
    created_at: float
    due_at: float
    state: str
    file_path: str | None = None
    fired_at: float | None = None
    failure: str | None = None


@value
class LooseApproval:
    """An approval awaiting the operator, as loose ends list it: its id, the agent it is for,
    its description (``summary``) and when it was asked for (unix seconds)."""

    id: int
    agent: str
    summary: str
    submitted_at: float
    kind: str = "apply_commit"
    commit_ref: str = ""


@value
class Approval:
    """One approval request in the original's shape (docs/approvals.md).

    ``kind`` is ``spawn`` or ``apply_commit``; ``status`` is ``pending``, ``approved``,
    ``denied``, ``failed`` or ``cancelled``. ``requested_at`` and ``resolved_at`` are RFC 3339
    (UTC); ``fetched_sha`` is the full commit the proposal was imported as; ``note`` is the
    operator's reason for a denial or the error of a failure. ``description`` and ``note`` are
    the manager's and the daemon's text: escape them where they are shown.
    """

    id: int
    agent: str
    kind: str
    requested_at: str
    status: str
    description: str
    commit_ref: str
    fetched_sha: str | None = None
    resolved_at: str | None = None
    note: str | None = None


@value
class ConfigTag:
    """One tag of an agent's applied repo: ``stage/id`` on ``commit``, when (RFC 3339), and
    its message (a denial's reason, a failure's error)."""

    stage: str
    id: int
    commit: str
    at: str
    message: str


@value
class ContainerView:
    """One agent's container as the dashboard, `hyperhive list` and the manager see it.

    ``state`` is the backend's (absent, stopped, starting, running, stopping, crashed, unknown);
    ``transient`` names an operator action in flight (spawning, starting, stopping, restarting,
    killing, rebuilding, destroying); ``wanted`` is ``running`` or ``stopped``. The flags come
    from the harness's sentinel files in the agent's state directory (docs/containers.md);
    ``notes`` says why any of those files was ignored, and which limits the agent hit lately.
    """

    name: str
    role: str
    state: str
    wanted: str
    network: bool
    transient: str | None = None
    exit_code: int | None = None
    detail: str = ""
    # Crashed because its last start was refused before anything ran (a bind source missing,
    # a bad sandbox.json, no such program, the sandbox's own set-up): ``detail`` says why.
    start_refused: bool = False
    needs_login: bool = False
    rate_limited: bool = False
    model: str | None = None
    deployed_sha: str | None = None
    pending_reminders: int = 0
    disk_bytes: int | None = None  # the state directory's use (a lower bound past 200k files)
    disk_quota: int | None = None  # the soft quota it is held against
    # What the operator should know about this agent: files in its directory that were ignored
    # (and why), limits it hit lately (docs/limits.md).
    notes: tuple[str, ...] = ()
    # Paused by the operator: it takes no turns and its mail waits (set_paused).
    paused: bool = False
    # Why it is where it is, in a word and a sentence (`hyperhive.core.container_view`):
    # stopped, crashed, start refused, starting, paused, needs login, rate limited, retrying,
    # backing off, working (the reason: thinking, running a tool, waiting on recv),
    # compacting, idle, interrupted, lost the hive, ...
    semantic: str = ""
    reason: str = ""
    # The harness's own turn state (its report), its last turn, and the mail it has.
    turn_state: str | None = None
    last_turn: LastTurn | None = None
    pending_messages: int = 0
    inflight_messages: int = 0
    # What the agent said it is doing (its set_status tool), while it runs; when (wall clock).
    status_text: str | None = None
    status_set_at: float | None = None
    # An approved config of it waits to be deployed (queued or deploying; docs/approvals.md).
    needs_update: bool = False
    # Who asked for it: "manager" when spawned from the manager's approved request, else None.
    parent: str | None = None


@strict  # a command's field (the original's lifecycle verbs)
@value
class Scope:
    """Which agents a lifecycle verb of the original's host socket targets.

    ``agent_names`` names them; ``agents`` means every agent (not the manager). The original's
    other classes (``ci``, ``forge``, ``gateway``, ``matrix``) name services this hive does not
    run, so a scope setting one is refused. A scope naming nobody is refused too: unlike the
    original's, an empty scope never means everything.
    """

    agent_names: tuple[str, ...] = attrs.field(default=(), metadata=text(64, items=1000))
    agents: bool = False
    ci: bool = False
    forge: bool = False
    gateway: bool = False
    matrix: bool = False


@value
class AgentStatusRow:
    """One agent as the original's host socket reports it (``agent_status``), field for field.

    The flags are independent, not a state machine. ``deployed_sha`` is 12 characters;
    ``status_text`` is None while the agent is not running, and ``status_set_at`` (RFC 3339,
    UTC) is None exactly when it is; ``url`` is the agent's page on the dashboard (None without
    a dashboard). ``needs_update`` is true while an approved config waits to be deployed.
    """

    name: str
    running: bool
    failed: bool
    needs_update: bool
    needs_login: bool
    paused: bool
    parent: str | None
    deployed_sha: str | None
    active_model: str | None
    status_text: str | None
    status_set_at: str | None
    url: str | None
    pending_reminders: int


@value
class HiveUrls:
    """Where the hive is reached from a browser (``urls``): None where there is none."""

    domain: str | None = None
    home: str | None = None  # the dashboard
    forge: str | None = None
    matrix: str | None = None


@value
class Tombstone:
    """A destroyed agent whose state directory was kept; purge removes it for good."""

    name: str
    role: str
    destroyed_at: float
