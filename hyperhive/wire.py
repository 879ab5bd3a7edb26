"""Every type that crosses a process boundary, and the one converter that encodes them.

Framing: one JSON object per line (UTF-8, ``\\n``-terminated). Requests are tagged by ``cmd``
(snake_case); responses are one flat object::

    {"version": 1, "ok": true, "error": null, ...payload keys}

Unknown keys are tolerated in both directions, so an older client keeps working against a newer
daemon. Tags live in explicit tables (``REQUESTS``, ``EVENTS``): renaming a class never changes
the wire. ``encode_*`` / ``decode_*`` are the only entry points; a malformed line becomes a
``BadRequest`` whose text names the offending field, never a stray exception.

The same attrs classes describe the sqlite rows the broker hands out (``Message``,
``Delivery``, ``DeadLetter``), so a row and its JSON form cannot drift apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import cattrs
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter

from hyperhive.errors import BadRequest, LineTooLong, RemoteError

if TYPE_CHECKING:
    import trio

__all__ = [
    "EVENTS",
    "HELPER_EVENTS",
    "HELPER_SENDER",
    "INT64_MAX",
    "MAX_LINE_BYTES",
    "MAX_NESTING",
    "PROTOCOL_VERSION",
    "REQUESTS",
    "AckTurn",
    "Acked",
    "ActorInfo",
    "AgentRegistered",
    "AgentUnregistered",
    "Agents",
    "Answer",
    "Ask",
    "Asked",
    "Bound",
    "CancelLooseEnd",
    "Cancelled",
    "Container",
    "ContainerCrash",
    "ContainerCrashed",
    "ContainerRemoved",
    "ContainerStateChanged",
    "ContainerView",
    "Containers",
    "DeadLetter",
    "DeadLetters",
    "Delivery",
    "Destroy",
    "DiskQuotaExceeded",
    "DropDead",
    "Empty",
    "Event",
    "EventGap",
    "EventPayload",
    "GetLooseEnds",
    "HelperEvent",
    "History",
    "HistoryReply",
    "Inbox",
    "InboxReply",
    "KillAgent",
    "LimitHit",
    "LineReader",
    "ListAgents",
    "ListContainers",
    "ListDeadLetters",
    "ListQuestions",
    "ListReminders",
    "ListTombstones",
    "Logs",
    "LogsReply",
    "LooseApproval",
    "LooseEnds",
    "Message",
    "MessageDeadLettered",
    "MessageDelivered",
    "MessageSent",
    "Messages",
    "PurgeTombstone",
    "Question",
    "QuestionAdded",
    "QuestionAnswered",
    "QuestionAsked",
    "QuestionResolved",
    "Questions",
    "RebuildAgent",
    "Recv",
    "RegisterAgent",
    "Remind",
    "Reminder",
    "ReminderCancelled",
    "ReminderDue",
    "ReminderFailed",
    "ReminderFired",
    "ReminderSet",
    "Reminders",
    "ReplayDead",
    "Request",
    "RequeueInflight",
    "Requeued",
    "Resolved",
    "RestartAgent",
    "Scheduled",
    "Send",
    "Sent",
    "Spawn",
    "StartAgent",
    "Status",
    "StatusReply",
    "StopAgent",
    "Subscribe",
    "Tombstone",
    "Tombstones",
    "UnregisterAgent",
    "Whoami",
    "WhoamiReply",
    "decode_event",
    "decode_helper_event",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_event",
    "encode_helper_event",
    "encode_request",
    "encode_response",
    "encode_sent",
    "field_bounds",
    "to_json",
]

PROTOCOL_VERSION: Final = 1
# One request line may carry a message body; 1 MiB is far above any sane chat message and far
# below what would let one client balloon the daemon's memory.
MAX_LINE_BYTES: Final = 1024 * 1024
# Deeper than any request needs (two levels: an object holding a list of strings); a line nested
# past this is refused before anything walks it.
MAX_NESTING: Final = 16

# Field bounds, checked when a request is decoded (`_check_bounds`): the edge of the trust
# boundary. Every integer a request carries fits sqlite's signed 64 bits; each field's range is
# what the field can mean, and every string and list has a length cap. Past `decode_request`,
# code sees only values inside these bounds.
INT64_MAX: Final = 2**63 - 1
MAX_NAME_CHARS: Final = 64  # agent names are at most 11; a little room for a clear "unknown"
MAX_LIMIT: Final = 10_000  # list sizes a client may ask for (each handler caps further)
MAX_SECONDS: Final = 10 * 366 * 86400.0  # durations: the domain rules refuse far less
MAX_QUESTION_CHARS: Final = 16 * 1024
MAX_OPTION_CHARS: Final = 1024
MAX_OPTIONS: Final = 32
MAX_ANSWER_CHARS: Final = 64 * 1024
MAX_PATH_CHARS: Final = 4096
_BOUND: Final = "hyperhive.bound"


@attrs.frozen
class Bound:
    """The range of one request field: numbers within ``[low, high]``; strings of at most
    ``chars`` characters (valid unicode); lists of at most ``items`` such strings."""

    low: float | None = None
    high: float | None = None
    chars: int | None = None
    items: int | None = None


def _number(low: float, high: float) -> dict[str, Bound]:
    return {_BOUND: Bound(low=low, high=high)}


def _text(chars: int, *, items: int | None = None) -> dict[str, Bound]:
    return {_BOUND: Bound(chars=chars, items=items)}


_ID: Final = _number(1, INT64_MAX)


def field_bounds(cls: type[Any]) -> dict[str, Bound]:
    """The declared bound of each bounded field of a request class (the fuzz test reads it)."""
    return {f.name: f.metadata[_BOUND] for f in attrs.fields(cls) if _BOUND in f.metadata}


# --------------------------------------------------------------------------------------------
# Stored rows
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Message:
    """A message as stored: who sent it to whom, and when (wall-clock unix seconds)."""

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float


@attrs.frozen
class Delivery:
    """A message handed to its recipient; in flight until the recipient's turn is acked.

    ``attempt`` counts deliveries of this row (1 on the first); ``redelivered`` is true when an
    earlier delivery was never acked (the harness restarted mid-turn).
    """

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float
    attempt: int
    redelivered: bool


@attrs.frozen
class DeadLetter:
    """A message parked after too many unacked deliveries, waiting for the operator."""

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float
    attempts: int
    dead_at: float


@attrs.frozen
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


@attrs.frozen
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


@attrs.frozen
class LooseApproval:
    """An approval awaiting the operator, as loose ends list it.

    Approvals arrive with a later issue; until then the ``approvals`` section of `LooseEnds` is
    always empty and this shape is a placeholder the approvals work may extend.
    """

    id: int
    agent: str
    summary: str
    submitted_at: float


@attrs.frozen
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
    web_port: int | None = None
    exit_code: int | None = None
    detail: str = ""
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


@attrs.frozen
class Tombstone:
    """A destroyed agent whose state directory was kept; purge removes it for good."""

    name: str
    role: str
    destroyed_at: float
    web_port: int | None = None


# --------------------------------------------------------------------------------------------
# Requests (tag: "cmd")
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Status:
    """Admin: the live actor tree with each actor's statistics."""


@attrs.frozen
class Send:
    """Send ``body`` to agent ``to`` (or to ``operator``)."""

    to: str = attrs.field(metadata=_text(MAX_NAME_CHARS))
    body: str = attrs.field(metadata=_text(MAX_LINE_BYTES))


@attrs.frozen
class Recv:
    """Long-poll for up to ``max`` messages, waiting at most ``wait_seconds`` for the first."""

    wait_seconds: float = attrs.field(default=0.0, metadata=_number(0, MAX_SECONDS))
    max: int = attrs.field(default=1, metadata=_number(1, MAX_LIMIT))


@attrs.frozen
class AckTurn:
    """Ack every message delivered to the caller and not yet acked (its turn ended well)."""


@attrs.frozen
class RequeueInflight:
    """Put every unacked delivery back in the caller's inbox (a harness starting up)."""


@attrs.frozen
class RegisterAgent:
    """Admin: make ``name`` a known agent with its own socket."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class UnregisterAgent:
    """Admin: forget ``name`` and close its socket; its state is kept as a tombstone and its
    messages stay on disk."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class ListAgents:
    """Admin: the registered agents."""


@attrs.frozen
class Inbox:
    """Admin: the newest messages agents sent to the operator."""

    limit: int = attrs.field(default=50, metadata=_number(0, MAX_LIMIT))


@attrs.frozen
class ListDeadLetters:
    """Admin: dead-lettered messages, optionally for one recipient."""

    recipient: str | None = attrs.field(default=None, metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class ReplayDead:
    """Admin: put a dead letter back in its recipient's inbox with a fresh attempt count."""

    id: int = attrs.field(metadata=_ID)


@attrs.frozen
class DropDead:
    """Admin: delete a dead letter for good."""

    id: int = attrs.field(metadata=_ID)


@attrs.frozen
class History:
    """Dashboard events still in the hub's history, with the seq they are current to."""

    limit: int = attrs.field(default=200, metadata=_number(0, MAX_LIMIT))


@attrs.frozen
class Subscribe:
    """Turn this connection into a live feed of dashboard events, one per line."""


@attrs.frozen
class Ask:
    """Ask the operator (``to`` unset or ``operator``) or agent ``to`` a question.

    ``options`` are suggested answers (``multi``: more than one may be picked); with
    ``ttl_seconds`` an unanswered question is answered by the watchdog when it runs out.
    """

    question: str = attrs.field(metadata=_text(MAX_QUESTION_CHARS))
    options: tuple[str, ...] = attrs.field(
        default=(), metadata=_text(MAX_OPTION_CHARS, items=MAX_OPTIONS)
    )
    multi: bool = False
    ttl_seconds: float | None = attrs.field(default=None, metadata=_number(0, MAX_SECONDS))
    to: str | None = attrs.field(default=None, metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class Answer:
    """Answer question ``id`` (the operator, or the agent it was asked of)."""

    id: int = attrs.field(metadata=_ID)
    answer: str = attrs.field(metadata=_text(MAX_ANSWER_CHARS))


@attrs.frozen
class Remind:
    """Remind the caller of ``message`` after ``delay_seconds`` or at ``at`` (ISO 8601 with a
    timezone); with ``file_path`` the message is written there in the caller's state directory.
    """

    message: str = attrs.field(metadata=_text(MAX_LINE_BYTES))
    delay_seconds: float | None = attrs.field(default=None, metadata=_number(0, MAX_SECONDS))
    at: str | None = attrs.field(default=None, metadata=_text(64))
    file_path: str | None = attrs.field(default=None, metadata=_text(MAX_PATH_CHARS))


@attrs.frozen
class Whoami:
    """Who the caller is: name, role, the operator's pronouns, version, pending reminders."""


@attrs.frozen
class GetLooseEnds:
    """Open questions, pending reminders and approvals: the caller's, or hive-wide (manager)."""


@attrs.frozen
class CancelLooseEnd:
    """Cancel a loose end: ``kind`` is ``question`` or ``reminder``."""

    kind: str = attrs.field(metadata=_text(32))
    id: int = attrs.field(metadata=_ID)


@attrs.frozen
class ListQuestions:
    """Admin: open questions to the operator, or (``answered``) the recently answered ones."""

    answered: bool = False
    limit: int = attrs.field(default=100, metadata=_number(0, MAX_LIMIT))


@attrs.frozen
class ListReminders:
    """Admin: pending and failed reminders (``delivered`` adds recent deliveries)."""

    owner: str | None = attrs.field(default=None, metadata=_text(MAX_NAME_CHARS))
    delivered: bool = False
    limit: int = attrs.field(default=200, metadata=_number(0, MAX_LIMIT))


@attrs.frozen
class Spawn:
    """Admin: create agent ``name``'s container and start it (``network`` false: no network)."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))
    network: bool = True


@attrs.frozen
class StartAgent:
    """Admin: start agent ``name``'s container."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class StopAgent:
    """Admin: stop agent ``name`` (SIGTERM, then SIGKILL after the grace period)."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class RestartAgent:
    """Admin: stop, then start agent ``name``."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class KillAgent:
    """Admin: kill agent ``name`` at once (no grace period)."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class RebuildAgent:
    """Admin: re-apply agent ``name``'s container settings, restarting it if they need it."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class Destroy:
    """Admin: remove agent ``name``'s container; its state stays as a tombstone unless
    ``purge`` (which also purges an existing tombstone of that name). The manager is destroyed
    only with ``force``."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))
    purge: bool = False
    force: bool = False


@attrs.frozen
class ListContainers:
    """Admin: every agent's container view."""


@attrs.frozen
class ListTombstones:
    """Admin: destroyed agents whose state was kept."""


@attrs.frozen
class PurgeTombstone:
    """Admin: delete a destroyed agent's kept state for good."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))


@attrs.frozen
class Logs:
    """Admin: the last ``lines`` lines agent ``name``'s process wrote."""

    name: str = attrs.field(metadata=_text(MAX_NAME_CHARS))
    lines: int = attrs.field(default=200, metadata=_number(0, MAX_LIMIT))


Request = (
    Status
    | Send
    | Recv
    | AckTurn
    | RequeueInflight
    | RegisterAgent
    | UnregisterAgent
    | ListAgents
    | Inbox
    | ListDeadLetters
    | ReplayDead
    | DropDead
    | History
    | Subscribe
    | Ask
    | Answer
    | Remind
    | Whoami
    | GetLooseEnds
    | CancelLooseEnd
    | ListQuestions
    | ListReminders
    | Spawn
    | StartAgent
    | StopAgent
    | RestartAgent
    | KillAgent
    | RebuildAgent
    | Destroy
    | ListContainers
    | ListTombstones
    | PurgeTombstone
    | Logs
)

REQUESTS: Final[dict[str, type[Any]]] = {
    "status": Status,
    "send": Send,
    "recv": Recv,
    "ack_turn": AckTurn,
    "requeue_inflight": RequeueInflight,
    "register_agent": RegisterAgent,
    "unregister_agent": UnregisterAgent,
    "list_agents": ListAgents,
    "inbox": Inbox,
    "dead_letters": ListDeadLetters,
    "replay_dead": ReplayDead,
    "drop_dead": DropDead,
    "history": History,
    "subscribe": Subscribe,
    "ask": Ask,
    "answer": Answer,
    "remind": Remind,
    "whoami": Whoami,
    "get_loose_ends": GetLooseEnds,
    "cancel_loose_end": CancelLooseEnd,
    "questions": ListQuestions,
    "reminders": ListReminders,
    "spawn": Spawn,
    "start": StartAgent,
    "stop": StopAgent,
    "restart": RestartAgent,
    "kill": KillAgent,
    "rebuild": RebuildAgent,
    "destroy": Destroy,
    "list_containers": ListContainers,
    "tombstones": ListTombstones,
    "purge_tombstone": PurgeTombstone,
    "logs": Logs,
}
_CMD_OF: Final = {cls: cmd for cmd, cls in REQUESTS.items()}

# --------------------------------------------------------------------------------------------
# Response payloads (flattened into the envelope)
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Empty:
    """A success with nothing to say."""


@attrs.frozen
class ActorInfo:
    """One node of the actor tree as ``status`` reports it."""

    id: str
    kind: str  # "supervisor" | "actor"
    state: str
    restarts: int
    last_error: str | None = None
    queue_depth: int | None = None
    queue_capacity: int | None = None
    strategy: str | None = None
    children: tuple[ActorInfo, ...] = ()


@attrs.frozen
class StatusReply:
    pid: int
    state_dir: str
    uptime_seconds: float
    tree: ActorInfo


@attrs.frozen
class Sent:
    id: int


@attrs.frozen
class Messages:
    messages: tuple[Delivery, ...]


@attrs.frozen
class Acked:
    count: int


@attrs.frozen
class Requeued:
    count: int


@attrs.frozen
class Agents:
    agents: tuple[str, ...]


@attrs.frozen
class InboxReply:
    messages: tuple[Message, ...]


@attrs.frozen
class DeadLetters:
    letters: tuple[DeadLetter, ...]


@attrs.frozen
class HistoryReply:
    """The newest remembered events, oldest first, and the seq they are current to.

    ``dropped`` counts older events left out to keep the reply within its byte bound."""

    seq: int
    events: tuple[Event, ...]
    dropped: int = 0


@attrs.frozen
class Asked:
    id: int


@attrs.frozen
class Resolved:
    """The question as it stands after an answer."""

    question: Question


@attrs.frozen
class Scheduled:
    id: int
    due_at: float


@attrs.frozen
class WhoamiReply:
    """``pronouns`` are the operator's (``--operator-pronouns``), as the system prompt uses."""

    name: str
    role: str
    pronouns: str
    hyperhive_version: str
    pending_reminders: int


@attrs.frozen
class LooseEnds:
    questions: tuple[Question, ...]
    reminders: tuple[Reminder, ...]
    approvals: tuple[LooseApproval, ...] = ()


@attrs.frozen
class Cancelled:
    kind: str
    id: int


@attrs.frozen
class Questions:
    questions: tuple[Question, ...]


@attrs.frozen
class Reminders:
    reminders: tuple[Reminder, ...]


@attrs.frozen
class Containers:
    containers: tuple[ContainerView, ...]


@attrs.frozen
class Container:
    container: ContainerView


@attrs.frozen
class Tombstones:
    tombstones: tuple[Tombstone, ...]


@attrs.frozen
class LogsReply:
    name: str
    text: str


# --------------------------------------------------------------------------------------------
# Dashboard events (tag: "kind"), each framed in an Event with its seq
# --------------------------------------------------------------------------------------------


@attrs.frozen
class MessageSent:
    """A message was stored. In events the body is a preview (docs/limits.md): when it was
    clipped, ``body_bytes`` is the whole body's size in UTF-8 bytes."""

    message: Message
    body_bytes: int | None = None


@attrs.frozen
class MessageDelivered:
    id: int
    recipient: str
    attempt: int


@attrs.frozen
class MessageDeadLettered:
    id: int
    recipient: str
    attempts: int


@attrs.frozen
class AgentRegistered:
    name: str


@attrs.frozen
class AgentUnregistered:
    name: str


@attrs.frozen
class EventGap:
    """A subscriber fell behind and missed the events ``first_seq..last_seq`` (inclusive)."""

    first_seq: int
    last_seq: int


@attrs.frozen
class QuestionAdded:
    """Any new question; the operator's queue is the ones with ``target == "operator"``."""

    question: Question


@attrs.frozen
class QuestionResolved:
    question: Question


@attrs.frozen
class ReminderSet:
    reminder: Reminder


@attrs.frozen
class ReminderFired:
    reminder: Reminder


@attrs.frozen
class ReminderFailed:
    reminder: Reminder


@attrs.frozen
class ReminderCancelled:
    id: int
    owner: str
    by: str


@attrs.frozen
class ContainerStateChanged:
    """An agent's container view changed (or appeared); the whole new row."""

    container: ContainerView


@attrs.frozen
class ContainerRemoved:
    name: str


@attrs.frozen
class DiskQuotaExceeded:
    """An agent's state directory grew past its soft disk quota (raised once per crossing)."""

    name: str
    disk_bytes: int
    disk_quota: int


@attrs.frozen
class LimitHit:
    """Agent ``agent`` ran into limit ``limit`` (a `Limits` field, docs/limits.md); ``detail``
    says how. Published at most once a minute per agent and limit."""

    agent: str
    limit: str
    detail: str


@attrs.frozen
class ContainerCrashed:
    """An agent stopped without an operator action (also sent to the manager's inbox)."""

    name: str
    exit_code: int | None
    detail: str


EventPayload = (
    MessageSent
    | MessageDelivered
    | MessageDeadLettered
    | AgentRegistered
    | AgentUnregistered
    | EventGap
    | QuestionAdded
    | QuestionResolved
    | ReminderSet
    | ReminderFired
    | ReminderFailed
    | ReminderCancelled
    | ContainerStateChanged
    | ContainerRemoved
    | ContainerCrashed
    | DiskQuotaExceeded
    | LimitHit
)

EVENTS: Final[dict[str, type[Any]]] = {
    "sent": MessageSent,
    "delivered": MessageDelivered,
    "dead_lettered": MessageDeadLettered,
    "agent_registered": AgentRegistered,
    "agent_unregistered": AgentUnregistered,
    "gap": EventGap,
    "question_added": QuestionAdded,
    "question_resolved": QuestionResolved,
    "reminder_set": ReminderSet,
    "reminder_fired": ReminderFired,
    "reminder_failed": ReminderFailed,
    "reminder_cancelled": ReminderCancelled,
    "container_state_changed": ContainerStateChanged,
    "container_removed": ContainerRemoved,
    "container_crashed": ContainerCrashed,
    "disk_quota_exceeded": DiskQuotaExceeded,
    "limit_hit": LimitHit,
}
_KIND_OF: Final = {cls: kind for kind, cls in EVENTS.items()}


@attrs.frozen
class Event:
    """One frame of the dashboard stream: a per-process monotonic ``seq``, a wall-clock stamp."""

    seq: int
    at: float
    payload: EventPayload


# --------------------------------------------------------------------------------------------
# Helper events (tag: "event"): what the hive itself tells an agent. Each is the JSON body of an
# ordinary broker message from HELPER_SENDER, so it is durable and leased like any message; the
# agent harness renders it into its wake prompt.
# --------------------------------------------------------------------------------------------

HELPER_SENDER: Final = "hive"


@attrs.frozen
class QuestionAsked:
    """Agent ``asker`` asks you question ``id``; reply with ``answer(id, ...)``."""

    id: int
    asker: str
    question: str
    options: tuple[str, ...] = ()
    multi: bool = False


@attrs.frozen
class QuestionAnswered:
    """Your question ``id`` was answered by ``answerer`` (``operator``, a peer, ``ttl-watchdog``
    or whoever cancelled it)."""

    id: int
    question: str
    answer: str
    answerer: str


@attrs.frozen
class ReminderDue:
    """Your reminder ``id`` is due. With ``file_path`` the message is a pointer to that file
    (a path inside your container), which holds the reminder's text."""

    id: int
    message: str
    file_path: str | None = None


@attrs.frozen
class ContainerCrash:
    """Agent ``name`` stopped without an operator action (exit status ``exit_code``, 128+N for
    signal N; None when unknown). ``detail`` is the tail of what it wrote, or systemd's reason."""

    name: str
    exit_code: int | None
    detail: str


HelperEvent = QuestionAsked | QuestionAnswered | ReminderDue | ContainerCrash

HELPER_EVENTS: Final[dict[str, type[Any]]] = {
    "question_asked": QuestionAsked,
    "question_answered": QuestionAnswered,
    "reminder_due": ReminderDue,
    "container_crash": ContainerCrash,
}
_HELPER_TAG_OF: Final = {cls: tag for tag, cls in HELPER_EVENTS.items()}


# --------------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------------

_T = TypeVar("_T")
_converter = make_converter()


def _strict(kind: type[Any], *, reject: tuple[type[Any], ...] = ()) -> None:
    """Refuse silent coercions: cattrs would turn 5 into "5" and "5" into 5."""

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, kind) or isinstance(value, reject):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    _converter.register_structure_hook(kind, structure)


_strict(str)
_strict(bool)
_strict(int, reject=(bool,))


def _structure_float(value: Any, _: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected number, got {type(value).__name__}")
    if not math.isfinite(value):
        # Python's json reads NaN and Infinity, which no timeout or stamp can mean.
        raise ValueError(f"expected a finite number, got {value}")
    return float(value)


_converter.register_structure_hook(float, _structure_float)
_default_strings = _converter.get_structure_hook(tuple[str, ...])


def _structure_strings(value: Any, cls: Any) -> tuple[str, ...]:
    # cattrs would iterate a string into its characters: "ab" must not become ("a", "b").
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected array, got {type(value).__name__}")
    result: tuple[str, ...] = _default_strings(value, cls)
    return result


_converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_strings)


def _structure_payload(value: Any, _: Any) -> Any:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected object, got {type(value).__name__}")
    cls = EVENTS.get(value.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event kind {value.get('kind')!r}")
    return _converter.structure(value, cls)


def _unstructure_payload(value: Any) -> dict[str, Any]:
    fields: dict[str, Any] = _converter.unstructure(value)
    return {"kind": _KIND_OF[type(value)], **fields}


_converter.register_structure_hook(EventPayload, _structure_payload)


def _event_unstructure(event: Event) -> dict[str, Any]:
    return {"seq": event.seq, "at": event.at, **_unstructure_payload(event.payload)}


def _event_structure(value: Any, _: Any) -> Event:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected object, got {type(value).__name__}")
    return Event(
        seq=_converter.structure(value.get("seq"), int),
        at=_converter.structure(value.get("at"), float),
        payload=_structure_payload(value, None),
    )


_converter.register_unstructure_hook(Event, _event_unstructure)
_converter.register_structure_hook(Event, _event_structure)
# Field names on the wire match the attribute names, except where Python keywords get in the way.
_FROM, _TO = override(rename="from"), override(rename="to")
for _row in (Message, Delivery, DeadLetter):
    _converter.register_unstructure_hook(
        _row, make_dict_unstructure_fn(_row, _converter, sender=_FROM, recipient=_TO)
    )
    _converter.register_structure_hook(
        _row, make_dict_structure_fn(_row, _converter, sender=_FROM, recipient=_TO)
    )


def _out_of_bounds(value: Any, bound: Bound) -> str | None:
    """What is wrong with a decoded field value, or None if it is inside its bound."""
    if bound.low is not None and bound.high is not None:
        if bound.low <= value <= bound.high:
            return None
        low, high = (_number_text(x) for x in (bound.low, bound.high))
        return f"must be from {low} to {high}"
    if isinstance(value, str):
        return _text_problem(value, bound.chars)
    if bound.items is not None and len(value) > bound.items:
        return f"has more than {bound.items} items"
    for item in value:
        if problem := _text_problem(item, bound.chars):
            return f"item {problem}"
    return None


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _text_problem(text: str, chars: int | None) -> str | None:
    if chars is not None and len(text) > chars:
        return f"is longer than {chars} characters"
    if not text.isascii():  # O(1) for ASCII, the common case
        try:
            text.encode()
        except UnicodeEncodeError:
            return "is not valid unicode text (it holds a lone surrogate)"
    return None


def _bounded(cls: type[Any]) -> None:
    """Check `cls`'s declared field bounds whenever it is decoded (not when code builds one)."""
    checks = [(name, _checker(bound)) for name, bound in field_bounds(cls).items()]
    if not checks:
        return
    base = _converter.get_structure_hook(cls)

    def structure(value: Any, _: Any) -> Any:
        obj = base(value, cls)
        for name, check in checks:
            field = getattr(obj, name)
            if field is not None and (problem := check(field)):
                raise ValueError(f"{name} {problem}")
        return obj

    _converter.register_structure_hook(cls, structure)


def _checker(bound: Bound) -> Callable[[Any], str | None]:
    """A fast check for one bound: the common, valid case costs a comparison or two."""
    if bound.low is not None and bound.high is not None:
        low, high = bound.low, bound.high
        return lambda value: None if low <= value <= high else _out_of_bounds(value, bound)
    if bound.items is None:
        chars = bound.chars if bound.chars is not None else MAX_LINE_BYTES
        return lambda text: (
            None if len(text) <= chars and text.isascii() else _out_of_bounds(text, bound)
        )
    return lambda value: _out_of_bounds(value, bound)


for _request in REQUESTS.values():
    _bounded(_request)


def _nested_within(obj: Any, limit: int) -> bool:
    """Whether no list or object inside `obj` sits more than `limit` levels deep."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return False
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return True


def _json(obj: Any) -> bytes:
    """Compact JSON as UTF-8 bytes.

    orjson is several times faster than the stdlib encoder, which matters on the broker's hot
    path (every recv answer). It refuses what JSON cannot carry faithfully (lone surrogates,
    integers past 64 bits); the stdlib then encodes it with escapes, so nothing is refused that
    the stdlib would take. Non-finite floats, which no wire type may carry (decoders refuse
    them), come out as null rather than as JSON's invalid NaN.
    """
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _dumps(obj: Any) -> bytes:
    return _json(obj) + b"\n"


def _loads(line: bytes | str) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        # orjson is strict where the stdlib is lenient (lone surrogates, NaN); the stdlib's
        # verdict and wording decide, so orjson only ever makes good input faster.
        try:
            obj = json.loads(line)
        except RecursionError:
            raise BadRequest(f"not valid JSON: nested more than {MAX_NESTING} levels") from None
        except ValueError as exc:
            # JSONDecodeError, invalid UTF-8, and integers past Python's 4300-digit limit.
            if "integer string conversion" in str(exc):
                raise BadRequest("not valid JSON: an integer with more than 4300 digits") from None
            raise BadRequest(f"not valid JSON: {_clip(str(exc))}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _structure(obj: Any, cls: type[_T]) -> _T:
    try:
        return _converter.structure(obj, cls)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path=""))
        raise BadRequest(f"bad {_name(cls)}: {problems}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise BadRequest(f"bad {_name(cls)}: {exc}") from None


def _name(cls: type[Any]) -> str:
    return _CMD_OF.get(cls) or _KIND_OF.get(cls) or cls.__name__


def to_json(value: Any) -> Any:
    """The plain-JSON form of any wire value (for HTTP bodies and tests)."""
    return _converter.unstructure(value)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def encode_request(request: Request) -> bytes:
    """One request line: ``{"cmd": ..., **fields}\\n``."""
    return _dumps({"cmd": _CMD_OF[type(request)], **_converter.unstructure(request)})


def decode_request(line: bytes | str) -> Request:
    """Parse one request line.

    Raises:
        BadRequest: invalid JSON, no or unknown ``cmd``, or fields of the wrong type; the text
            says which.
    """
    obj = _loads(line)
    raw = line if isinstance(line, bytes) else line.encode(errors="surrogatepass")
    # Fewer brackets than the bound cannot nest past it: the walk is skipped for nearly
    # every request (a C count, not a Python walk, on the hot path).
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_NESTING and not _nested_within(obj, MAX_NESTING):
        raise BadRequest(f"request nested more than {MAX_NESTING} levels; nothing was done")
    cmd = obj.pop("cmd", None)
    if not isinstance(cmd, str):
        raise BadRequest('missing "cmd": every request is a JSON object with a "cmd" string')
    cls = REQUESTS.get(cmd)
    if cls is None:
        known = ", ".join(sorted(REQUESTS))
        raise BadRequest(f"unknown cmd {_clip(repr(cmd), 80)}; known commands: {known}")
    request: Request = _structure(obj, cls)
    return request


_OK_PREFIX: Final = f'{{"version":{PROTOCOL_VERSION},"ok":true,"error":null'.encode()


def encode_response(payload: object | None = None) -> bytes:
    """A success: the envelope with ``payload``'s fields flattened beside it."""
    fields = {} if payload is None else _converter.unstructure(payload)
    if not fields:
        return _OK_PREFIX + b"}\n"
    # The envelope is constant, so only the payload is serialised; its "{" becomes the ",".
    return b"%s,%s\n" % (_OK_PREFIX, _json(fields)[1:])


def encode_sent(message_id: int) -> bytes:
    """The answer to a `send`: byte for byte `encode_response(Sent(message_id))`, faster.

    Every message costs one of these, so it skips the converter and the JSON encoder.
    """
    return b'%s,"id":%d}\n' % (_OK_PREFIX, message_id)


def encode_error(message: str) -> bytes:
    """A failure the client can show as is."""
    return _dumps({"version": PROTOCOL_VERSION, "ok": False, "error": message})


def decode_response(line: bytes | str, cls: type[_T]) -> _T:
    """Parse a response line into ``cls``.

    Raises:
        RemoteError: the daemon answered ``ok: false``.
        BadRequest: the line is not a response of that shape.
    """
    obj = _loads(line)
    if not obj.get("ok", False):
        raise RemoteError(str(obj.get("error") or "request failed"))
    for key in ("version", "ok", "error"):
        obj.pop(key, None)
    return _structure(obj, cls)


def encode_event(event: Event) -> bytes:
    """One feed line for a subscriber."""
    return _dumps(_converter.unstructure(event))


def decode_event(line: bytes | str) -> Event:
    """Parse one feed line."""
    return _structure(_loads(line), Event)


def encode_helper_event(event: HelperEvent) -> str:
    """The message body for a helper event: ``{"event": tag, **fields}`` (one line of JSON)."""
    fields = _converter.unstructure(event)
    return json.dumps(
        {"event": _HELPER_TAG_OF[type(event)], **fields}, separators=(",", ":"), ensure_ascii=False
    )


def decode_helper_event(body: str) -> HelperEvent:
    """Parse a message body from `HELPER_SENDER`.

    Raises:
        BadRequest: not JSON, or no known ``event`` tag; the text says which.
    """
    obj = _loads(body)
    tag = obj.pop("event", None)
    cls = HELPER_EVENTS.get(tag) if isinstance(tag, str) else None
    if cls is None:
        known = ", ".join(sorted(HELPER_EVENTS))
        raise BadRequest(f"unknown helper event {tag!r}; known events: {known}")
    event: HelperEvent = _structure(obj, cls)
    return event


# --------------------------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------------------------

_RECEIVE_SIZE: Final = 64 * 1024


class LineReader:
    """Reads ``\n``-terminated lines from a trio stream, each at most ``max_bytes`` long.

    A line past the cap is not buffered: its bytes are discarded up to the next newline and
    `read_line` raises `LineTooLong`, after which the reader is positioned at the next line, so
    the connection stays usable.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._stream = stream
        self._max = max_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._eof = False

    async def read_line(self) -> bytes | None:
        """The next line without its newline, or None at a clean end of stream.

        A final line without a newline is returned as a line.

        Raises:
            LineTooLong: the line exceeded the cap (already skipped).

        Cancellation: a checkpoint; buffered bytes are kept, so a cancelled read loses nothing.
        """
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                return self._take(end)
            self._scanned = len(self._buffer)
            if self._scanned > self._max:
                await self._skip_line()
                raise LineTooLong(f"line longer than {self._max} bytes was discarded")
            if self._eof:
                return self._take_rest()
            await self._fill()

    def can_buffer(self, limit: int) -> bool:
        """Whether `fill_once` may read more: not at end of stream, under `limit` bytes held."""
        return not self._eof and len(self._buffer) < limit

    async def fill_once(self) -> None:
        """Read what the stream has into the buffer (one receive), for `read_line` later."""
        await self._fill()

    def read_line_nowait(self) -> bytes | None:
        """The next line if a complete one is already buffered, else None (never waits).

        Raises:
            LineTooLong: the buffered line exceeded the cap (already skipped).
        """
        end = self._buffer.find(b"\n", 0)
        return None if end < 0 else self._take(end)

    def _take(self, end: int) -> bytes:
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        if len(line) > self._max:
            raise LineTooLong(f"line longer than {self._max} bytes was discarded")
        return line

    def _take_rest(self) -> bytes | None:
        if not self._buffer:
            return None
        line = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return line

    async def _fill(self) -> None:
        data = await self._stream.receive_some(_RECEIVE_SIZE)
        if not data:
            self._eof = True
        self._buffer += data

    async def _skip_line(self) -> None:
        while (end := self._buffer.find(b"\n")) < 0 and not self._eof:
            self._buffer.clear()
            await self._fill()
        del self._buffer[: end + 1 if end >= 0 else len(self._buffer)]
        self._scanned = 0
