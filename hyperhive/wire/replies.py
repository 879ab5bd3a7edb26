"""Response payloads: what a successful answer carries, flattened beside the envelope.

``{"version": 1, "ok": true, "error": null, ...payload fields}``: each class here is the payload
of one or more commands (`hyperhive.wire.commands` names which).
"""

from __future__ import annotations

import attrs

from hyperhive.value import value
from hyperhive.wire.events import Event
from hyperhive.wire.mail import Delivery, Message
from hyperhive.wire.rows import (
    AgentStatusRow,
    Approval,
    ConfigTag,
    ContainerView,
    DeadLetter,
    HiveUrls,
    LooseApproval,
    Question,
    Reminder,
    Tombstone,
)

__all__ = [
    "ActorInfo",
    "AgentInbox",
    "AgentLoggedOut",
    "AgentStatuses",
    "Agents",
    "ApprovalDetail",
    "ApprovalReply",
    "Approvals",
    "Asked",
    "CapabilityChange",
    "ConfigInitialised",
    "ConfigReply",
    "Container",
    "Containers",
    "CredentialStored",
    "DeadLetters",
    "Empty",
    "HistoryReply",
    "InboxReply",
    "LoggedOut",
    "LogsReply",
    "LooseEndCancelled",
    "LooseEnds",
    "Questions",
    "Reminders",
    "Resolved",
    "Scheduled",
    "Sent",
    "StatusReply",
    "Submitted",
    "Tombstones",
    "Urls",
    "WhoamiReply",
]


@value
class Empty:
    """A success with nothing to say."""


@value
class ActorInfo:
    """One node of the actor tree as ``status`` reports it.

    An actor reports its queue (``queue_depth`` of ``queue_capacity``: its mailbox, or what
    it waits on, such as a listener's open connections), when it last took a message
    (``last_message_at``, wall-clock seconds; None before the first), the last error it met
    and its own ``counters`` (parked waiters, due timers, requests answered, ...).
    """

    id: str
    kind: str  # "supervisor" | "actor"
    state: str
    restarts: int
    last_error: str | None = None
    queue_depth: int | None = None
    queue_capacity: int | None = None
    strategy: str | None = None
    children: tuple[ActorInfo, ...] = ()
    last_message_at: float | None = None
    counters: dict[str, int] = attrs.field(factory=dict)


@value
class StatusReply:
    """The actor tree; ``at`` is when it was read (wall-clock seconds), for "how long ago"."""

    pid: int
    state_dir: str
    uptime_seconds: float
    tree: ActorInfo
    at: float = 0.0


@value
class Sent:
    id: int


@value
class Agents:
    agents: tuple[str, ...]


@value
class InboxReply:
    messages: tuple[Message, ...]


@value
class DeadLetters:
    letters: tuple[DeadLetter, ...]


@value
class HistoryReply:
    """The newest remembered events, oldest first, and the seq they are current to.

    ``dropped`` counts older events left out to keep the reply within its byte bound; ``boot``
    names the daemon process whose seqs these are (as every event frame does)."""

    seq: int
    events: tuple[Event, ...]
    dropped: int = 0
    boot: str = ""


@value
class Asked:
    id: int


@value
class Resolved:
    """The question as it stands after an answer."""

    question: Question


@value
class Scheduled:
    id: int
    due_at: float


@value
class WhoamiReply:
    """``pronouns`` are the operator's (``--operator-pronouns``), as the system prompt uses."""

    name: str
    role: str
    pronouns: str
    hyperhive_version: str
    pending_reminders: int


@value
class LooseEnds:
    questions: tuple[Question, ...]
    reminders: tuple[Reminder, ...]
    approvals: tuple[LooseApproval, ...] = ()


@value
class LooseEndCancelled:
    kind: str
    id: int


@value
class Questions:
    questions: tuple[Question, ...]


@value
class Reminders:
    reminders: tuple[Reminder, ...]


@value
class Containers:
    containers: tuple[ContainerView, ...]


@value
class Container:
    container: ContainerView


@value
class Tombstones:
    tombstones: tuple[Tombstone, ...]


@value
class LogsReply:
    name: str
    text: str


@value
class Submitted:
    """An approval request was stored as approval ``id`` (docs/approvals.md)."""

    id: int


@value
class AgentStatuses:
    """The original's roster (``agent_status``), one row per agent, the manager included."""

    agent_statuses: tuple[AgentStatusRow, ...]


@value
class Urls:
    urls: HiveUrls


@value
class CredentialStored:
    """What ``login`` stored: the variables' names (never their values), whether it is the
    hive's credential (every agent without one of its own) and the agents given it now."""

    variables: tuple[str, ...]
    hive: bool
    agents: tuple[str, ...]


@value
class AgentLoggedOut:
    """One agent ``logout`` logged out: the credential files removed from its state directory
    (as the agent sees them, ``/state/...``) and whether it was restarted (it ran)."""

    name: str
    removed: tuple[str, ...]
    restarted: bool


@value
class LoggedOut:
    """What ``logout`` did. ``hive``: the hive's credential was stored and is now forgotten
    (``logout`` without a name); ``agents``: the agents logged out, each with its files."""

    hive: bool
    agents: tuple[AgentLoggedOut, ...]


@value
class AgentInbox:
    """One agent's mail: waiting for it (``pending``, oldest first, at most the limit asked
    for) and handed to it but not yet acked (``inflight``); the totals count them all."""

    name: str
    pending: tuple[Message, ...]
    inflight: tuple[Delivery, ...]
    pending_total: int
    inflight_total: int


@value
class Approvals:
    """Approval rows (``pending``: those waiting for the operator, oldest first)."""

    approvals: tuple[Approval, ...]


@value
class ApprovalReply:
    """An approval as it stands after an approve, a deny or a cancel."""

    approval: Approval


@value
class CapabilityChange:
    """One line of a capability diff (docs/config.md): ``effect`` is ``grants``, ``revokes``
    or ``changes``; ``before`` / ``after`` are None where the capability is absent."""

    area: str
    effect: str
    subject: str
    before: str | None = None
    after: str | None = None


@value
class ApprovalDetail:
    """An approval with what it changes: the unified diff from ``base`` (the deployed commit;
    None for a spawn) to the proposal, and the capability diff beside it.

    ``capability_error`` says why there is no capability diff (the proposed ``agent.toml``
    does not parse; the approval would fail). All text is the manager's: escape it.
    """

    approval: Approval
    base: str | None
    diff: str
    diff_truncated: bool
    capabilities: tuple[CapabilityChange, ...]
    capability_error: str | None = None


@value
class ConfigReply:
    """An agent's config as deployed: ``main`` of its applied repo, the ``agent.toml`` there,
    the deploy its container runs (``deploy``, an approval id; None: not from an approval),
    and every approval tag, oldest first."""

    name: str
    main: str | None
    agent_toml: str | None
    deploy: int | None
    tags: tuple[ConfigTag, ...]


@value
class ConfigInitialised:
    """A new agent's config repos are ready: the manager edits ``path`` (in its container),
    commits, and asks for a spawn of that commit; ``applied_path`` is the read-only record."""

    name: str
    seed: str
    path: str
    applied_path: str
