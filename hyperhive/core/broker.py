"""The broker actor: durable per-agent inboxes over one sqlite file, with group commit.

Every request that touches the message store goes through this one actor, which owns the
`BrokerStore` (its single writer). The loop takes the first queued request, drains whatever else
is queued behind it, and applies the whole batch in ONE transaction on a worker thread: sends are
inserted, acks and requeues applied, and every receive (including parked long-polls whose
recipient just got mail) popped, then one fsync covers all of it. Only after the commit does any
caller get its reply, so an acknowledged `send` survives a power cut.

Long-poll `recv`: a receive that finds nothing and may wait is parked here, with its deadline.
When a batch stores mail for a parked recipient, the pop for that waiter runs in the same
transaction as the insert, so a wake costs no extra commit. A timer task answers waiters whose
deadline passed with an empty list. A batch wakes at most as many waiters of a recipient as it
stores messages for it (and at most `Limits.parked_recvs` are parked per agent), so a send
costs the same however many recvs wait.

Limits (docs/limits.md), checked per item as a batch is collected: the body's size
(`max_body_bytes`), the sender's rate (`send_rate`, `send_burst`: a token bucket per agent) and
the recipient's unhandled messages (`inbox_messages`, counted in memory: pending plus in flight,
loaded from the store at start). A refused item gets `LimitReached` naming the limit; the
`LimitLog` tells the operator.

The operator's reads and writes are typed messages too (`ReadInbox`, `ListDeadLetters`,
`ReplayDead`, `DropDead`, `Vacuum`), each in its own transaction after the batch; a replayed
dead letter wakes only its own recipient's parked recvs. Surfaces reach the broker through
`hyperhive.core.messages.MessagesHandle`; store calls leave the trio thread through the
injected `Offload`.

A paused agent (`paused`, the agents actor's snapshot) is handed no mail: its recvs wait (or
answer empty) and its messages stay pending; `Resume` answers its parked recvs at once, with
whatever waits for it.

Accepts: `SendMessages`, `Receive`, `Ack`, `Requeue`, `Release`, `Resume`, `ReadInbox`,
`ReadRecent`, `ReadPending`, `ReadInflight`, `ReadPendingPage`, `CountMail`, `ListDeadLetters`,
`ReplayDead`, `DropDead`, `Vacuum`.
Emits (to the event hub): `MessageSent`, `MessageDelivered`, `MessageDeadLettered`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
import trio

from actors import ActorStatistics
from hyperhive import wire
from hyperhive.core.broker_store import BrokerStore
from hyperhive.core.limits import UNLIMITED_SENDERS, LimitLog, Limits, TokenBucket
from hyperhive.errors import BadRequest, HyperhiveError, LimitReached, UnknownAgent

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from actors import Mailbox, Reply
    from hyperhive.clock import WallClock
    from hyperhive.core.events import EventsHandle
    from hyperhive.offload import Offload

__all__ = [
    "MAX_RECV",
    "MAX_WAIT_SECONDS",
    "OPERATOR",
    "Ack",
    "Broker",
    "BrokerMsg",
    "CountMail",
    "DropDead",
    "ListDeadLetters",
    "ReadInbox",
    "ReadInflight",
    "ReadPending",
    "ReadRecent",
    "Receive",
    "ReplayDead",
    "Requeue",
    "Resume",
    "SendMessages",
    "Vacuum",
]

LOGGER = logging.getLogger("hyperhive.broker")
OPERATOR = "operator"
MAX_RECV = 32  # per recv call: bounds one reply's size and one claude prompt's inbox dump
MAX_WAIT_SECONDS = 180.0  # per long-poll: under MCP clients' tool-call timeouts
# Largest batch one transaction takes. Bounded so a flood cannot make one commit (and every
# caller waiting on it) arbitrarily slow; the rest waits for the next round.
MAX_BATCH = 512


@attrs.frozen
class SendMessages:
    """Store `(recipient, body)` items from `sender`, in order; one result per item.

    A client that pipelines several sends on its connection gets them grouped into one of
    these, so they share a commit. An item that is refused (unknown recipient, bad text) gets
    its error in its slot and does not affect the others.
    """

    sender: str
    items: tuple[tuple[str, str], ...]
    reply: Reply[list[wire.Message | HyperhiveError]]


@attrs.frozen
class Receive:
    recipient: str
    max: int
    wait_seconds: float
    reply: Reply[tuple[wire.Delivery, ...]]
    # Checked before a parked receive is woken with mail: is anyone still there to take it?
    alive: Callable[[], bool] = lambda: True
    # Called (in the broker's task, never blocking) once the receive is parked to wait.
    on_park: Callable[[], None] = lambda: None


@attrs.frozen
class Ack:
    """Ack everything delivered to `recipient` and not yet acked (its turn ended well)."""

    recipient: str
    reply: Reply[int]


@attrs.frozen
class Requeue:
    """Put `recipient`'s unacked deliveries back, to be redelivered flagged."""

    recipient: str
    reply: Reply[int]


@attrs.frozen
class Release:
    """Return deliveries that never reached their client to the queue, uncounted."""

    recipient: str
    ids: tuple[int, ...]
    reply: Reply[int]


@attrs.frozen
class ReadInbox:
    """The newest `limit` messages to the operator, newest first."""

    limit: int
    reply: Reply[list[wire.Message]]


@attrs.frozen
class ReadRecent:
    """The newest `limit` messages between anyone, newest first (the dashboard's flow)."""

    limit: int
    reply: Reply[list[wire.Message]]


@attrs.frozen
class ReadPending:
    """`recipient`'s oldest `limit` undelivered messages (a peek: nothing is delivered)."""

    recipient: str
    limit: int
    reply: Reply[list[wire.Delivery]]


@attrs.frozen
class ReadInflight:
    """`recipient`'s delivered, unacked messages, oldest first (diagnostics)."""

    recipient: str
    reply: Reply[list[wire.Delivery]]


@attrs.frozen
class ReadPendingPage:
    """`recipient`'s waiting messages, oldest first, at most `limit`, and how many wait."""

    recipient: str
    limit: int
    reply: Reply[tuple[list[wire.Message], int]]


@attrs.frozen
class CountMail:
    """Per recipient: (pending, in flight) message counts; recipients with none are absent."""

    reply: Reply[dict[str, tuple[int, int]]]


@attrs.frozen
class Resume:
    """`recipient` was resumed: answer its parked recvs now, with whatever waits for it."""

    recipient: str


@attrs.frozen
class ListDeadLetters:
    """Dead letters, oldest first, for one recipient or (None) all."""

    recipient: str | None
    reply: Reply[list[wire.DeadLetter]]


@attrs.frozen
class ReplayDead:
    """Make dead letter `id` pending again with a fresh attempt count."""

    id: int
    reply: Reply[wire.Message]


@attrs.frozen
class DropDead:
    """Delete dead letter `id` for good."""

    id: int
    reply: Reply[None]


@attrs.frozen
class Vacuum:
    """Delete messages acked more than `older_than` seconds ago; answers how many went."""

    older_than: float
    reply: Reply[int]


_Admin: TypeAlias = (
    ReadInbox
    | ReadRecent
    | ReadPending
    | ReadInflight
    | ReadPendingPage
    | CountMail
    | ListDeadLetters
    | ReplayDead
    | DropDead
    | Vacuum
)
BrokerMsg: TypeAlias = SendMessages | Receive | Ack | Requeue | Release | Resume | _Admin


@attrs.define
class _Waiter:
    receive: Receive
    deadline: float


@attrs.define
class _SendRequest:
    """One SendMessages being answered: refusals filled in now, stored rows after the commit."""

    msg: SendMessages
    results: list[wire.Message | HyperhiveError | None]


@attrs.define
class _Batch:
    """What one transaction does, decided in the trio thread, applied on the worker thread."""

    sends: list[tuple[str, str, str]] = attrs.Factory(list)  # (sender, recipient, body)
    send_requests: list[_SendRequest] = attrs.Factory(list)
    acks: list[Ack] = attrs.Factory(list)
    requeues: list[Requeue] = attrs.Factory(list)
    releases: list[Release] = attrs.Factory(list)
    pops: list[Receive] = attrs.Factory(list)
    admin: list[_Admin] = attrs.Factory(list)
    resumed: list[str] = attrs.Factory(list)


@attrs.define
class _Outcome:
    stored: list[wire.Message]
    acked: list[int]
    requeued: list[tuple[int, list[wire.DeadLetter]]]
    released: list[int]
    popped: list[list[wire.Delivery]]


class Broker:
    """Owns the message store; see the module docstring for the batching and long-poll rules.

    Args:
        mailbox: the actor's mailbox.
        path: the sqlite file.
        clock: wall clock for row stamps.
        offload: how store calls leave the trio thread.
        events: where message events go (never blocks the broker).
        known: whether a recipient name exists; sends to anyone else are refused.
        paused: whether an agent is paused (handed no mail until it is resumed).
        limits, limit_log: the bounds and who hit them (docs/limits.md).
        max_redeliveries: unacked deliveries allowed before a message is dead-lettered.
    """

    def __init__(
        self,
        mailbox: Mailbox[BrokerMsg],
        *,
        path: Path,
        clock: WallClock,
        offload: Offload,
        events: EventsHandle,
        known: Callable[[str], bool],
        limits: Limits,
        limit_log: LimitLog,
        paused: Callable[[str], bool] = lambda name: False,
        max_redeliveries: int = 5,
    ) -> None:
        self._mailbox = mailbox
        self._inbox = mailbox.inbox
        self._path = path
        self._clock = clock
        self._offload = offload
        # The store stamps rows with this, read on the worker thread; it is set from the wall
        # clock in the actor's own task before each hop, since a WallClock need not be
        # thread-safe (FakeWallClock reads trio's clock, which a worker thread cannot).
        self._stamp = clock.now()
        self._events = events
        self._known = known
        self._paused = paused
        # Receives to answer even with nothing for them (their agent was just resumed).
        self._answer_empty: set[int] = set()
        self._max_redeliveries = max_redeliveries
        self._limits = limits
        self._limit_log = limit_log
        self._last_error: str | None = None
        self._stored = 0
        self._delivered = 0
        # Parked receives per recipient, oldest first (dicts keep insertion order).
        self._waiters: dict[str, dict[int, _Waiter]] = {}
        self._parked_count = 0
        self._deadlines: list[tuple[float, int, _Waiter]] = []
        self._buckets: dict[str, TokenBucket] = {}
        self._unacked: Counter[str] = Counter()
        self._tiebreak = itertools.count()
        self._deadlines_changed = trio.Event()

    def statistics(self) -> ActorStatistics:
        """Queue, last message, last error; parked recvs, messages stored and delivered."""
        return ActorStatistics.of(
            self._mailbox.statistics(),
            last_error=self._last_error,
            parked=self._parked_count,
            stored=self._stored,
            delivered=self._delivered,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the store, serve batches until asked to stop, close the store.

        Cancellation: a batch cancelled mid-commit is either committed or rolled back by
        sqlite; its callers get `ActorStopped`/`ActorCrashed` from their mailbox either way.
        """
        store = await self._offload(self._open)
        try:
            self._unacked = Counter(await self._offload(store.unacked_counts))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._expire_waiters)
                task_status.started()
                async for first in self._inbox:
                    await self._run_batch(store, self._collect(first))
                nursery.cancel_scope.cancel()
        finally:
            store.close()

    def _open(self) -> BrokerStore:
        return BrokerStore(
            self._path, now=lambda: self._stamp, max_redeliveries=self._max_redeliveries
        )

    def _collect(self, first: BrokerMsg) -> _Batch:
        batch = _Batch()
        self._classify(first, batch)
        for _ in range(MAX_BATCH - 1):
            try:
                msg = self._inbox.receive_nowait()
            except trio.WouldBlock:
                break
            self._classify(msg, batch)
        return batch

    def _classify(self, msg: BrokerMsg, batch: _Batch) -> None:
        match msg:
            case SendMessages():
                now = trio.current_time()
                results: list[wire.Message | HyperhiveError | None] = [
                    self._refuse_send(msg.sender, recipient, body, now)
                    for recipient, body in msg.items
                ]
                batch.send_requests.append(_SendRequest(msg, results))
                batch.sends.extend(
                    (msg.sender, recipient, body)
                    for (recipient, body), refused in zip(msg.items, results, strict=True)
                    if refused is None
                )
            case Receive():
                if msg.reply.abandoned:
                    pass
                elif self._paused(msg.recipient):
                    self._settle_receive(msg, [])  # parks it (or answers empty): no mail
                else:
                    batch.pops.append(msg)
            case Ack():
                batch.acks.append(msg)
            case Requeue():
                batch.requeues.append(msg)
            case Release():
                batch.releases.append(msg)
            case Resume(recipient=recipient):
                batch.resumed.append(recipient)
            case ReadInbox() | ReadRecent() | ReadPending() | ReadInflight() | ListDeadLetters():
                batch.admin.append(msg)
            case ReadPendingPage() | CountMail():
                batch.admin.append(msg)
            case ReplayDead() | DropDead():
                batch.admin.append(msg)
            case Vacuum():
                batch.admin.append(msg)

    def _refuse_send(
        self, sender: str, recipient: str, body: str, now: float
    ) -> HyperhiveError | None:
        """Why this item cannot be stored, or None (and then it counts as in the inbox)."""
        if not self._known(recipient):
            return UnknownAgent(f"unknown agent {recipient!r}; nothing was sent")
        if not body or body.isspace():
            return BadRequest("the message is empty; nothing was sent. Write something to send")
        limits = self._limits
        try:
            size = len(body) if body.isascii() else len(body.encode())
        except UnicodeEncodeError:
            return BadRequest("the message body is not valid unicode text; nothing was sent")
        if size > limits.max_body_bytes:
            self._hit(sender, "max_body_bytes", f"a {size}-byte message was refused")
            return LimitReached(
                f"the message body is {size} bytes, more than the limit of "
                f"{limits.max_body_bytes} (max_body_bytes); nothing was sent. Put long text in "
                "a file under /state and send its path"
            )
        if sender not in UNLIMITED_SENDERS:
            bucket = self._buckets.get(sender)
            if bucket is None:
                bucket = self._buckets[sender] = TokenBucket(
                    limits.send_rate, limits.send_burst, now
                )
            if not bucket.take(now):
                self._hit(sender, "send_rate", f"sending faster than {limits.send_rate:g}/s")
                return LimitReached(
                    f"send rate limit: at most {limits.send_rate:g} messages a second (bursts "
                    f"of {limits.send_burst}); nothing was sent. Slow down and send again"
                )
            if recipient != OPERATOR and self._unacked[recipient] >= limits.inbox_messages:
                self._hit(
                    recipient,
                    "inbox_messages",
                    f"inbox full ({limits.inbox_messages} unhandled); {sender}'s sends refused",
                )
                return LimitReached(
                    f"{recipient}'s inbox is full: {limits.inbox_messages} messages it has not "
                    f"handled yet (the inbox_messages limit); nothing was sent. Try again once "
                    f"{recipient} has caught up"
                )
        if recipient != OPERATOR:
            self._unacked[recipient] += 1
        return None

    def _hit(self, agent: str, limit: str, detail: str) -> None:
        self._limit_log.hit(agent, limit, detail)

    async def _run_batch(self, store: BrokerStore, batch: _Batch) -> None:
        # Parked waiters came first, so they pop before receives that arrived in this batch.
        batch.pops[:0] = self._wake_parked(batch)
        for name in batch.resumed:
            if not self._paused(name):
                woken = list(self._live_waiters(name, self._limits.parked_recvs))
                self._answer_empty.update(id(receive) for receive in woken)
                batch.pops[:0] = [r for r in woken if r not in batch.pops]
        if batch.send_requests or batch.acks or batch.requeues or batch.releases or batch.pops:
            try:
                self._stamp = self._clock.now()
                outcome = await self._offload(_apply, store, batch)
            except Exception as exc:
                self._last_error = repr(exc)
                _fail_all(batch, exc)
                raise
            self._answer(batch, outcome)
            self._answer_empty.clear()
        replayed: list[str] = []
        for admin in batch.admin:
            recipient = await self._on_admin(store, admin)
            if recipient is not None:
                replayed.append(recipient)
        wake = [
            r
            for recipient in replayed
            if not self._paused(recipient)
            for r in self._live_waiters(recipient, 1)
        ]
        if wake:
            # A replayed dead letter is mail for its recipient only: one pop, one waiter.
            await self._run_batch(store, _Batch(pops=wake))

    async def _on_admin(self, store: BrokerStore, msg: _Admin) -> str | None:
        """One operator read or write in its own transaction; returns the recipient of a
        replayed dead letter (who may have a parked recv to wake)."""
        self._stamp = self._clock.now()
        try:
            match msg:
                case ReadInbox(limit=limit):
                    msg.reply.send(await self._offload(store.recent_for, OPERATOR, max(0, limit)))
                case ReadRecent(limit=limit):
                    msg.reply.send(await self._offload(store.recent, max(0, limit)))
                case ReadPending(recipient=recipient, limit=limit):
                    msg.reply.send(await self._offload(store.pending, recipient, limit))
                case ReadInflight(recipient=recipient):
                    msg.reply.send(await self._offload(store.inflight, recipient))
                case ReadPendingPage(recipient=recipient, limit=limit):
                    msg.reply.send(
                        await self._offload(store.pending_page, recipient, max(0, limit))
                    )
                case CountMail():
                    msg.reply.send(await self._offload(store.mail_counts))
                case ListDeadLetters(recipient=recipient):
                    msg.reply.send(await self._offload(store.dead_letters, recipient))
                case ReplayDead(id=id):
                    message = await self._offload(store.replay_dead, id)
                    self._unacked[message.recipient] += 1
                    msg.reply.send(message)
                    return message.recipient
                case DropDead(id=id):
                    await self._offload(store.drop_dead, id)
                    msg.reply.send(None)
                case Vacuum(older_than=older_than):
                    msg.reply.send(await self._offload(store.vacuum, older_than))
        except Exception as exc:
            # A refused admin request (no such dead letter) or a store error fails that call.
            self._last_error = repr(exc)
            msg.reply.fail(exc)
        return None

    def _wake_parked(self, batch: _Batch) -> Iterator[Receive]:
        """Pops for parked waiters whose recipient gets mail in this batch, in FIFO order: at
        most one per message stored for it, so a send's cost does not grow with the waiters."""
        wanted: Counter[str] = Counter(recipient for _, recipient, _ in batch.sends)
        returned = [r.recipient for r in batch.requeues] + [r.recipient for r in batch.releases]
        for recipient in returned:
            wanted[recipient] = self._limits.parked_recvs  # any number came back
        for recipient in wanted.keys() & self._waiters.keys():
            if not self._paused(recipient):
                yield from self._live_waiters(recipient, wanted[recipient])

    def _live_waiters(self, recipient: str, count: int) -> Iterator[Receive]:
        """Up to `count` of `recipient`'s parked receives whose caller is still there; those
        whose caller left are answered empty and unparked on the way (the mail waits)."""
        for waiter in list(self._waiters.get(recipient, {}).values()):
            if count <= 0:
                return
            receive = waiter.receive
            if receive.reply.abandoned or not receive.alive():
                receive.reply.send(())
                self._unpark(receive)
            elif not receive.reply.answered:
                count -= 1
                yield receive

    def _answer(self, batch: _Batch, outcome: _Outcome) -> None:
        events: list[wire.EventPayload] = []
        stored = iter(outcome.stored)
        for request in batch.send_requests:
            results = [next(stored) if r is None else r for r in request.results]
            request.msg.reply.send(results)
        self._stored += len(outcome.stored)
        events.extend(wire.MessageSent(message) for message in outcome.stored)
        for ack, count in zip(batch.acks, outcome.acked, strict=True):
            self._handled(ack.recipient, count)
            ack.reply.send(count)
        for requeue, (count, dead) in zip(batch.requeues, outcome.requeued, strict=True):
            self._handled(requeue.recipient, len(dead))
            requeue.reply.send(count)
            events.extend(wire.MessageDeadLettered(d.id, d.recipient, d.attempts) for d in dead)
        for release, count in zip(batch.releases, outcome.released, strict=True):
            release.reply.send(count)
        for receive, deliveries in zip(batch.pops, outcome.popped, strict=True):
            self._delivered += len(deliveries)
            events.extend(wire.MessageDelivered(d.id, d.recipient, d.attempt) for d in deliveries)
            self._settle_receive(receive, deliveries)
        self._events.publish(*events)

    def _handled(self, recipient: str, count: int) -> None:
        if count and recipient in self._unacked:
            self._unacked[recipient] = max(0, self._unacked[recipient] - count)

    def _settle_receive(self, receive: Receive, deliveries: list[wire.Delivery]) -> None:
        answer_empty = id(receive) in self._answer_empty
        self._answer_empty.discard(id(receive))
        if deliveries or receive.wait_seconds <= 0 or receive.reply.abandoned or answer_empty:
            # (A caller that gave up while its pop was in the worker thread is not parked.)
            receive.reply.send(tuple(deliveries))
            self._unpark(receive)
        elif not self._is_parked(receive):
            self._park(receive)

    def _park(self, receive: Receive) -> None:
        recipient = receive.recipient
        # Callers that left are not counted against the limit: drop them first.
        for _ in self._live_waiters(recipient, self._limits.parked_recvs):
            pass
        waiters = self._waiters.setdefault(recipient, {})
        if len(waiters) >= self._limits.parked_recvs:
            limit = self._limits.parked_recvs
            self._hit(recipient, "parked_recvs", f"more than {limit} recvs waiting at once")
            receive.reply.fail(
                LimitReached(
                    f"{recipient} already has {limit} recvs waiting (the parked_recvs limit); "
                    "wait for one to return before starting another"
                )
            )
            if not waiters:
                del self._waiters[recipient]
            return
        waiter = _Waiter(receive, trio.current_time() + receive.wait_seconds)
        waiters[id(receive)] = waiter
        self._parked_count += 1
        heapq.heappush(self._deadlines, (waiter.deadline, next(self._tiebreak), waiter))
        try:
            receive.on_park()
        except Exception:  # the caller's hook; its failure must not take the broker down
            LOGGER.exception("a parked recv's on_park hook failed")
        if len(self._deadlines) > 2 * self._parked_count + 1024:
            # Unparked waiters stay in the heap until their deadline; keep it near the live set.
            live = {id(w) for ws in self._waiters.values() for w in ws.values()}
            self._deadlines = [entry for entry in self._deadlines if id(entry[2]) in live]
            heapq.heapify(self._deadlines)
        self._deadlines_changed.set()

    def _is_parked(self, receive: Receive) -> bool:
        return id(receive) in self._waiters.get(receive.recipient, {})

    def _unpark(self, receive: Receive) -> None:
        waiters = self._waiters.get(receive.recipient)
        if waiters is None:
            return
        if waiters.pop(id(receive), None) is not None:
            self._parked_count -= 1
        if not waiters:
            del self._waiters[receive.recipient]

    async def _expire_waiters(self) -> None:
        """Answer parked receives whose wait ran out with an empty list."""
        while True:
            self._deadlines_changed = trio.Event()
            deadline = self._deadlines[0][0] if self._deadlines else float("inf")
            with trio.move_on_at(deadline):
                await self._deadlines_changed.wait()
            now = trio.current_time()
            while self._deadlines and self._deadlines[0][0] <= now:
                _, _, waiter = heapq.heappop(self._deadlines)
                waiter.receive.reply.send(())
                self._unpark(waiter.receive)


def _apply(store: BrokerStore, batch: _Batch) -> _Outcome:
    """The worker-thread half: one transaction for the whole batch."""
    with store.batch():
        stored = store.send_many(batch.sends)
        if any(recipient == OPERATOR for _, recipient, _ in batch.sends):
            # The operator reads its inbox as history; nobody acks for it, so settle at once
            # and let the 30-day vacuum age it out like any acked message.
            store.pop(OPERATOR, len(batch.sends))
            store.ack(OPERATOR)
        acked = [store.ack(a.recipient) for a in batch.acks]
        requeued = [store.requeue_inflight(r.recipient) for r in batch.requeues]
        released = [store.release(r.recipient, r.ids) for r in batch.releases]
        popped = [store.pop(r.recipient, r.max) for r in batch.pops]
    return _Outcome(stored, acked, requeued, released, popped)


def _fail_all(batch: _Batch, exc: Exception) -> None:
    replies: list[Reply[Any]] = [request.msg.reply for request in batch.send_requests]
    replies += [msg.reply for msg in batch.acks]
    replies += [msg.reply for msg in batch.requeues]
    replies += [msg.reply for msg in batch.releases]
    replies += [msg.reply for msg in batch.pops]
    for reply in replies:
        reply.fail(exc)
