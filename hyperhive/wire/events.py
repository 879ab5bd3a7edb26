"""Dashboard events (tag: ``kind``), each framed in an `Event` with its seq.

Every state change the dashboard, the TUI or a ``subscribe`` client cares about is one of
these. ``EVENTS`` is their tag table, filled by ``@EVENTS.tag`` where each class is declared.
"""

from __future__ import annotations

from hyperhive.value import value
from hyperhive.wire._tags import TagTable
from hyperhive.wire.mail import Message
from hyperhive.wire.rows import Approval, ContainerView, Question, Reminder

__all__ = [
    "EVENTS",
    "AgentRegistered",
    "AgentUnregistered",
    "ApprovalAdded",
    "ApprovalResolved",
    "ConfigRefChanged",
    "ContainerCrashed",
    "ContainerRemoved",
    "ContainerStateChanged",
    "CredentialRemoved",
    "CredentialSaved",
    "DiskQuotaExceeded",
    "Event",
    "EventGap",
    "EventPayload",
    "LimitHit",
    "MessageDeadLettered",
    "MessageDelivered",
    "MessageSent",
    "QuestionAdded",
    "QuestionResolved",
    "ReminderCancelled",
    "ReminderFailed",
    "ReminderFired",
    "ReminderSet",
]

EVENTS = TagTable("event")


@EVENTS.tag("sent")
@value
class MessageSent:
    """A message was stored. In events the body is a preview (docs/limits.md): when it was
    clipped, ``body_bytes`` is the whole body's size in UTF-8 bytes."""

    message: Message
    body_bytes: int | None = None


@EVENTS.tag("delivered")
@value
class MessageDelivered:
    id: int
    recipient: str
    attempt: int


@EVENTS.tag("dead_lettered")
@value
class MessageDeadLettered:
    id: int
    recipient: str
    attempts: int


@EVENTS.tag("agent_registered")
@value
class AgentRegistered:
    name: str


@EVENTS.tag("agent_unregistered")
@value
class AgentUnregistered:
    name: str


@EVENTS.tag("gap")
@value
class EventGap:
    """A subscriber fell behind and missed the events ``first_seq..last_seq`` (inclusive)."""

    first_seq: int
    last_seq: int


@EVENTS.tag("question_added")
@value
class QuestionAdded:
    """Any new question; the operator's queue is the ones with ``target == "operator"``."""

    question: Question


@EVENTS.tag("question_resolved")
@value
class QuestionResolved:
    question: Question


@EVENTS.tag("reminder_set")
@value
class ReminderSet:
    reminder: Reminder


@EVENTS.tag("reminder_fired")
@value
class ReminderFired:
    reminder: Reminder


@EVENTS.tag("reminder_failed")
@value
class ReminderFailed:
    reminder: Reminder


@EVENTS.tag("reminder_cancelled")
@value
class ReminderCancelled:
    id: int
    owner: str
    by: str


@EVENTS.tag("container_state_changed")
@value
class ContainerStateChanged:
    """An agent's container view changed (or appeared); the whole new row."""

    container: ContainerView


@EVENTS.tag("container_removed")
@value
class ContainerRemoved:
    name: str


@EVENTS.tag("disk_quota_exceeded")
@value
class DiskQuotaExceeded:
    """An agent's state directory grew past its soft disk quota (raised once per crossing)."""

    name: str
    disk_bytes: int
    disk_quota: int


@EVENTS.tag("limit_hit")
@value
class LimitHit:
    """Agent ``agent`` ran into limit ``limit`` (a `Limits` field, docs/limits.md); ``detail``
    says how. Published at most once a minute per agent and limit."""

    agent: str
    limit: str
    detail: str


@EVENTS.tag("container_crashed")
@value
class ContainerCrashed:
    """An agent stopped without an operator action (also sent to the manager's inbox)."""

    name: str
    exit_code: int | None
    detail: str


@EVENTS.tag("approval_added")
@value
class ApprovalAdded:
    """The manager asked for an approval; it waits for the operator."""

    approval: Approval


@EVENTS.tag("approval_resolved")
@value
class ApprovalResolved:
    """An approval changed status: approved, denied (``note``: the reason), failed (``note``:
    the error, or "rolled back: ..."), cancelled."""

    approval: Approval


@EVENTS.tag("config_ref_changed")
@value
class ConfigRefChanged:
    """A ref of agent ``agent``'s applied repo moved: a tag (``proposal/7`` ... ``deployed/7``,
    ``failed/7``, ``denied/7``) was set, or ``main`` moved (``ref`` = ``main``). ``message``
    is the tag's annotation (an error, a reason), empty for main."""

    agent: str
    ref: str
    commit: str
    message: str = ""


@EVENTS.tag("credential_stored")
@value
class CredentialSaved:
    """``login`` stored a Claude credential: the hive's (``hive``) or the named agents' own.
    ``variables`` are its variables' names, never their values; ``agents`` were given it now."""

    hive: bool
    variables: tuple[str, ...]
    agents: tuple[str, ...]


@EVENTS.tag("credential_removed")
@value
class CredentialRemoved:
    """``logout`` removed a credential: the hive's (``hive``, ``logout`` without a name), and
    the copies ``agents`` were given (their credential files, gone from their state dirs)."""

    hive: bool
    agents: tuple[str, ...]


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
    | ApprovalAdded
    | ApprovalResolved
    | ConfigRefChanged
    | CredentialSaved
    | CredentialRemoved
)


@value
class Event:
    """One frame of the dashboard stream: a per-process monotonic ``seq``, a wall-clock stamp,
    and ``boot``, the daemon process that numbered it: seqs start again at 1 with every daemon
    start, so a client compares (boot, seq), never seq alone."""

    seq: int
    at: float
    payload: EventPayload
    boot: str = ""
