"""Approvals: the manager asks, the operator decides, the daemon deploys. The rules, so far.

An approval is one row (`Approval`, the original's shape) that moves through::

    pending ──approve──▶ approved ──deploy fails / rolled back──▶ failed
       │
       ├──deny (with a reason)──▶ denied
       ├──cancel──▶ cancelled          (the manager withdraws it, or its agent is gone)
       └──cannot be fetched──▶ failed  (the proposal never reached the applied repo)

``approved`` stays ``approved`` once the agent runs the new config; the applied repo's tags
(`hyperhive.config_repo.tags`) tell where a deploy stands in finer steps. ``denied``,
``failed`` and ``cancelled`` are final. Only the operator approves or denies; the manager
(which made the request) or the operator cancels; the daemon itself fails.

These are plain functions, tested without trio. The actor that owns the `ApprovalStore` joins
this module once the daemon's composition root exists (issue 11); `Approval` then moves to the
wire rows.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

import attrs

from hyperhive.config_repo.tags import validate_commit_ref
from hyperhive.errors import BadRequest, Conflict, NotAllowed

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_NOTE",
    "MAX_PENDING",
    "MAX_PENDING_PER_AGENT",
    "SOURCES",
    "Actor",
    "Approval",
    "Kind",
    "Status",
    "check_transition",
    "request_refusal",
    "transition_refusal",
    "validate_note",
    "validate_request",
]

MAX_DESCRIPTION: Final = 4000
MAX_NOTE: Final = 4000
MAX_PENDING_PER_AGENT: Final = 8
MAX_PENDING: Final = 64


class Kind(enum.Enum):
    SPAWN = "spawn"
    APPLY_COMMIT = "apply_commit"


class Status(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Actor(enum.Enum):
    """Who asks for a transition."""

    OPERATOR = "operator"
    MANAGER = "manager"
    DAEMON = "daemon"


@attrs.frozen
class Approval:
    """One approval row; times are unix seconds (the wire shows them as RFC 3339)."""

    id: int
    agent: str
    kind: Kind
    requested_at: float
    status: Status
    description: str
    commit_ref: str
    fetched_sha: str | None = None
    resolved_at: float | None = None
    note: str | None = None


# Which statuses each status may be reached from, and by whom.
SOURCES: Final[dict[Status, frozenset[Status]]] = {
    Status.APPROVED: frozenset({Status.PENDING}),
    Status.DENIED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset({Status.PENDING}),
    Status.FAILED: frozenset({Status.PENDING, Status.APPROVED}),
}
_WHO: Final[dict[Status, frozenset[Actor]]] = {
    Status.APPROVED: frozenset({Actor.OPERATOR}),
    Status.DENIED: frozenset({Actor.OPERATOR}),
    Status.CANCELLED: frozenset({Actor.OPERATOR, Actor.MANAGER, Actor.DAEMON}),
    Status.FAILED: frozenset({Actor.DAEMON}),
}
_VERB: Final = {
    Status.APPROVED: "approve",
    Status.DENIED: "deny",
    Status.CANCELLED: "cancel",
    Status.FAILED: "fail",
}


def transition_refusal(approval: Approval, to: Status, by: Actor) -> str | None:
    """Why ``by`` cannot move ``approval`` to ``to``, or None when it can."""
    verb = _VERB.get(to)
    if verb is None:
        return f"nothing moves an approval back to {to.value}"
    if by not in _WHO[to]:
        return f"only the {_names(_WHO[to])} may {verb} an approval"
    if approval.status not in SOURCES[to]:
        return f"approval {approval.id} is {approval.status.value}, so it cannot be {to.value}"
    return None


def check_transition(approval: Approval, to: Status, by: Actor) -> None:
    """`transition_refusal` as an exception: ``NotAllowed`` for who, ``Conflict`` for state."""
    refusal = transition_refusal(approval, to, by)
    if refusal is None:
        return
    raise (NotAllowed if refusal.startswith("only") else Conflict)(refusal)


def validate_request(commit_ref: str, description: str) -> tuple[str, str]:
    """The normalised ``commit_ref`` and ``description`` of a spawn or apply_commit request.

    Raises:
        BadRequest: a ref that is not 7 to 40 hex digits, or a description that is empty,
            too long or holds a NUL.
    """
    ref = validate_commit_ref(commit_ref)
    text = description.strip()
    if not text:
        raise BadRequest("description must say what the change is for")
    if len(text) > MAX_DESCRIPTION or "\0" in text:
        raise BadRequest(f"description must be at most {MAX_DESCRIPTION} characters, no NUL")
    return ref, text


def validate_note(note: str) -> str:
    """A deny reason or failure note, stripped and bounded (cut, never refused)."""
    text = note.replace("\0", "?").strip()
    return text if len(text) <= MAX_NOTE else text[: MAX_NOTE - 10].rstrip() + " [... cut]"


def request_refusal(
    kind: Kind,
    agent: str,
    *,
    agent_exists: bool,
    pending: Sequence[Approval],
) -> str | None:
    """Why a new request of ``kind`` for ``agent`` is refused, given what is ``pending``.

    A spawn is for an agent that does not exist yet, an apply_commit for one that does; one
    pending spawn per name; at most `MAX_PENDING_PER_AGENT` pending per agent and `MAX_PENDING`
    in all, so a runaway manager cannot bury the operator.
    """
    if kind is Kind.SPAWN and agent_exists:
        return f"{agent} already exists; propose a config change with request_apply_commit"
    if kind is Kind.APPLY_COMMIT and not agent_exists:
        return f"{agent} does not exist; ask for it with request_spawn"
    mine = [a for a in pending if a.agent == agent and a.status is Status.PENDING]
    if kind is Kind.SPAWN and any(a.kind is Kind.SPAWN for a in mine):
        return f"a spawn of {agent} is already waiting for the operator"
    if len(mine) >= MAX_PENDING_PER_AGENT:
        return f"{agent} already has {len(mine)} approvals waiting; cancel some first"
    if sum(a.status is Status.PENDING for a in pending) >= MAX_PENDING:
        return f"{MAX_PENDING} approvals are already waiting for the operator"
    return None


def _names(actors: frozenset[Actor]) -> str:
    order = list(Actor)
    names = [actor.value for actor in sorted(actors, key=order.index)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
