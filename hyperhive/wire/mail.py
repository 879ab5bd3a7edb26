"""A message and its delivery: what the broker stores and ``recv`` hands over.

Rows like those in `hyperhive.wire.rows`, kept apart because an agent's harness needs them at
start-up and the other rows not at all (docs/performance.md). On the wire ``sender`` and
``recipient`` are spelled ``from`` and ``to``.
"""

from __future__ import annotations

from hyperhive.value import value

__all__ = ["Delivery", "Message"]


@value
class Message:
    """A message as stored: who sent it to whom, and when (wall-clock unix seconds)."""

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float


@value
class Delivery:
    """A message handed to its recipient; in flight until the recipient's turn is acked.

    ``attempt`` counts deliveries of this row (1 on the first); ``redelivered`` is true when an
    earlier delivery was never acked (the harness restarted mid-turn).
    """

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float
    attempt: int
    redelivered: bool
