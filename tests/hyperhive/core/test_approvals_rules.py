"""The approval rules as plain functions: who moves a row where, and which requests are taken."""

from __future__ import annotations

import pytest

from hyperhive.core.approvals import (
    MAX_PENDING,
    MAX_PENDING_PER_AGENT,
    Actor,
    Approval,
    Kind,
    Status,
    check_transition,
    request_refusal,
    transition_refusal,
    validate_note,
    validate_request,
)
from hyperhive.errors import BadRequest, Conflict, NotAllowed

OP, MGR, HIVE = Actor.OPERATOR, Actor.MANAGER, Actor.DAEMON


def _row(status: Status = Status.PENDING, agent: str = "alice", kind: Kind = Kind.APPLY_COMMIT,
         id: int = 1) -> Approval:  # fmt: skip
    return Approval(id, agent, kind, 1000.0, status, "why", "abcdef0")


LEGAL = [
    (Status.PENDING, Status.APPROVED, OP),
    (Status.PENDING, Status.DENIED, OP),
    (Status.PENDING, Status.CANCELLED, MGR),
    (Status.PENDING, Status.CANCELLED, OP),
    (Status.PENDING, Status.CANCELLED, HIVE),
    (Status.PENDING, Status.FAILED, HIVE),
    (Status.APPROVED, Status.FAILED, HIVE),
]
REFUSED = [
    (Status.PENDING, Status.APPROVED, MGR, "only the operator may approve"),
    (Status.PENDING, Status.APPROVED, HIVE, "only the operator may approve"),
    (Status.PENDING, Status.DENIED, MGR, "only the operator may deny"),
    (Status.PENDING, Status.FAILED, OP, "only the daemon may fail"),
    (Status.APPROVED, Status.APPROVED, OP, "approval 1 is approved, so it cannot be approved"),
    (Status.APPROVED, Status.DENIED, OP, "is approved, so it cannot be denied"),
    (Status.APPROVED, Status.CANCELLED, MGR, "is approved, so it cannot be cancelled"),
    (Status.DENIED, Status.APPROVED, OP, "is denied, so it cannot be approved"),
    (Status.FAILED, Status.FAILED, HIVE, "is failed"),
    (Status.CANCELLED, Status.DENIED, OP, "is cancelled"),
    (Status.APPROVED, Status.PENDING, OP, "nothing moves an approval back to pending"),
]


@pytest.mark.parametrize(("at", "to", "by"), LEGAL)
def test_legal_transitions(at: Status, to: Status, by: Actor) -> None:
    assert transition_refusal(_row(at), to, by) is None
    check_transition(_row(at), to, by)


@pytest.mark.parametrize(("at", "to", "by", "why"), REFUSED)
def test_refused_transitions_say_why(at: Status, to: Status, by: Actor, why: str) -> None:
    refusal = transition_refusal(_row(at), to, by)
    assert refusal is not None
    assert why in refusal


def test_who_is_refused_is_not_allowed_and_where_is_a_conflict() -> None:
    with pytest.raises(NotAllowed, match="only the operator"):
        check_transition(_row(), Status.APPROVED, MGR)
    with pytest.raises(Conflict, match="is denied"):
        check_transition(_row(Status.DENIED), Status.APPROVED, OP)


def test_requests_are_validated() -> None:
    assert validate_request("ABCDEF0", "  use opus  ") == ("abcdef0", "use opus")
    with pytest.raises(BadRequest, match="branch or tag name is refused"):
        validate_request("main", "x")
    with pytest.raises(BadRequest, match="what the change is for"):
        validate_request("abcdef0", "   ")
    with pytest.raises(BadRequest, match="at most 4000"):
        validate_request("abcdef0", "x" * 4001)


def test_notes_are_cut_not_refused() -> None:
    assert validate_note("  no  ") == "no"
    long = validate_note("x" * 10_000)
    assert len(long) <= 4000
    assert long.endswith("[... cut]")
    assert validate_note("a\0b") == "a?b"


def test_a_spawn_is_for_a_new_agent_and_apply_commit_for_an_existing_one() -> None:
    assert request_refusal(Kind.SPAWN, "bob", agent_exists=False, pending=[]) is None
    assert request_refusal(Kind.APPLY_COMMIT, "bob", agent_exists=True, pending=[]) is None
    assert "already exists" in str(
        request_refusal(Kind.SPAWN, "bob", agent_exists=True, pending=[])
    )
    assert "request_spawn" in str(
        request_refusal(Kind.APPLY_COMMIT, "bob", agent_exists=False, pending=[])
    )
    waiting = [_row(agent="bob", kind=Kind.SPAWN)]
    assert "already waiting" in str(
        request_refusal(Kind.SPAWN, "bob", agent_exists=False, pending=waiting)
    )


def test_pending_requests_are_bounded() -> None:
    mine = [_row(id=i) for i in range(MAX_PENDING_PER_AGENT)]
    assert "cancel some first" in str(
        request_refusal(Kind.APPLY_COMMIT, "alice", agent_exists=True, pending=mine)
    )
    assert request_refusal(Kind.APPLY_COMMIT, "bob", agent_exists=True, pending=mine) is None
    resolved = [_row(Status.DENIED, id=i) for i in range(MAX_PENDING_PER_AGENT)]
    assert request_refusal(Kind.APPLY_COMMIT, "alice", agent_exists=True, pending=resolved) is None
    everyone = [_row(agent=f"a{i}", id=i) for i in range(MAX_PENDING)]
    assert f"{MAX_PENDING} approvals are already waiting" in str(
        request_refusal(Kind.APPLY_COMMIT, "new", agent_exists=True, pending=everyone)
    )
