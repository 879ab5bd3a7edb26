"""The reminder store on a real sqlite file: pending, delivered, failed, cancelled."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hyperhive.core.reminder_store import ReminderStore

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
def store(tmp_path: Path, clock: _Clock) -> Iterator[ReminderStore]:
    store = ReminderStore(tmp_path / "reminders.sqlite", now=clock)
    yield store
    store.close()


def test_pending_survives_reopen_soonest_first(tmp_path: Path, clock: _Clock) -> None:
    store = ReminderStore(tmp_path / "r.sqlite", now=clock)
    later = store.add("alice", "later", 5000.0, None)
    sooner = store.add("bob", "sooner", 2000.0, "/state/x.md")
    store.close()
    again = ReminderStore(tmp_path / "r.sqlite", now=clock)
    try:
        assert again.pending() == [sooner, later]
        assert sooner.state == "pending"
        assert sooner.file_path == "/state/x.md"
        assert sooner.created_at == 1000.0
    finally:
        again.close()


def test_settling_happens_once(store: ReminderStore, clock: _Clock) -> None:
    reminder = store.add("alice", "m", 2000.0, None)
    clock.now = 2000.0
    delivered = store.mark_delivered(reminder.id)
    assert delivered is not None
    assert (delivered.state, delivered.fired_at, delivered.failure) == ("delivered", 2000.0, None)
    assert store.mark_failed(reminder.id, "late") is None
    assert store.pending() == []


def test_a_failure_keeps_its_reason(store: ReminderStore) -> None:
    reminder = store.add("alice", "m", 2000.0, None)
    failed = store.mark_failed(reminder.id, "'alice' is not a registered agent any more")
    assert failed is not None
    assert failed.state == "failed"
    assert store.get(reminder.id) == failed
    assert store.listing(owner="alice") == [failed]


def test_listing_hides_delivered_unless_asked(store: ReminderStore) -> None:
    pending = store.add("alice", "1", 2000.0, None)
    delivered = store.mark_delivered(store.add("alice", "2", 1500.0, None).id)
    failed = store.mark_failed(store.add("bob", "3", 1500.0, None).id, "gone")
    assert store.listing() == [pending, failed]
    assert store.listing(delivered=True) == [pending, delivered, failed]
    assert store.listing(owner="bob") == [failed]
    assert store.listing(delivered=True, limit=2) == [delivered, failed]


def test_delete_undelivered(store: ReminderStore) -> None:
    pending = store.add("alice", "1", 2000.0, None)
    failed = store.mark_failed(store.add("alice", "2", 1500.0, None).id, "gone")
    delivered = store.mark_delivered(store.add("alice", "3", 1500.0, None).id)
    assert failed is not None
    assert delivered is not None
    assert store.delete_undelivered(pending.id) == pending
    assert store.delete_undelivered(failed.id) == failed
    assert store.delete_undelivered(delivered.id) is None
    assert store.get(delivered.id) == delivered


def test_pending_counts_per_owner(store: ReminderStore) -> None:
    store.add("alice", "1", 2000.0, None)
    store.add("alice", "2", 2000.0, None)
    store.mark_delivered(store.add("bob", "3", 2000.0, None).id)
    store.add("carol", "4", 2000.0, None)
    assert store.pending_counts() == {"alice": 2, "carol": 1}


def test_vacuum_keeps_failures(store: ReminderStore, clock: _Clock) -> None:
    delivered = store.add("alice", "1", 1000.0, None)
    failed = store.add("alice", "2", 1000.0, None)
    store.mark_delivered(delivered.id)
    store.mark_failed(failed.id, "gone")
    clock.now += 31 * 86400
    assert store.vacuum(30 * 86400) == 1
    assert store.get(delivered.id) is None
    assert store.get(failed.id) is not None
