from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hyperhive.core.event_log import EventLog, SubscriberQueue
from hyperhive.wire import AgentRegistered, Event, EventGap


def registered(n: int) -> AgentRegistered:
    return AgentRegistered(name=f"agent-{n}")


def event(seq: int) -> Event:
    return Event(seq=seq, at=100.0 + seq, payload=registered(seq))


# True publishes an event, False makes the subscriber read its feed. Publishing twice as often
# as reading fills small queues, so gaps (and gaps straddling a snapshot) are common.
SCRIPTS = st.lists(st.sampled_from([True, True, False]), max_size=30)


def seqs(events: list[Event]) -> list[int]:
    return [e.seq for e in events]


# --- EventLog ------------------------------------------------------------------------------


def test_seqs_start_at_one_and_rise_by_one() -> None:
    log = EventLog()
    assert log.seq == 0

    appended = [log.append(registered(n), at=10.0 + n) for n in range(3)]

    assert appended == [
        Event(seq=1, at=10.0, payload=registered(0)),
        Event(seq=2, at=11.0, payload=registered(1)),
        Event(seq=3, at=12.0, payload=registered(2)),
    ]
    assert log.seq == 3


def test_history_keeps_only_the_newest_events() -> None:
    log = EventLog(history=3)
    for n in range(5):
        log.append(registered(n), at=0.0)

    current, events = log.snapshot(10)

    assert current == 5
    assert seqs(events) == [3, 4, 5]


def test_snapshot_returns_the_newest_limit_events_oldest_first() -> None:
    log = EventLog()
    for n in range(5):
        log.append(registered(n), at=0.0)

    assert seqs(log.snapshot(2)[1]) == [4, 5]
    assert log.snapshot(0) == (5, [])
    assert EventLog().snapshot(10) == (0, [])


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="history must be >= 1"):
        EventLog(history=0)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        EventLog().snapshot(-1)
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        SubscriberQueue(0)


# --- SubscriberQueue -----------------------------------------------------------------------


def test_take_returns_everything_queued_oldest_first_once() -> None:
    queue = SubscriberQueue(capacity=3)
    for seq in (1, 2, 3):
        queue.offer(event(seq))
    assert len(queue) == 3

    assert queue.take() == [event(1), event(2), event(3)]
    assert queue.take() == []
    assert len(queue) == 0
    assert queue.dropped == 0


def test_a_full_queue_reports_exactly_what_it_dropped() -> None:
    queue = SubscriberQueue(capacity=2)
    for seq in range(1, 6):
        queue.offer(event(seq))

    assert len(queue) == 3
    assert queue.dropped == 3
    assert queue.take() == [
        event(1),
        event(2),
        Event(seq=5, at=event(5).at, payload=EventGap(first_seq=3, last_seq=5)),
    ]


def test_after_take_the_queue_accepts_again_and_reports_a_new_gap_separately() -> None:
    queue = SubscriberQueue(capacity=1)
    for seq in (1, 2):
        queue.offer(event(seq))
    queue.take()

    for seq in (3, 4, 5):
        queue.offer(event(seq))

    assert queue.take() == [event(3), Event(5, event(5).at, EventGap(4, 5))]
    assert queue.dropped == 3


@given(capacity=st.integers(1, 5), script=SCRIPTS)
def test_frames_account_for_every_offered_event_once_in_order(
    capacity: int, script: list[bool]
) -> None:
    """True offers the next event, False takes; every seq ends up delivered or in one gap."""
    queue = SubscriberQueue(capacity)
    offered = 0
    frames: list[Event] = []
    for offer in script:
        if offer:
            offered += 1
            queue.offer(event(offered))
        else:
            frames += queue.take()
    frames += queue.take()

    assert seqs(frames) == sorted(set(seqs(frames)))
    assert covered(frames) == list(range(1, offered + 1))
    delivered = sum(not isinstance(f.payload, EventGap) for f in frames)
    assert queue.dropped == offered - delivered


def covered(frames: list[Event]) -> list[int]:
    """Every seq the frames account for, counting a gap as its whole range, in frame order."""
    result: list[int] = []
    for frame in frames:
        if isinstance(frame.payload, EventGap):
            result += range(frame.payload.first_seq, frame.payload.last_seq + 1)
        else:
            result.append(frame.seq)
    return result


# --- joining: subscribe, buffer, snapshot, dedupe ------------------------------------------


@settings(max_examples=300)
@given(
    history=st.integers(1, 40),
    capacity=st.integers(1, 6),
    limit=st.integers(0, 50),
    before=st.integers(0, 30),
    while_fetching=SCRIPTS,
    after=SCRIPTS,
)
# The queue overflows before the snapshot and keeps dropping after it: the gap straddles the
# snapshot's seq, and its frame must survive the client's "seq > snapshot seq" filter.
@example(history=10, capacity=1, limit=10, before=0, while_fetching=[True, True], after=[True])
def test_a_client_joining_mid_stream_loses_nothing_and_sees_nothing_twice(
    history: int,
    capacity: int,
    limit: int,
    before: int,
    while_fetching: list[bool],
    after: list[bool],
) -> None:
    """The client subscribes, buffers the feed while its History request is answered, then
    drops buffered frames with seq <= the snapshot's seq. True publishes, False reads the feed.
    """
    log = EventLog(history=history)
    queue: SubscriberQueue | None = None
    buffered: list[Event] = []

    def publish() -> None:
        appended = log.append(registered(log.seq), at=float(log.seq))
        if queue is not None:
            queue.offer(appended)

    def run(script: list[bool]) -> None:
        nonlocal buffered
        for step in script:
            if step:
                publish()
            else:
                buffered += queue.take() if queue else []

    for _ in range(before):
        publish()
    queue = SubscriberQueue(capacity)
    run(while_fetching)
    snapshot_seq, snapshot = log.snapshot(limit)
    run(after)
    buffered += queue.take()

    view = snapshot + [frame for frame in buffered if frame.seq > snapshot_seq]

    events = [frame.seq for frame in view if not isinstance(frame.payload, EventGap)]
    assert events == sorted(set(events)), "an event arrived twice or out of order"
    start = snapshot[0].seq if snapshot else snapshot_seq + 1
    assert set(covered(view)) >= set(range(start, log.seq + 1)), "an event went missing"
    assert set(events) <= set(range(start, log.seq + 1))
