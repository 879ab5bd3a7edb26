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

`QuestionDesk` is the actor that owns the `QuestionStore`.

Accepts: `AskQuestion`, `AnswerQuestion`, `CancelQuestion`, `ListOpenQuestions`,
`ListOperatorQuestions`.
Emits (to the event hub): `QuestionAdded`, `QuestionResolved`. Sends helper events through
the broker as `wire.HELPER_SENDER`.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar

import attrs
import trio

from actors import ActorError
from hyperhive import wire
from hyperhive.core.events import publish_nowait
from hyperhive.core.limits import Limits
from hyperhive.core.question_store import QuestionStore
from hyperhive.core.reminders import DueLoop, due
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
    from collections.abc import Awaitable, Callable, Sequence
    from pathlib import Path

    from actors import Inbox, Mailbox, Reply
    from hyperhive.clock import WallClock
    from hyperhive.core.events import HubMsg
    from hyperhive.core.limits import LimitLog
    from hyperhive.core.listener import Identity

__all__ = [
    "MAX_TTL_SECONDS",
    "OPERATOR",
    "WATCHDOG",
    "AnswerQuestion",
    "AskQuestion",
    "CancelQuestion",
    "ListOpenQuestions",
    "ListOperatorQuestions",
    "QuestionDesk",
    "QuestionsMsg",
    "answer_refusal",
    "cancel_refusal",
    "cancelled_answer",
    "expiry_answer",
    "fair_share",
    "validate_answer",
    "validate_ask",
]

LOGGER = logging.getLogger("hyperhive.questions")
_R = TypeVar("_R")
OPERATOR: Final = "operator"
WATCHDOG: Final = "ttl-watchdog"
MAX_TTL_SECONDS: Final = 30 * 86400.0
MAX_OPTIONS: Final = wire.MAX_OPTIONS
# Answered questions are kept this long for `hyperhive questions --answered`, then deleted.
RETENTION_SECONDS: Final = 30 * 86400.0

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


QuestionsMsg: TypeAlias = (
    AskQuestion | AnswerQuestion | CancelQuestion | ListOpenQuestions | ListOperatorQuestions
)


class QuestionDesk:
    """Owns the question store; runs the ttl watchdog.

    Args:
        inbox: the actor's mailbox receive end.
        path: the sqlite file.
        clock: wall clock for stamps and ttl deadlines.
        send: ``send(recipient, body)`` stores a helper-event message from `wire.HELPER_SENDER`
            (the broker through `Hive.send`).
        known: whether a name is an agent (or the manager) a question can be asked of.
        to_hub: where dashboard events go.

    The watchdog sleeps on trio's clock until the nearest ttl runs out (re-reading the wall
    clock at least hourly) and is woken early when a nearer one is asked. Store access is
    serialised by a lock, since the watchdog and the inbox loop share the store.
    """

    def __init__(
        self,
        inbox: Inbox[QuestionsMsg],
        *,
        path: Path,
        clock: WallClock,
        send: Callable[[str, str], Awaitable[object]],
        known: Callable[[str], bool],
        to_hub: Mailbox[HubMsg],
        limits: Limits | None = None,
        limit_log: LimitLog | None = None,
    ) -> None:
        self._inbox = inbox
        self._limits = limits or Limits()
        self._limit_log = limit_log
        self._path = path
        self._clock = clock
        self._send = send
        self._known = known
        self._to_hub = to_hub
        self._expiries: dict[int, float] = {}
        self._loop = DueLoop(clock.now)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the store, serve requests and the watchdog until asked to stop, close the store.

        Cancellation: a request cancelled between storing an answer and telling the asker is
        told on the next start (the row is not marked notified).
        """
        store = await trio.to_thread.run_sync(self._open)
        self._lock = trio.Lock()
        try:
            open_questions = await self._db(store.open_questions)
            self._expiries = {q.id: q.expires_at for q in open_questions if q.expires_at}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, store)
                task_status.started()
                async for msg in self._inbox:
                    async with self._lock:
                        await self._dispatch(store, msg)
                nursery.cancel_scope.cancel()
        finally:
            store.close()

    def _open(self) -> QuestionStore:
        return QuestionStore(self._path, now=self._clock.now)

    async def _db(self, fn: Callable[..., _R], *args: object) -> _R:
        return await trio.to_thread.run_sync(fn, *args)

    async def _dispatch(self, store: QuestionStore, msg: QuestionsMsg) -> None:
        try:
            match msg:
                case AskQuestion():
                    msg.reply.send(await self._on_ask(store, msg))
                case AnswerQuestion():
                    msg.reply.send(await self._on_answer(store, msg))
                case CancelQuestion():
                    msg.reply.send(await self._on_cancel(store, msg))
                case ListOpenQuestions(involving=involving):
                    questions = await self._db(lambda: store.open_questions(involving=involving))
                    msg.reply.send(questions)
                case ListOperatorQuestions():
                    msg.reply.send(await self._on_list_operator(store, msg))
        except (HyperhiveError, ActorError) as exc:
            # Refusals, store errors and a broker that did not answer fail this call only.
            msg.reply.fail(exc)
        except Exception:
            # A bug, met on one request: that caller is told, the actor keeps serving (a
            # client's input must never count against the supervisor's restart intensity).
            LOGGER.exception("question request %s failed", type(msg).__name__)
            msg.reply.fail(InternalError())

    async def _on_ask(self, store: QuestionStore, msg: AskQuestion) -> wire.Question:
        request = msg.request
        target = validate_ask(msg.asker, request, self._known)
        cap = self._limits.open_questions
        if msg.asker != OPERATOR and await self._db(store.open_count, msg.asker) >= cap:
            if self._limit_log is not None:
                self._limit_log.hit(msg.asker, "open_questions", f"{cap} questions open")
            raise LimitReached(
                f"you have {cap} open questions (the open_questions limit); nothing was asked. "
                "Cancel some with cancel_loose_end, or wait for answers"
            )
        expires_at = None
        if request.ttl_seconds is not None:
            expires_at = self._clock.now() + request.ttl_seconds
        question = await self._db(
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
            await self._tell_target(store, question)
        if expires_at is not None:
            self._expiries[question.id] = expires_at
            self._loop.poke()
        publish_nowait(self._to_hub, [wire.QuestionAdded(question)])
        return question

    async def _tell_target(self, store: QuestionStore, question: wire.Question) -> None:
        event = wire.QuestionAsked(
            question.id, question.asker, question.question, question.options, question.multi
        )
        try:
            await self._send(question.target, wire.encode_helper_event(event))
        except Exception:
            # Nobody was asked, so nobody could ever answer: forget the row, report the error.
            await self._db(store.delete, question.id)
            raise

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
            return await self._db(store.answered, OPERATOR, msg.limit)
        questions = await self._db(lambda: store.open_questions(target=OPERATOR))
        return fair_share(questions, max(0, msg.limit))

    async def _get(self, store: QuestionStore, id: int) -> wire.Question:
        question = await self._db(store.get, id)
        if question is None:
            raise NotFound(f"no question #{id}; see your loose ends for the open ones")
        return question

    async def _resolve(
        self, store: QuestionStore, question: wire.Question, answer: str, answerer: str
    ) -> wire.Question:
        resolved = await self._db(store.resolve, question.id, answer, answerer)
        if resolved is None:
            raise NotAllowed(f"question #{question.id} is already answered")
        self._expiries.pop(question.id, None)
        publish_nowait(self._to_hub, [wire.QuestionResolved(resolved)])
        await self._notify(store, resolved)
        return resolved

    async def _notify(self, store: QuestionStore, question: wire.Question) -> None:
        """Tell the asker; record that it was told, or why it never can be."""
        assert question.answer is not None
        assert question.answerer is not None
        event = wire.QuestionAnswered(
            question.id, question.question, question.answer, question.answerer
        )
        try:
            await self._send(question.asker, wire.encode_helper_event(event))
        except UnknownAgent as exc:
            error = str(exc)
            LOGGER.warning("answer to question #%d not delivered: %s", question.id, error)
            await self._db(lambda: store.mark_notified(question.id, error=error))
        except Exception:
            # Left unmarked, so the next start delivers it.
            LOGGER.exception("answer to question #%d not delivered yet", question.id)
        else:
            await self._db(store.mark_notified, question.id)

    # -- the watchdog ------------------------------------------------------------------------

    async def _watch(self, store: QuestionStore) -> None:
        async with self._lock:
            for question in await self._db(store.unnotified):
                await self._notify(store, question)

        async def vacuum() -> None:
            async with self._lock:
                await self._db(store.vacuum, RETENTION_SECONDS)

        async def expire() -> None:
            async with self._lock:
                await self._expire(store)

        await self._loop.run(lambda: self._expiries, vacuum=vacuum, on_wake=expire)

    async def _expire(self, store: QuestionStore) -> None:
        for id in due(self._expiries, self._clock.now()):
            self._expiries.pop(id, None)
            question = await self._db(store.get, id)
            if question is None or question.answered_at is not None:
                continue
            LOGGER.info("question #%d from %s expired unanswered", id, question.asker)
            resolved = await self._db(store.resolve, id, expiry_answer(question), WATCHDOG)
            if resolved is not None:
                publish_nowait(self._to_hub, [wire.QuestionResolved(resolved)])
                await self._notify(store, resolved)
