"""The text Claude wakes up to, and the text the `recv` tool returns: pure functions.

A wake prompt lists the messages the harness popped for this turn, oldest first. Messages a
restarted harness got back (`Delivery.redelivered`) carry a banner, because whatever an earlier
turn did about them may already have happened. Messages from the sender ``hive`` are helper
events (JSON objects tagged by an ``"event"`` key): they are rendered as readable lines, and
anything that does not decode is shown raw rather than dropped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from hyperhive.errors import HyperhiveError
from hyperhive.wire.codec import decode_helper_event
from hyperhive.wire.helper_events import (
    HELPER_SENDER,
    AgentLoggedIn,
    AgentNeedsLogin,
    ApprovalApproved,
    ApprovalCancelled,
    ApprovalDenied,
    ConfigDeployed,
    ConfigFailed,
    ConfigRolledBack,
    HelperEvent,
    QuestionAnswered,
    QuestionAsked,
    ReminderDue,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from hyperhive.wire import Delivery

__all__ = [
    "HELPER_SENDER",
    "REDELIVERED_BANNER",
    "WakeReason",
    "build_wake_prompt",
    "format_recv",
    "render_body",
    "wake_reason",
]

REDELIVERED_BANNER: Final = "[redelivered after harness restart — may already be handled]"
RETRIED_BANNER: Final = "[shown again: the turn that first saw this did not finish]"
WakeReason = str  # "inbox" | "helper" | "redelivered" | "retry" | "compact"


def render_body(sender: str, body: str) -> str:
    """A message body as Claude should read it (helper events decoded, others verbatim)."""
    if sender != HELPER_SENDER:
        return body
    try:
        known = _render_known(decode_helper_event(body))
    except HyperhiveError:
        known = None
    if known is not None:
        return known
    generic = _decode_helper(body)
    if generic is None:
        return f"(hive event, not understood; raw body follows)\n{body}"
    return _render_helper(generic)


def _render_known(event: HelperEvent) -> str | None:
    match event:
        case QuestionAsked(id=id, asker=asker, question=question, options=options):
            lines = [f"hive event: {asker} asks you question #{id}", "", question]
            if options:
                lines += ["", "options: " + " | ".join(options)]
            lines += ["", f"Reply with answer(id: {id}, answer: ...)."]
            return "\n".join(lines)
        case QuestionAnswered(id=id, question=question, answer=answer, answerer=answerer):
            return (
                f"hive event: your question #{id} was answered by {answerer}\n\n"
                f"question: {question}\nanswer: {answer}"
            )
        case ReminderDue(id=id, message=message, file_path=file_path):
            where = f"\n(the full text is in {file_path})" if file_path else ""
            return f"hive event: reminder #{id} is due\n\n{message}{where}"
        case AgentNeedsLogin(name=name):
            return (
                f"hive event: {name} needs a login (its Claude has no credentials); the "
                "operator can log it in on its page"
            )
        case AgentLoggedIn(name=name):
            return f"hive event: {name} is logged in again and takes its work"
        case ApprovalApproved(id=id, agent=agent, kind=kind, commit=commit):
            return (
                f"hive event: the operator approved #{id} ({kind} of {agent}, commit "
                f"{commit[:12]}); it is deploying now. config_deployed or config_failed follows."
            )
        case ApprovalDenied(id=id, agent=agent, kind=kind, reason=reason):
            return f"hive event: the operator denied #{id} ({kind} of {agent})\n\nreason: {reason}"
        case ApprovalCancelled(id=id, agent=agent, by=by, reason=reason):
            return f"hive event: #{id} for {agent} was cancelled by {by}: {reason}"
        case ConfigDeployed(id=id, agent=agent, commit=commit):
            return f"hive event: #{id} is deployed: {agent} runs config commit {commit[:12]} now"
        case ConfigFailed(id=id, agent=agent, error=error):
            return (
                f"hive event: #{id} for {agent} failed; {agent} keeps the config it had\n\n"
                f"error:\n{error}"
            )
        case ConfigRolledBack(id=id, agent=agent, commit=commit, reason=reason):
            back = f"commit {commit[:12]}" if commit else "its config from before"
            return (
                f"hive event: #{id} for {agent} was rolled back to {back}: {reason}. Its "
                f"applied main points there again; rebase your next change onto it."
            )
    return None  # a newer event: shown field by field


def _decode_helper(body: str) -> Mapping[str, Any] | None:
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return None
    return obj


def _render_helper(event: Mapping[str, Any]) -> str:
    tag = str(event["event"])
    title = tag.replace("_", " ")
    lines = [f"hive event: {title}"]
    for key, value in event.items():
        if key == "event" or value is None:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if isinstance(value, str) and "\n" in value:
            indented = "\n".join(f"  {line}" for line in value.splitlines())
            lines.append(f"- {key}:\n{indented}")
        else:
            lines.append(f"- {key}: {shown}")
    return "\n".join(lines)


def _block(delivery: Delivery, *, retried: bool) -> str:
    banners = []
    if delivery.redelivered:
        banners.append(REDELIVERED_BANNER)
    if retried:
        banners.append(RETRIED_BANNER)
    head = f"from: {delivery.sender}"
    if banners:
        head = "\n".join([*banners, head])
    return f"{head}\n\n{render_body(delivery.sender, delivery.body)}"


def format_recv(deliveries: Sequence[Delivery]) -> str:
    """What the `recv` tool shows: one block per message, ``(empty)`` when none arrived."""
    if not deliveries:
        return "(empty)"
    if len(deliveries) == 1:
        return _block(deliveries[0], retried=False)
    blocks = "\n\n---\n\n".join(_block(d, retried=False) for d in deliveries)
    return f"popped {len(deliveries)} message(s)\n\n---\n\n{blocks}"


def build_wake_prompt(
    deliveries: Sequence[Delivery],
    *,
    retried_ids: frozenset[int] = frozenset(),
    more_waiting: bool = False,
    recv_max: int = 32,
) -> str:
    """The user message that starts a turn.

    `retried_ids` are messages an earlier turn of this harness saw but did not finish;
    `more_waiting` adds the hint that more messages are queued behind these.
    """
    if not deliveries:
        head = "You were woken with no new messages."
    else:
        head = f"You have {len(deliveries)} new message(s), oldest first."
    parts = [head]
    for delivery in deliveries:
        parts.append(_block(delivery, retried=delivery.id in retried_ids))
    if more_waiting:
        parts.append(
            f"More messages are waiting in your inbox: call recv(max: {recv_max}) to read them."
        )
    parts.append("Handle these, reply with the send tool where a reply is due, then end your turn.")
    return "\n\n---\n\n".join(parts)


def wake_reason(deliveries: Sequence[Delivery], *, retried: bool = False) -> WakeReason:
    """What woke this turn, for turn stats."""
    if retried:
        return "retry"
    if any(d.redelivered for d in deliveries):
        return "redelivered"
    if deliveries and all(d.sender == HELPER_SENDER for d in deliveries):
        return "helper"
    return "inbox"
