from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from hyperhive.core.broker_store import SCHEMA_VERSION, BrokerStore, raw_commit_rate
from hyperhive.errors import StoreError
from hyperhive.wire import DeadLetter, Delivery, Message


class FakeClock:
    """Wall clock the test moves by hand."""

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "broker.db"


@pytest.fixture
def store(db: Path, clock: FakeClock) -> Iterator[BrokerStore]:
    store = BrokerStore(db, now=clock)
    yield store
    store.close()


def ids(rows: list[Delivery] | list[Message] | list[DeadLetter]) -> list[int]:
    return [row.id for row in rows]


def send(store: BrokerStore, recipient: str, *bodies: str) -> list[Message]:
    return store.send_many([("sender", recipient, body) for body in bodies])


# --- sending -------------------------------------------------------------------------------


def test_send_many_returns_the_stored_rows_in_order(store: BrokerStore, clock: FakeClock) -> None:
    sent = store.send_many([("x", "a", "one"), ("y", "b", "two"), ("z", "a", "three")])

    assert sent == [
        Message(1, "x", "a", "one", clock.t),
        Message(2, "y", "b", "two", clock.t),
        Message(3, "z", "a", "three", clock.t),
    ]
    assert store.recent_for("a", 10) == [sent[2], sent[0]]
    assert store.recent_for("b", 10) == [sent[1]]


def test_send_many_of_nothing_stores_nothing(store: BrokerStore) -> None:
    assert store.send_many([]) == []
    assert send(store, "a", "first")[0].id == 1


def test_ids_are_never_reused_even_after_the_newest_row_is_deleted(
    store: BrokerStore, clock: FakeClock
) -> None:
    send(store, "a", "one", "two")
    store.pop("a", 2)
    store.ack("a")
    clock.t += 100
    assert store.vacuum(older_than=10) == 2

    assert ids(send(store, "a", "three")) == [3]
    assert ids(store.recent_for("a", 10)) == [3]


def test_a_failing_item_mid_batch_stores_none_of_the_batch(store: BrokerStore) -> None:
    # A lone surrogate is a valid Python str (json.loads makes one from "\ud800") that sqlite
    # cannot encode: it fails while binding the second row, after the first was inserted.
    with pytest.raises(StoreError, match=r"U\+D800") as caught:
        store.send_many([("x", "a", "fine"), ("x", "a", "bad \ud800"), ("x", "a", "fine too")])

    assert isinstance(caught.value.__cause__, UnicodeEncodeError)
    assert store.recent_for("a", 10) == []
    assert store.pending_counts() == {}
    # The rolled-back batch consumed no ids either.
    assert ids(send(store, "a", "after")) == [1]


# --- popping -------------------------------------------------------------------------------


def test_pop_is_fifo_per_recipient(store: BrokerStore) -> None:
    for n in range(5):
        send(store, "a", f"a{n}")
        send(store, "b", f"b{n}")

    popped = [d.body for d in store.pop("a", 2)] + [d.body for d in store.pop("a", 10)]

    assert popped == ["a0", "a1", "a2", "a3", "a4"]
    assert [d.body for d in store.pop("b", 10)] == ["b0", "b1", "b2", "b3", "b4"]


def test_pop_honours_max(store: BrokerStore) -> None:
    send(store, "a", *"12345")

    assert [len(store.pop("a", 2)) for _ in range(4)] == [2, 2, 1, 0]


@pytest.mark.parametrize("max", [0, -1])
def test_pop_rejects_a_max_below_one(store: BrokerStore, max: int) -> None:
    send(store, "a", "x")
    with pytest.raises(ValueError, match="max must be >= 1"):
        store.pop("a", max)
    assert store.has_pending("a")


def test_pop_leases_messages_as_first_deliveries(store: BrokerStore, clock: FakeClock) -> None:
    sent = send(store, "a", "hello")[0]
    clock.t += 5

    (delivery,) = store.pop("a", 1)

    assert delivery == Delivery(
        sent.id, "sender", "a", "hello", sent.sent_at, attempt=1, redelivered=False
    )
    assert store.inflight("a") == [delivery]
    assert not store.has_pending("a")
    assert store.pop("a", 1) == []


def test_pending_counts_and_has_pending_follow_pops(store: BrokerStore) -> None:
    send(store, "a", "1", "2", "3")
    send(store, "b", "1")
    assert store.pending_counts() == {"a": 3, "b": 1}
    assert store.has_pending("b")
    assert not store.has_pending("c")

    store.pop("a", 2)
    store.pop("b", 1)

    assert store.pending_counts() == {"a": 1}
    assert not store.has_pending("b")


# --- acking --------------------------------------------------------------------------------


def test_ack_settles_only_the_recipients_inflight_rows(store: BrokerStore) -> None:
    send(store, "a", "1", "2", "3")
    send(store, "b", "1")
    store.pop("a", 2)
    b_lease = store.pop("b", 1)

    assert store.ack("a") == 2
    assert store.ack("a") == 0
    assert store.inflight("a") == []
    assert store.inflight("b") == b_lease
    # The pending third message was not acked: it is still there to pop.
    assert [d.body for d in store.pop("a", 5)] == ["3"]


def test_acked_messages_are_not_requeued(store: BrokerStore) -> None:
    send(store, "a", "1")
    store.pop("a", 1)
    store.ack("a")

    assert store.requeue_inflight("a") == (0, [])
    assert store.pop("a", 1) == []


# --- requeue and dead letters --------------------------------------------------------------


def test_requeue_returns_leases_in_order_ahead_of_newer_mail(store: BrokerStore) -> None:
    send(store, "a", "1", "2", "3")
    store.pop("a", 2)
    send(store, "a", "4")

    assert store.requeue_inflight("a") == (2, [])
    redelivered = store.pop("a", 10)

    assert [(d.body, d.attempt, d.redelivered) for d in redelivered] == [
        ("1", 2, True),
        ("2", 2, True),
        ("3", 1, False),
        ("4", 1, False),
    ]


def test_requeue_leaves_other_recipients_alone(store: BrokerStore) -> None:
    send(store, "a", "1")
    send(store, "b", "1")
    store.pop("a", 1)
    b_lease = store.pop("b", 1)

    assert store.requeue_inflight("a") == (1, [])
    assert store.inflight("b") == b_lease
    assert store.pending_counts() == {"a": 1}


@pytest.mark.parametrize("max_redeliveries", [5, 1, 0])
def test_a_message_dies_after_max_redeliveries_unacked_redeliveries(
    db: Path, clock: FakeClock, max_redeliveries: int
) -> None:
    store = BrokerStore(db, now=clock, max_redeliveries=max_redeliveries)
    sent = send(store, "a", "poison")[0]

    for attempt in range(1, max_redeliveries + 1):
        (delivery,) = store.pop("a", 1)
        assert delivery.attempt == attempt
        assert store.requeue_inflight("a") == (1, [])
    (last,) = store.pop("a", 1)
    clock.t += 7
    requeued, dead = store.requeue_inflight("a")

    assert last.attempt == max_redeliveries + 1
    assert requeued == 0
    expected = DeadLetter(sent.id, "sender", "a", "poison", sent.sent_at, last.attempt, clock.t)
    assert dead == [expected]
    assert store.dead_letters() == [expected]
    assert store.pop("a", 1) == []
    assert store.inflight("a") == []
    assert store.pending_counts() == {}
    store.close()


def test_requeue_dead_letters_only_the_exhausted_rows(db: Path) -> None:
    store = BrokerStore(db, now=FakeClock(), max_redeliveries=1)
    send(store, "a", "old")
    store.pop("a", 1)
    store.requeue_inflight("a")
    send(store, "a", "new")
    assert [d.attempt for d in store.pop("a", 2)] == [2, 1]

    requeued, dead = store.requeue_inflight("a")

    assert requeued == 1
    assert [letter.body for letter in dead] == ["old"]
    assert [(d.body, d.attempt) for d in store.pop("a", 2)] == [("new", 2)]
    store.close()


def kill(store: BrokerStore, recipient: str, body: str) -> DeadLetter:
    """Send one message and requeue it until it dies (store made with max_redeliveries=0)."""
    send(store, recipient, body)
    store.pop(recipient, 1)
    _, (letter,) = store.requeue_inflight(recipient)
    return letter


@pytest.fixture
def fragile(db: Path, clock: FakeClock) -> Iterator[BrokerStore]:
    store = BrokerStore(db, now=clock, max_redeliveries=0)
    yield store
    store.close()


def test_dead_letters_can_be_listed_per_recipient(fragile: BrokerStore) -> None:
    a1 = kill(fragile, "a", "1")
    b1 = kill(fragile, "b", "1")
    a2 = kill(fragile, "a", "2")

    assert fragile.dead_letters() == [a1, b1, a2]
    assert fragile.dead_letters("a") == [a1, a2]
    assert fragile.dead_letters("c") == []


def test_replay_puts_a_dead_letter_back_first_with_a_fresh_count(fragile: BrokerStore) -> None:
    letter = kill(fragile, "a", "poison")
    send(fragile, "a", "newer")

    replayed = fragile.replay_dead(letter.id)

    assert replayed == Message(letter.id, "sender", "a", "poison", letter.sent_at)
    assert fragile.dead_letters() == []
    first, second = fragile.pop("a", 2)
    assert (first.id, first.attempt, first.redelivered) == (letter.id, 1, False)
    assert second.body == "newer"
    # The fresh count means it can die again, through the same rule.
    assert fragile.requeue_inflight("a")[1][0].id == letter.id


def test_drop_deletes_a_dead_letter_for_good(fragile: BrokerStore) -> None:
    keep = kill(fragile, "a", "keep")
    drop = kill(fragile, "a", "drop")

    fragile.drop_dead(drop.id)

    assert fragile.dead_letters() == [keep]
    assert ids(fragile.recent_for("a", 10)) == [keep.id]
    with pytest.raises(StoreError, match=f"no dead letter with id {drop.id}"):
        fragile.drop_dead(drop.id)


@pytest.mark.parametrize("operation", ["replay_dead", "drop_dead"])
def test_replay_and_drop_refuse_rows_that_are_not_dead(
    fragile: BrokerStore, operation: str
) -> None:
    pending, inflight, acked = send(fragile, "a", "pending", "inflight", "acked")
    # Order the states: acked first, then one inflight, then one left pending.
    fragile.pop("a", 1)
    fragile.ack("a")
    fragile.pop("a", 1)
    before = (fragile.recent_for("a", 10), fragile.inflight("a"), fragile.pending_counts())

    for id in (pending.id, inflight.id, acked.id, 99):
        with pytest.raises(StoreError, match=f"no dead letter with id {id}"):
            getattr(fragile, operation)(id)

    assert (fragile.recent_for("a", 10), fragile.inflight("a"), fragile.pending_counts()) == before


# --- vacuum --------------------------------------------------------------------------------


def test_vacuum_deletes_only_rows_acked_long_enough_ago(
    fragile: BrokerStore, clock: FakeClock
) -> None:
    old = send(fragile, "a", "acked long ago")[0]
    fragile.pop("a", 1)
    fragile.ack("a")
    clock.t += 40
    edge = send(fragile, "a", "acked exactly at the cutoff")[0]
    fragile.pop("a", 1)
    fragile.ack("a")
    dead = kill(fragile, "b", "dead")
    inflight = send(fragile, "c", "inflight")[0]
    fragile.pop("c", 1)
    pending = send(fragile, "d", "pending")[0]
    clock.t += 60

    assert fragile.vacuum(older_than=60) == 1

    remaining = {m.id for r in "abcd" for m in fragile.recent_for(r, 10)}
    assert remaining == {edge.id, dead.id, inflight.id, pending.id}
    assert old.id not in remaining
    assert fragile.dead_letters() == [dead]
    assert ids(fragile.inflight("c")) == [inflight.id]
    assert fragile.pending_counts() == {"d": 1}


# --- history -------------------------------------------------------------------------------


def test_recent_for_is_newest_first_in_every_state(fragile: BrokerStore) -> None:
    dead = kill(fragile, "op", "dead")
    acked, inflight, pending = send(fragile, "op", "acked", "inflight", "pending")
    fragile.pop("op", 1)
    fragile.ack("op")
    fragile.pop("op", 1)
    send(fragile, "someone else", "not mine")

    assert ids(fragile.recent_for("op", 10)) == [pending.id, inflight.id, acked.id, dead.id]
    assert ids(fragile.recent_for("op", 2)) == [pending.id, inflight.id]
    assert fragile.recent_for("op", 0) == []


# --- durability and schema -----------------------------------------------------------------


def test_pending_and_inflight_rows_survive_a_restart(db: Path, clock: FakeClock) -> None:
    store = BrokerStore(db, now=clock)
    send(store, "a", "1", "2", "3")
    leased = store.pop("a", 2)
    store.close()

    reopened = BrokerStore(db, now=clock)

    assert reopened.inflight("a") == leased
    assert reopened.pending_counts() == {"a": 1}
    assert reopened.requeue_inflight("a") == (2, [])
    assert [(d.body, d.redelivered) for d in reopened.pop("a", 5)] == [
        ("1", True),
        ("2", True),
        ("3", False),
    ]
    assert ids(send(reopened, "a", "4")) == [4]
    reopened.close()


def user_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return version


def test_reopening_a_current_database_migrates_nothing(db: Path, clock: FakeClock) -> None:
    store = BrokerStore(db, now=clock)
    send(store, "a", "kept")
    store.close()

    for _ in range(2):
        store = BrokerStore(db, now=clock)
        assert [m.body for m in store.recent_for("a", 10)] == ["kept"]
        store.close()
    assert user_version(db) == SCHEMA_VERSION


def test_an_empty_file_becomes_a_current_store(db: Path, clock: FakeClock) -> None:
    db.touch()
    store = BrokerStore(db, now=clock)
    assert ids(send(store, "a", "x")) == [1]
    store.close()
    assert user_version(db) == SCHEMA_VERSION


def test_a_database_from_a_newer_hyperhive_is_refused(db: Path, clock: FakeClock) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(StoreError, match="newer than this hyperhive understands"):
        BrokerStore(db, now=clock)


def test_the_store_uses_write_ahead_logging(store: BrokerStore, db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


# --- error translation ---------------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_a_store_error(db: Path, clock: FakeClock) -> None:
    db.write_bytes(b"this is not sqlite, " * 100)

    with pytest.raises(StoreError, match=re.escape(str(db))) as caught:
        BrokerStore(db, now=clock)

    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_an_unopenable_path_is_a_store_error(tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(StoreError, match="could not open the message store") as caught:
        BrokerStore(tmp_path / "missing" / "broker.db", now=clock)

    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


def test_using_a_closed_store_is_a_store_error(db: Path, clock: FakeClock) -> None:
    store = BrokerStore(db, now=clock)
    store.close()
    store.close()

    with pytest.raises(StoreError, match="could not store 1 message"):
        send(store, "a", "x")
    with pytest.raises(StoreError, match="could not count pending messages"):
        store.pending_counts()


def test_a_write_blocked_by_another_writer_is_a_store_error(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hyperhive.core.sqlite.BUSY_TIMEOUT_MS", 0)
    store = BrokerStore(db, now=clock)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    with pytest.raises(StoreError, match="database is locked") as caught:
        send(store, "a", "x")

    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    other.execute("ROLLBACK")
    other.close()
    # The failed write left nothing half-done: the store works once the lock is gone.
    assert ids(send(store, "a", "y")) == [1]
    store.close()


def test_raw_commit_rate_commits_at_least_once(tmp_path: Path) -> None:
    rate = raw_commit_rate(tmp_path / "probe.db", 0.0)

    assert rate > 0
    with sqlite3.connect(tmp_path / "probe.db") as conn:
        assert conn.execute("SELECT count(*) FROM commit_probe").fetchone()[0] >= 1
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


# --- the store against a model -------------------------------------------------------------


@attrs.define
class Row:
    message: Message
    state: str = "pending"  # pending | inflight | acked | dead
    attempts: int = 0
    acked_at: float | None = None
    dead_at: float | None = None


RECIPIENTS = st.sampled_from(["a", "b"])
MAX_REDELIVERIES = 1


class StoreMatchesModel(RuleBasedStateMachine):
    """Random send/pop/ack/requeue/replay/drop/vacuum/restart runs agree with a dict model."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=root))
        self.clock = FakeClock()
        self.store = self.open()
        self.rows: dict[int, Row] = {}
        self.next_id = 1

    def open(self) -> BrokerStore:
        return BrokerStore(
            self.dir / "broker.db", now=self.clock, max_redeliveries=MAX_REDELIVERIES
        )

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir)

    def of(self, recipient: str | None, state: str) -> list[Row]:
        """The model's rows in ``state``, for one recipient or all, oldest id first."""
        return [
            row
            for _, row in sorted(self.rows.items())
            if row.state == state and recipient in (None, row.message.recipient)
        ]

    @staticmethod
    def delivery(row: Row) -> Delivery:
        m = row.message
        return Delivery(
            m.id, m.sender, m.recipient, m.body, m.sent_at, row.attempts, row.attempts > 1
        )

    @staticmethod
    def letter(row: Row) -> DeadLetter:
        m = row.message
        assert row.dead_at is not None
        return DeadLetter(m.id, m.sender, m.recipient, m.body, m.sent_at, row.attempts, row.dead_at)

    @rule(batch=st.lists(st.tuples(RECIPIENTS, st.text(max_size=4)), max_size=4))
    def send(self, batch: list[tuple[str, str]]) -> None:
        sent = self.store.send_many([("s", recipient, body) for recipient, body in batch])
        expected = [
            Message(self.next_id + i, "s", recipient, body, self.clock.t)
            for i, (recipient, body) in enumerate(batch)
        ]
        assert sent == expected
        for message in expected:
            self.rows[message.id] = Row(message)
        self.next_id += len(batch)

    @rule(recipient=RECIPIENTS, max=st.integers(1, 3))
    def pop(self, recipient: str, max: int) -> None:
        popped = self.of(recipient, "pending")[:max]
        for row in popped:
            row.state, row.attempts = "inflight", row.attempts + 1
        assert self.store.pop(recipient, max) == [self.delivery(row) for row in popped]

    @rule(recipient=RECIPIENTS)
    def ack(self, recipient: str) -> None:
        settled = self.of(recipient, "inflight")
        for row in settled:
            row.state, row.acked_at = "acked", self.clock.t
        assert self.store.ack(recipient) == len(settled)

    @rule(recipient=RECIPIENTS)
    def requeue(self, recipient: str) -> None:
        dead, requeued = [], 0
        for row in self.of(recipient, "inflight"):
            if row.attempts >= 1 + MAX_REDELIVERIES:
                row.state, row.dead_at = "dead", self.clock.t
                dead.append(self.letter(row))
            else:
                row.state, requeued = "pending", requeued + 1
        assert self.store.requeue_inflight(recipient) == (requeued, dead)

    @rule(id=st.integers(1, 12))
    def replay(self, id: int) -> None:
        row = self.rows.get(id)
        if row is None or row.state != "dead":
            with pytest.raises(StoreError, match="no dead letter"):
                self.store.replay_dead(id)
            return
        row.state, row.attempts, row.dead_at = "pending", 0, None
        assert self.store.replay_dead(id) == row.message

    @rule(id=st.integers(1, 12))
    def drop(self, id: int) -> None:
        row = self.rows.get(id)
        if row is None or row.state != "dead":
            with pytest.raises(StoreError, match="no dead letter"):
                self.store.drop_dead(id)
            return
        del self.rows[id]
        self.store.drop_dead(id)

    @rule(older_than=st.sampled_from([0.0, 5.0, 10.0]))
    def vacuum(self, older_than: float) -> None:
        cutoff = self.clock.t - older_than
        old = [
            id
            for id, row in self.rows.items()
            if row.acked_at is not None and row.acked_at < cutoff
        ]
        for id in old:
            del self.rows[id]
        assert self.store.vacuum(older_than) == len(old)

    # Steps of 0 and 5 make acks land exactly on a vacuum cutoff now and then.
    @rule(seconds=st.sampled_from([0, 1, 5]))
    def tick(self, seconds: int) -> None:
        self.clock.t += seconds

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = self.open()

    @invariant()
    def store_agrees_with_model(self) -> None:
        counts = {r: len(self.of(r, "pending")) for r in "ab"}
        assert self.store.pending_counts() == {r: n for r, n in counts.items() if n}
        assert self.store.dead_letters() == [self.letter(row) for row in self.of(None, "dead")]
        for r in "ab":
            assert self.store.has_pending(r) == bool(counts[r])
            assert self.store.inflight(r) == [self.delivery(row) for row in self.of(r, "inflight")]
            mine = sorted(
                (row.message for row in self.rows.values() if row.message.recipient == r),
                key=lambda message: -message.id,
            )
            assert self.store.recent_for(r, 100) == mine


def test_store_matches_model(tmp_path: Path) -> None:
    run_state_machine_as_test(
        lambda: StoreMatchesModel(tmp_path),
        settings=settings(max_examples=100, stateful_step_count=30, deadline=None),
    )


def test_batch_groups_writes_into_one_transaction_all_or_nothing(tmp_path: Path) -> None:
    store = BrokerStore(tmp_path / "b.sqlite", now=lambda: 1000.0)
    store.send_many([("alice", "bob", "kept")])

    def failing_batch() -> None:
        with store.batch():
            store.send_many([("alice", "bob", "rolled back")])
            assert [d.body for d in store.pop("bob", 5)] == ["kept", "rolled back"]
            store.ack("bob")
            store.send_many([("alice", "bob", "bad \ud800")])

    with pytest.raises(StoreError):
        failing_batch()
    # Nothing inside the failed batch happened: "kept" is still pending and nothing else exists.
    assert [d.body for d in store.pop("bob", 5)] == ["kept"]
    with store.batch():
        store.send_many([("alice", "bob", "one"), ("alice", "carol", "two")])
        assert [d.body for d in store.pop("carol", 5)] == ["two"]
    assert [d.body for d in store.pop("bob", 5)] == ["one"]
