"""Helper events (tag: ``event``): what the hive itself tells an agent.

Each is the JSON body of an ordinary broker message from `HELPER_SENDER`, so it is durable and
leased like any message; the agent harness renders it into its wake prompt.
"""

from __future__ import annotations

from typing import Final

from hyperhive.value import value
from hyperhive.wire._tags import TagTable

__all__ = [
    "HELPER_EVENTS",
    "HELPER_SENDER",
    "AgentLoggedIn",
    "AgentNeedsLogin",
    "ApprovalApproved",
    "ApprovalCancelled",
    "ApprovalDenied",
    "ConfigDeployed",
    "ConfigFailed",
    "ConfigRolledBack",
    "ContainerCrash",
    "HelperEvent",
    "QuestionAnswered",
    "QuestionAsked",
    "ReminderDue",
]

HELPER_EVENTS = TagTable("helper event")
HELPER_SENDER: Final = "hive"


@HELPER_EVENTS.tag("question_asked")
@value
class QuestionAsked:
    """Agent ``asker`` asks you question ``id``; reply with ``answer(id, ...)``."""

    id: int
    asker: str
    question: str
    options: tuple[str, ...] = ()
    multi: bool = False


@HELPER_EVENTS.tag("question_answered")
@value
class QuestionAnswered:
    """Your question ``id`` was answered by ``answerer`` (``operator``, a peer, ``ttl-watchdog``
    or whoever cancelled it)."""

    id: int
    question: str
    answer: str
    answerer: str


@HELPER_EVENTS.tag("reminder_due")
@value
class ReminderDue:
    """Your reminder ``id`` is due. With ``file_path`` the message is a pointer to that file
    (a path inside your container), which holds the reminder's text."""

    id: int
    message: str
    file_path: str | None = None


@HELPER_EVENTS.tag("container_crash")
@value
class ContainerCrash:
    """Agent ``name`` stopped without an operator action (exit status ``exit_code``, 128+N for
    signal N; None when unknown). ``detail`` is the tail of what it wrote, or systemd's reason."""

    name: str
    exit_code: int | None
    detail: str


@HELPER_EVENTS.tag("needs_login")
@value
class AgentNeedsLogin:
    """Agent ``name``'s Claude has no credentials (told to the manager); the operator logs it in
    on the agent's page."""

    name: str


@HELPER_EVENTS.tag("logged_in")
@value
class AgentLoggedIn:
    """Agent ``name`` has credentials again and takes its work (told to the manager)."""

    name: str


@HELPER_EVENTS.tag("approval_approved")
@value
class ApprovalApproved:
    """The operator approved your request ``id`` (``kind`` spawn or apply_commit) for
    ``agent``; its deploy has started. ``config_deployed`` or ``config_failed`` follows."""

    id: int
    agent: str
    kind: str
    commit: str


@HELPER_EVENTS.tag("approval_denied")
@value
class ApprovalDenied:
    """The operator denied your request ``id`` for ``agent``; ``reason`` says why."""

    id: int
    agent: str
    kind: str
    reason: str


@HELPER_EVENTS.tag("approval_cancelled")
@value
class ApprovalCancelled:
    """Your request ``id`` for ``agent`` was withdrawn (``by`` the manager or the operator)."""

    id: int
    agent: str
    by: str
    reason: str


@HELPER_EVENTS.tag("config_deployed")
@value
class ConfigDeployed:
    """Approval ``id``: ``agent`` runs commit ``commit`` of its config now (``main`` moved)."""

    id: int
    agent: str
    commit: str


@HELPER_EVENTS.tag("config_failed")
@value
class ConfigFailed:
    """Approval ``id`` for ``agent`` failed (``error``: the field path of a bad agent.toml, a
    build's output, a start that failed); the agent keeps the config it had."""

    id: int
    agent: str
    error: str


@HELPER_EVENTS.tag("config_rolled_back")
@value
class ConfigRolledBack:
    """``agent`` crash-looped after approval ``id`` was deployed; it was put back on commit
    ``commit`` (the config before), and ``id`` is tagged failed."""

    id: int
    agent: str
    commit: str | None
    reason: str


HelperEvent = (
    QuestionAsked
    | QuestionAnswered
    | ReminderDue
    | ContainerCrash
    | AgentNeedsLogin
    | AgentLoggedIn
    | ApprovalApproved
    | ApprovalDenied
    | ApprovalCancelled
    | ConfigDeployed
    | ConfigFailed
    | ConfigRolledBack
)
