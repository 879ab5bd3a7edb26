"""Questions: an agent asks the operator or a peer, someone answers, the asker is told.

The rules (docs/questions.md), as plain functions tested without trio:

- ``ask`` goes to the operator unless ``to`` names another agent (or the manager); asking
  yourself is refused, and so is a target that is not registered.
- An operator-targeted question is answered only by the operator. An agent-targeted one is
  answered by that agent, or by the operator as an override. Nobody answers twice.
- A question with a ttl that runs out is answered by the ``ttl-watchdog`` with an expiry text,
  so the asker is never left waiting.
- ``cancel_loose_end("question", id)`` answers ``[cancelled by <name>]``; only the asker, the
  manager or the operator may cancel.
- Whatever settles a question, the asker gets a `wire.QuestionAnswered` helper event in its
  inbox; a peer target gets a `wire.QuestionAsked` helper event when asked.

`QuestionDesk` is the actor that owns the `QuestionStore`, in one task with no lock: the ttl
watchdog is a `Ticker` posting `ExpiryTick` into its mailbox, and telling an agent goes through
its outbox, drained by its sender task, which posts `Told` back. The desk never waits on the
broker while it holds its state: an ask of a peer is answered when `Told` says the peer has it.
Surfaces reach it through `QuestionsHandle`.

Accepts: `AskQuestion`, `AnswerQuestion`, `CancelQuestion`, `ListOpenQuestions`,
`ListOperatorQuestions` (and its own `ExpiryTick`, `Told`).
Emits (to the event hub): `QuestionAdded`, `QuestionResolved`. Sends helper events through
the broker as `wire.HELPER_SENDER`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

import attrs
import trio

from actors import ActorError, ActorStatistics, MailboxFull, Reply
from hyperhive import wire
from hyperhive.core.question_store import QuestionStore
from hyperhive.core.timers import Outbox, Ticker, due
from hyperhive.errors import (
    BadRequest,
    HyperhiveError,
    InternalError,
    LimitReached,
    NotAllowed,
    NotFound,
    UnknownAgent,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from actors import Mailbox
    from hyperhive.clock import WallClock
    from hyperhive.core.events import EventsHandle
    from hyperhive.core.limits import LimitLog, Limits
    from hyperhive.core.listener import Identity
    from hyperhive.core.messages import MessagesHandle
    from hyperhive.offload import Offload

__all__ = [
    "MAX_TTL_SECONDS",
    "OPERATOR",
    "WATCHDOG",
    "AnswerQuestion",
    "AskQuestion",
    "CancelQuestion",
    "ExpiryTick",
    "ListOpenQuestions",
    "ListOperatorQuestions",
    "QuestionDesk",
    "QuestionsHandle",
    "QuestionsMsg",
    "Told",
    "answer_refusal",
    "cancel_refusal",
    "cancelled_answer",
    "expiry_answer",
    "fair_share",
    "validate_answer",
    "validate_ask",
]

LOGGER = logging.getLogger("hyperhive.questions")
CALL_TIMEOUT: Final = 30.0
OPERATOR: Final = "operator"
WATCHDOG: Final = "ttl-watchdog"
MAX_TTL_SECONDS: Final = 30 * 86400.0
MAX_OPTIONS: Final = wire.MAX_OPTIONS
# Answered questions are kept this long for `hyperhive questions --answered`, then deleted.
RETENTION_SECONDS: Final = 30 * 86400.0
VACUUM_INTERVAL: Final = 86400.0

# --------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------


def validate_ask(asker: str, request: wire.Ask, known: Callable[[str], bool]) -> str:
    """Check an ask and return its target (``operator`` or an agent name).

    Raises:
        NotAllowed: asking yourself.
        UnknownAgent: ``to`` names nobody.
        BadRequest: empty question, bad options, ``multi`` without options, a bad ttl.
    """
    target = request.to or OPERATOR
    if target == asker:
        raise NotAllowed("you cannot ask yourself a question; ask the operator or another agent")
    if target != OPERATOR and not known(target):
        raise UnknownAgent(f"unknown agent {target!r}; nothing was asked")
    _check_text("question", request.question)
    for option in request.options:
        _check_text("option", option)
    if len(set(request.options)) != len(request.options):
        raise BadRequest("the options repeat themselves; give each choice once")
    if len(request.options) > MAX_OPTIONS:
        raise BadRequest(f"at most {MAX_OPTIONS} options; put long lists in the question text")
    if request.multi and not request.options:
        raise BadRequest("multi needs options to pick from")
    ttl = request.ttl_seconds
    if ttl is not None and not (math.isfinite(ttl) and 0 < ttl <= MAX_TTL_SECONDS):
        raise BadRequest(
            f"ttl_seconds must be more than 0 and at most {MAX_TTL_SECONDS:.0f} (30 days)"
        )
    return target


def validate_answer(answer: str) -> None:
    """Raises BadRequest for an empty or unstorable answer."""
    _check_text("answer", answer)


def answer_refusal(question: wire.Question, by: Identity) -> str | None:
    """Why `by` may not answer `question`, or None if it may."""
    ref = f"question #{question.id}"
    if question.answered_at is not None:
        return f"{ref} is already answered (by {question.answerer})"
    if question.target == OPERATOR:
        if by.role == "operator":
            return None
        return f"{ref} was asked of the operator; only the operator can answer it"
    if by.role == "operator" or by.name == question.target:
        return None
    target = question.target
    return f"{ref} was asked of {target}; only {target} or the operator can answer it"


def cancel_refusal(question: wire.Question, by: Identity) -> str | None:
    """Why `by` may not cancel `question`, or None if it may (the asker, manager, operator)."""
    ref = f"question #{question.id}"
    if question.answered_at is not None:
        return f"{ref} is already answered (by {question.answerer}); nothing to cancel"
    if by.role in ("operator", "manager") or by.name == question.asker:
        return None
    asker = question.asker
    return f"{ref} was asked by {asker}; only {asker} or the manager can cancel it"


def expiry_answer(question: wire.Question) -> str:
    """The watchdog's answer to a question whose ttl ran out."""
    ttl = (question.expires_at or question.asked_at) - question.asked_at
    return (
        f"[expired: no answer from {question.target} within {_duration(ttl)}. Decide without "
        "it, or ask again if you still need it]"
    )


def cancelled_answer(name: str) -> str:
    """The answer a cancelled question gets, naming who cancelled it."""
    return f"[cancelled by {name}]"


def fair_share(questions: Sequence[wire.Question], limit: int) -> list[wire.Question]:
    """At most `limit` of `questions`, taken round-robin by asker, shown oldest first.

    The operator's list is shared by every agent: one agent asking thousands of questions must
    not push another agent's question out of sight. Each asker's oldest questions come first.
    """
    by_asker: dict[str, list[wire.Question]] = {}
    for question in questions:
        by_asker.setdefault(question.asker, []).append(question)
    queues = list(by_asker.values())
    chosen: list[wire.Question] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(queue) for queue in queues):
        for queue in queues:
            if depth < len(queue) and len(chosen) < limit:
                chosen.append(queue[depth])
        depth += 1
    return sorted(chosen, key=lambda q: q.id)


def _check_text(what: str, text: str) -> None:
    if not text.strip():
        raise BadRequest(f"the {what} is empty")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise BadRequest(f"the {what} is not valid unicode text") from None


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


# --------------------------------------------------------------------------------------------
# The actor
# --------------------------------------------------------------------------------------------


@attrs.frozen
class AskQuestion:
    asker: str
    request: wire.Ask
    reply: Reply[wire.Question]


@attrs.frozen
class AnswerQuestion:
    id: int
    answer: str
    by: Identity
    reply: Reply[wire.Question]


@attrs.frozen
class CancelQuestion:
    id: int
    by: Identity
    reply: Reply[wire.Question]


@attrs.frozen
class ListOpenQuestions:
    """Open questions asked by or of ``involving``, or all of them when it is None."""

    involving: str | None
    reply: Reply[list[wire.Question]]


@attrs.frozen
class ListOperatorQuestions:
    """The operator's queue (open, oldest first) or its recent answers (newest first)."""

    answered: bool
    limit: int
    reply: Reply[list[wire.Question]]


@attrs.frozen
class ExpiryTick:
    """The desk's own timer: a ttl ran out, or the daily vacuum is due."""


@attrs.frozen(eq=False)
class _Notice:
    """A helper event to deliver: the target of a new question, or the asker of a settled one.

    ``reply`` is the asker's, for a question of a peer: it is answered once the peer has it.
    """

    kind: Literal["asked", "answered"]
    question: wire.Question
    recipient: str
    body: str
    reply: Reply[wire.Question] | None = None


@attrs.frozen
class Told:
    """The sender's report: `notice` was stored in its recipient's inbox, or `error` why not."""

    notice: _Notice
    error: Exception | None


QuestionsMsg: TypeAlias = (
    AskQuestion
    | AnswerQuestion
    | CancelQuestion
    | ListOpenQuestions
    | ListOperatorQuestions
    | ExpiryTick
    | Told
)


def _asked_notice(question: wire.Question, reply: Reply[wire.Question]) -> _Notice:
    event = wire.QuestionAsked(
        question.id, question.asker, question.question, question.options, question.multi
    )
    body = wire.encode_helper_event(event)
    return _Notice("asked", question, question.target, body, reply)


def _answered_notice(question: wire.Question) -> _Notice:
    assert question.answer is not None
    assert question.answerer is not None
    event = wire.QuestionAnswered(
        question.id, question.question, question.answer, question.answerer
    )
    return _Notice("answered", question, question.asker, wire.encode_helper_event(event))


class QuestionDesk:
    """Owns the question store; its ttl watchdog and sender post back into its mailbox.

    Args:
        mailbox: the actor's mailbox.
        path: the sqlite file.
        clock: wall clock for stamps and ttl deadlines.
        offload: how store calls leave the trio thread.
        messages: the broker, for helper events from `wire.HELPER_SENDER`.
        known: whether a name is an agent (or the manager) a question can be asked of.
        events: where dashboard events go.
        limits, limit_log: the bounds and who hit them (docs/limits.md).
    """

    def __init__(
        self,
        mailbox: Mailbox[QuestionsMsg],
        *,
        path: Path,
        clock: WallClock,
        offload: Offload,
        messages: MessagesHandle,
        known: Callable[[str], bool],
        events: EventsHandle,
        limits: Limits,
        limit_log: LimitLog,
    ) -> None:
        self._mailbox = mailbox
        self._path = path
        self._clock = clock
        self._offload = offload
        self._messages = messages
        self._known = known
        self._events = events
        self._limits = limits
        self._limit_log = limit_log
        self._expiries: dict[int, float] = {}
        self._next_vacuum = 0.0
        self._outbox: Outbox[_Notice] = Outbox()
        self._waiting = 0  # asks of a peer, answered once the peer has the question
        self._ticker = Ticker(self._tick, clock.now)
        self._last_error: str | None = None

    def statistics(self) -> ActorStatistics:
        """Queue, last message, last error; ttl timers, helper events to send, parked asks."""
        return ActorStatistics.of(
            self._mailbox.statistics(),
            last_error=self._last_error,
            due_timers=len(self._expiries),
            outbox=len(self._outbox),
            waiting_asks=self._waiting,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the store, serve until asked to stop, close the store.

        Answers that were never delivered (the daemon stopped first) are sent again on start;
        ttls that ran out meanwhile expire at once.
        """
        store = await self._offload(self._open)
        try:
            open_questions = await self._offload(store.open_questions)
            self._expiries = {q.id: q.expires_at for q in open_questions if q.expires_at}
            for question in await self._offload(store.unnotified):
                self._outbox.put(_answered_notice(question))
            self._next_vacuum = self._clock.now()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ticker.run)
                nursery.start_soon(self._send_forever)
                self._schedule()
                task_status.started()
                async for msg in self._mailbox.inbox:
                    await self._dispatch(store, msg)
                nursery.cancel_scope.cancel()
        finally:
            store.close()

    def _open(self) -> QuestionStore:
        return QuestionStore(self._path, now=self._clock.now)

    def _tick(self) -> None:
        with contextlib.suppress(MailboxFull):  # a full mailbox: the next tick comes anyway
            self._mailbox.cast_nowait(ExpiryTick())

    def _schedule(self) -> None:
        self._ticker.due_at(min([self._next_vacuum, *self._expiries.values()]))

    async def _dispatch(self, store: QuestionStore, msg: QuestionsMsg) -> None:
        try:
            match msg:
                case AskQuestion():
                    await self._on_ask(store, msg)
                case AnswerQuestion():
                    msg.reply.send(await self._on_answer(store, msg))
                case CancelQuestion():
                    msg.reply.send(await self._on_cancel(store, msg))
                case ListOpenQuestions(involving=involving):
                    questions = await self._offload(
                        lambda: store.open_questions(involving=involving)
                    )
                    msg.reply.send(questions)
                case ListOperatorQuestions():
                    msg.reply.send(await self._on_list_operator(store, msg))
                case ExpiryTick():
                    await self._on_tick(store)
                case Told():
                    await self._on_told(store, msg)
        except (HyperhiveError, ActorError) as exc:
            # Refusals and store errors fail this call only.
            if not isinstance(msg, ExpiryTick | Told):
                msg.reply.fail(exc)
            else:
                self._last_error = repr(exc)
                LOGGER.warning("questions: %s", exc)
        except Exception as exc:
            # A bug, met on one request: that caller is told, the actor keeps serving (a
            # client's input must never count against the supervisor's restart intensity).
            self._last_error = repr(exc)
            LOGGER.exception("question request %s failed", type(msg).__name__)
            if not isinstance(msg, ExpiryTick | Told):
                msg.reply.fail(InternalError())

    async def _on_ask(self, store: QuestionStore, msg: AskQuestion) -> None:
        request = msg.request
        target = validate_ask(msg.asker, request, self._known)
        cap = self._limits.open_questions
        if msg.asker != OPERATOR and await self._offload(store.open_count, msg.asker) >= cap:
            self._limit_log.hit(msg.asker, "open_questions", f"{cap} questions open")
            raise LimitReached(
                f"you have {cap} open questions (the open_questions limit); nothing was asked. "
                "Cancel some with cancel_loose_end, or wait for answers"
            )
        expires_at = None
        if request.ttl_seconds is not None:
            expires_at = self._clock.now() + request.ttl_seconds
        question = await self._offload(
            lambda: store.add(
                asker=msg.asker,
                target=target,
                question=request.question,
                options=request.options,
                multi=request.multi,
                expires_at=expires_at,
            )
        )
        if target != OPERATOR:
            # Asked once the target has it in its inbox (`Told`): the desk does not wait.
            self._waiting += 1
            self._outbox.put(_asked_notice(question, msg.reply))
            return
        self._asked(question)
        msg.reply.send(question)

    def _asked(self, question: wire.Question) -> None:
        if question.expires_at is not None:
            self._expiries[question.id] = question.expires_at
            self._schedule()
        self._events.publish(wire.QuestionAdded(question))

    async def _on_answer(self, store: QuestionStore, msg: AnswerQuestion) -> wire.Question:
        validate_answer(msg.answer)
        question = await self._get(store, msg.id)
        if refusal := answer_refusal(question, msg.by):
            raise NotAllowed(refusal)
        return await self._resolve(store, question, msg.answer, msg.by.name)

    async def _on_cancel(self, store: QuestionStore, msg: CancelQuestion) -> wire.Question:
        question = await self._get(store, msg.id)
        if refusal := cancel_refusal(question, msg.by):
            raise NotAllowed(refusal)
        return await self._resolve(store, question, cancelled_answer(msg.by.name), msg.by.name)

    async def _on_list_operator(
        self, store: QuestionStore, msg: ListOperatorQuestions
    ) -> list[wire.Question]:
        if msg.answered:
            return await self._offload(store.answered, OPERATOR, msg.limit)
        questions = await self._offload(lambda: store.open_questions(target=OPERATOR))
        return fair_share(questions, max(0, msg.limit))

    async def _get(self, store: QuestionStore, id: int) -> wire.Question:
        question = await self._offload(store.get, id)
        if question is None:
            raise NotFound(f"no question #{id}; see your loose ends for the open ones")
        return question

    async def _resolve(
        self, store: QuestionStore, question: wire.Question, answer: str, answerer: str
    ) -> wire.Question:
        resolved = await self._offload(store.resolve, question.id, answer, answerer)
        if resolved is None:
            raise NotAllowed(f"question #{question.id} is already answered")
        self._expiries.pop(question.id, None)
        self._schedule()
        self._events.publish(wire.QuestionResolved(resolved))
        self._outbox.put(_answered_notice(resolved))
        return resolved

    async def _on_tick(self, store: QuestionStore) -> None:
        now = self._clock.now()
        if now >= self._next_vacuum:
            self._next_vacuum = now + VACUUM_INTERVAL
            await self._offload(store.vacuum, RETENTION_SECONDS)
        for id in due(self._expiries, now):
            self._expiries.pop(id, None)
            question = await self._offload(store.get, id)
            if question is None or question.answered_at is not None:
                continue
            LOGGER.info("question #%d from %s expired unanswered", id, question.asker)
            resolved = await self._offload(store.resolve, id, expiry_answer(question), WATCHDOG)
            if resolved is not None:
                self._events.publish(wire.QuestionResolved(resolved))
                self._outbox.put(_answered_notice(resolved))
        self._schedule()

    async def _on_told(self, store: QuestionStore, msg: Told) -> None:
        notice, error = msg.notice, msg.error
        question = notice.question
        if notice.kind == "asked":
            assert notice.reply is not None
            self._waiting -= 1
            if error is None:
                self._asked(question)
                notice.reply.send(question)
                return
            # Nobody was asked, so nobody could ever answer: forget the row, report the error.
            await self._offload(store.delete, question.id)
            notice.reply.fail(error)
            return
        if error is None:
            await self._offload(store.mark_notified, question.id)
        elif isinstance(error, UnknownAgent):
            LOGGER.warning("answer to question #%d not delivered: %s", question.id, error)
            await self._offload(lambda: store.mark_notified(question.id, error=str(error)))
        else:
            # Left unmarked, so the next start delivers it.
            LOGGER.warning("answer to question #%d not delivered yet: %s", question.id, error)

    async def _send_forever(self) -> None:
        """The sender: deliver each notice through the broker, report back with `Told`."""
        while True:
            notice = await self._outbox.take()
            error: Exception | None = None
            try:
                await self._messages.send(wire.HELPER_SENDER, notice.recipient, notice.body)
            except (HyperhiveError, ActorError) as exc:
                error = exc
            await self._mailbox.cast(Told(notice, error))


class QuestionsHandle:
    """What surfaces hold to reach the question desk."""

    def __init__(self, mailbox: Mailbox[QuestionsMsg]) -> None:
        self._mailbox = mailbox

    async def ask(self, asker: str, request: wire.Ask) -> wire.Question:
        """Store `asker`'s question; a peer target is told before this returns."""
        return await self._mailbox.call(
            lambda reply: AskQuestion(asker, request, reply), timeout=CALL_TIMEOUT
        )

    async def answer(self, by: Identity, id: int, answer: str) -> wire.Question:
        """Answer question `id` as `by` (refused unless `by` may); the asker is told."""
        return await self._mailbox.call(
            lambda reply: AnswerQuestion(id, answer, by, reply), timeout=CALL_TIMEOUT
        )

    async def cancel(self, by: Identity, id: int) -> wire.Question:
        """Answer question `id` with ``[cancelled by <name>]`` (asker, manager, operator)."""
        return await self._mailbox.call(
            lambda reply: CancelQuestion(id, by, reply), timeout=CALL_TIMEOUT
        )

    async def open_questions(self, involving: str | None) -> list[wire.Question]:
        """Open questions asked by or of `involving` (all of them when None)."""
        return await self._mailbox.call(
            lambda reply: ListOpenQuestions(involving, reply), timeout=CALL_TIMEOUT
        )

    async def operator_questions(self, *, answered: bool, limit: int) -> list[wire.Question]:
        """The operator's open questions, or its recently answered ones. Never peer questions."""
        return await self._mailbox.call(
            lambda reply: ListOperatorQuestions(answered, limit, reply), timeout=CALL_TIMEOUT
        )
