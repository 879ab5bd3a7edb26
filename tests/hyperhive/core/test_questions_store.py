"""The question store on a real sqlite file: rows, answers that race, undelivered answers."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from hyperhive.core.question_store import QuestionStore
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
def store(tmp_path: Path, clock: _Clock) -> Iterator[QuestionStore]:
    store = QuestionStore(tmp_path / "questions.sqlite", now=clock)
    yield store
    store.close()


def test_a_question_keeps_its_fields_across_reopen(tmp_path: Path, clock: _Clock) -> None:
    store = QuestionStore(tmp_path / "q.sqlite", now=clock)
    added = store.add(
        asker="alice", target="bob", question="which?", options=("a", "b"), multi=True,
        expires_at=1600.0,
    )  # fmt: skip
    store.close()
    again = QuestionStore(tmp_path / "q.sqlite", now=clock)
    try:
        assert again.get(added.id) == added
        assert added.options == ("a", "b")
        assert added.multi is True
        assert added.asked_at == 1000.0
        assert added.expires_at == 1600.0
        assert added.answered_at is None
    finally:
        again.close()


def test_resolve_wins_once(store: QuestionStore, clock: _Clock) -> None:
    question = store.add(asker="alice", target="operator", question="ship?")
    clock.now = 1005.0
    resolved = store.resolve(question.id, "yes", "operator")
    assert resolved is not None
    assert (resolved.answer, resolved.answerer, resolved.answered_at) == ("yes", "operator", 1005.0)
    assert store.resolve(question.id, "no", "ttl-watchdog") is None
    assert store.get(question.id) == resolved
    assert store.resolve(999, "x", "operator") is None


def test_open_questions_by_target_and_by_involvement(store: QuestionStore) -> None:
    to_operator = store.add(asker="alice", target="operator", question="1")
    alice_to_bob = store.add(asker="alice", target="bob", question="2")
    bob_to_carol = store.add(asker="bob", target="carol", question="3")
    store.resolve(store.add(asker="bob", target="alice", question="4").id, "done", "alice")

    assert [q.id for q in store.open_questions(target="operator")] == [to_operator.id]
    assert [q.id for q in store.open_questions(involving="alice")] == [
        to_operator.id,
        alice_to_bob.id,
    ]
    assert [q.id for q in store.open_questions(involving="bob")] == [
        alice_to_bob.id,
        bob_to_carol.id,
    ]
    assert len(store.open_questions()) == 3


def test_answered_lists_newest_first(store: QuestionStore, clock: _Clock) -> None:
    first = store.add(asker="alice", target="operator", question="1")
    second = store.add(asker="bob", target="operator", question="2")
    store.resolve(second.id, "b", "operator")
    clock.now += 1
    store.resolve(first.id, "a", "operator")
    assert [q.id for q in store.answered("operator", 10)] == [first.id, second.id]
    assert [q.id for q in store.answered("operator", 1)] == [first.id]


def test_an_answer_stays_undelivered_until_marked(store: QuestionStore) -> None:
    question = store.add(asker="alice", target="operator", question="1")
    gone = store.add(asker="ghost", target="operator", question="2")
    assert store.unnotified() == []
    store.resolve(question.id, "yes", "operator")
    store.resolve(gone.id, "yes", "operator")
    assert [q.id for q in store.unnotified()] == [question.id, gone.id]
    store.mark_notified(question.id)
    store.mark_notified(gone.id, error="unknown agent 'ghost'")
    assert store.unnotified() == []


def test_vacuum_removes_only_old_settled_answers(store: QuestionStore, clock: _Clock) -> None:
    old = store.add(asker="alice", target="operator", question="old")
    undelivered = store.add(asker="alice", target="operator", question="undelivered")
    still_open = store.add(asker="alice", target="operator", question="open")
    store.resolve(old.id, "a", "operator")
    store.mark_notified(old.id)
    store.resolve(undelivered.id, "b", "operator")
    clock.now += 31 * 86400
    assert store.vacuum(30 * 86400) == 1
    assert store.get(old.id) is None
    assert store.get(undelivered.id) is not None
    assert store.get(still_open.id) is not None


def test_delete_forgets_a_question(store: QuestionStore) -> None:
    question = store.add(asker="alice", target="bob", question="1")
    store.delete(question.id)
    assert store.get(question.id) is None


def test_a_newer_schema_is_refused(tmp_path: Path, clock: _Clock) -> None:
    path = tmp_path / "q.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer than this hyperhive understands"):
        QuestionStore(path, now=clock)


def test_unstorable_text_is_a_store_error(store: QuestionStore) -> None:
    with pytest.raises(StoreError, match="not valid unicode"):
        store.add(asker="alice", target="operator", question="bad \udc80")
