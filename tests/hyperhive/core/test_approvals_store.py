"""The approval store on a real sqlite file: rows in the original's shape, transitions that race."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from hyperhive.core.approval_store import ApprovalStore
from hyperhive.core.approvals import Approval, Kind, Status
from hyperhive.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def store(tmp_path: Path, clock: _Clock) -> Iterator[ApprovalStore]:
    store = ApprovalStore(tmp_path / "approvals.sqlite", now=clock)
    yield store
    store.close()


def _add(store: ApprovalStore, agent: str = "alice", kind: Kind = Kind.APPLY_COMMIT) -> Approval:
    return store.add(agent=agent, kind=kind, commit_ref="abcdef0", description="use opus")


def test_a_row_keeps_its_fields_across_reopen(tmp_path: Path, clock: _Clock) -> None:
    store = ApprovalStore(tmp_path / "a.sqlite", now=clock)
    added = _add(store)
    clock.now = 1005.0
    fetched = store.set_fetched(added.id, "a" * 40)
    store.close()
    again = ApprovalStore(tmp_path / "a.sqlite", now=clock)
    try:
        assert again.get(added.id) == fetched
        assert fetched == Approval(
            1, "alice", Kind.APPLY_COMMIT, 1000.0, Status.PENDING, "use opus", "abcdef0",
            "a" * 40, None, None,
        )  # fmt: skip
    finally:
        again.close()


def test_the_columns_are_the_originals(tmp_path: Path, store: ApprovalStore) -> None:
    _add(store)
    with sqlite3.connect(tmp_path / "approvals.sqlite") as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(approvals)")]
    assert columns == [
        "id", "agent", "kind", "requested_at", "status", "description", "commit_ref",
        "fetched_sha", "resolved_at", "note",
    ]  # fmt: skip


def test_deny_stamps_the_time_and_keeps_the_reason(store: ApprovalStore, clock: _Clock) -> None:
    added = _add(store)
    clock.now = 1100.0
    denied = store.transition(added.id, Status.DENIED, "no network for this one")
    assert denied is not None
    assert (denied.status, denied.resolved_at, denied.note) == (
        Status.DENIED, 1100.0, "no network for this one"
    )  # fmt: skip
    assert store.pending() == []


def test_only_one_of_two_racing_decisions_wins(store: ApprovalStore) -> None:
    added = _add(store)
    assert store.transition(added.id, Status.APPROVED) is not None
    assert store.transition(added.id, Status.DENIED, "too late") is None
    row = store.get(added.id)
    assert row is not None
    assert row.status is Status.APPROVED
    assert row.note is None


def test_an_approved_deploy_can_still_fail_and_keeps_the_error(
    store: ApprovalStore, clock: _Clock
) -> None:
    added = _add(store)
    store.transition(added.id, Status.APPROVED)
    clock.now = 1200.0
    failed = store.transition(added.id, Status.FAILED, "build: exit 1")
    assert failed is not None
    assert (failed.status, failed.note, failed.resolved_at) == (
        Status.FAILED,
        "build: exit 1",
        1200.0,
    )
    assert store.transition(added.id, Status.FAILED, "again") is None
    assert store.transition(added.id, Status.APPROVED) is None


def test_final_rows_never_move_and_unknown_ids_are_none(store: ApprovalStore) -> None:
    added = _add(store)
    store.transition(added.id, Status.CANCELLED, "agent destroyed")
    for to in (Status.APPROVED, Status.DENIED, Status.CANCELLED, Status.FAILED):
        assert store.transition(added.id, to, "x") is None
    assert store.transition(999, Status.APPROVED) is None
    assert store.get(999) is None
    assert store.set_fetched(added.id, "b" * 40) is None
    with pytest.raises(ValueError, match="nothing moves an approval to pending"):
        store.transition(added.id, Status.PENDING)


def test_pending_and_recent_listings(store: ApprovalStore) -> None:
    one = _add(store, "alice")
    two = _add(store, "bob", Kind.SPAWN)
    three = _add(store, "alice")
    store.transition(one.id, Status.DENIED, "no")
    assert [a.id for a in store.pending()] == [two.id, three.id]
    assert [a.id for a in store.pending("alice")] == [three.id]
    assert [a.id for a in store.recent(2)] == [three.id, two.id]
    assert [a.id for a in store.recent(10, "alice")] == [three.id, one.id]
    assert store.pending("carol") == []


def test_vacuum_keeps_pending_and_approved_rows(store: ApprovalStore, clock: _Clock) -> None:
    rows = [_add(store) for _ in range(4)]
    store.transition(rows[0].id, Status.DENIED, "no")
    store.transition(rows[1].id, Status.APPROVED)
    store.transition(rows[2].id, Status.CANCELLED)
    clock.now += 100 * 86400
    assert store.vacuum(90 * 86400) == 2
    assert [a.id for a in store.recent(10)] == [rows[3].id, rows[1].id]


def test_ids_are_never_reused(tmp_path: Path, store: ApprovalStore, clock: _Clock) -> None:
    first = _add(store)
    store.transition(first.id, Status.DENIED, "no")
    clock.now += 100 * 86400
    store.vacuum(1)
    assert _add(store).id == first.id + 1  # a tag proposal/<id> in the applied repo stays unique


def test_a_newer_schema_is_refused(tmp_path: Path, clock: _Clock) -> None:
    path = tmp_path / "a.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 9")
    with pytest.raises(StoreError, match="approval schema version 9, newer than"):
        ApprovalStore(path, now=clock)
