"""Loose ends: what is still open for an agent, or for the whole hive.

One aggregate of three sections (docs/questions.md, docs/reminders.md):

- ``questions``: unanswered questions, asked by the agent or of it;
- ``reminders``: its pending reminders, and failed ones (with the reason) until dismissed;
- ``approvals``: config changes awaiting the operator (docs/approvals.md): an agent sees the
  ones about itself, the manager (whose requests they are) and the operator every one.

An agent sees its own; the manager (and the operator) see the hive's. ``cancel_loose_end(kind,
id)`` takes ``question``, ``reminder`` or, for the manager and the operator, ``approval``
(withdrawing a request); who may cancel what is decided by the owning actor
(`questions.cancel_refusal`, `reminders.cancel_refusal`, `approvals.transition_refusal`).

Everything here is pure; `Hive.loose_ends` gathers the rows from the actors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from hyperhive import wire
from hyperhive.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hyperhive.core.listener import Identity

__all__ = ["KINDS", "assemble", "cancel_kind", "count", "scope"]

KINDS: Final = ("question", "reminder", "approval")


def scope(who: Identity) -> str | None:
    """Whose loose ends `who` sees: its own name, or None for hive-wide (manager, operator)."""
    return None if who.role in ("manager", "operator") else who.name


def assemble(
    questions: Iterable[wire.Question],
    reminders: Iterable[wire.Reminder],
    approvals: Iterable[wire.LooseApproval] = (),
) -> wire.LooseEnds:
    """The aggregate, each section oldest first; delivered reminders are not loose ends."""
    return wire.LooseEnds(
        questions=tuple(sorted((q for q in questions if q.answered_at is None), key=_id)),
        reminders=tuple(sorted((r for r in reminders if r.state != "delivered"), key=_id)),
        approvals=tuple(sorted(approvals, key=_id)),
    )


def count(ends: wire.LooseEnds) -> int:
    """How many loose ends in all (the harness records it after each turn)."""
    return len(ends.questions) + len(ends.reminders) + len(ends.approvals)


def cancel_kind(kind: str, role: str = "agent") -> Literal["question", "reminder", "approval"]:
    """Check the ``kind`` of a `cancel_loose_end` by someone of ``role``.

    Raises:
        BadRequest: anything but ``question``, ``reminder`` or ``approval``, or an approval
            cancelled by an agent (only the manager, who asked, or the operator may).
    """
    if kind == "question":
        return "question"
    if kind == "reminder":
        return "reminder"
    if kind == "approval":
        if role == "agent":
            raise BadRequest(
                "only the manager (who asked for it) or the operator can cancel an approval"
            )
        return "approval"
    raise BadRequest(f"unknown loose-end kind {kind!r}; use one of: {', '.join(KINDS)}")


def _id(row: wire.Question | wire.Reminder | wire.LooseApproval) -> int:
    return row.id
