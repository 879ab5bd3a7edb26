"""The three commands an agent's harness sends on its own, and their replies.

``requeue_inflight`` when it starts, then ``recv`` and ``ack_turn`` around every turn. They are
rows of the one command table like any other (`hyperhive.wire.commands` imports this module);
they live apart so that a harness starts, and is serving, without declaring the other fifty
commands and their replies (docs/performance.md).
"""

from __future__ import annotations

import attrs

from hyperhive.value import value
from hyperhive.wire._bounds import MAX_LIMIT, MAX_SECONDS, number
from hyperhive.wire._table import Request, agent_tool, command
from hyperhive.wire.mail import Delivery

__all__ = ["AckTurn", "Acked", "Messages", "Recv", "RequeueInflight", "Requeued"]


@value
class Messages:
    """What a recv handed over. ``paused``: the operator paused the caller, so it is handed
    nothing until resumed (its harness takes no turns meanwhile)."""

    messages: tuple[Delivery, ...]
    paused: bool = False


@value
class Acked:
    count: int


@value
class Requeued:
    count: int


@command(
    "recv",
    tool=agent_tool(
        "Read up to `max` messages from your inbox, waiting up to `wait_seconds` (at most "
        '180) for the first one. Returns "(empty)" when nothing arrived.'
    ),
)
@value
class Recv(Request[Messages]):
    """Long-poll for up to ``max`` messages, waiting at most ``wait_seconds`` for the first."""

    wait_seconds: float = attrs.field(default=0.0, metadata=number(0, MAX_SECONDS))
    max: int = attrs.field(default=1, metadata=number(1, MAX_LIMIT))


@command("ack_turn")
@value
class AckTurn(Request[Acked]):
    """Ack every message delivered to the caller and not yet acked (its turn ended well)."""


@command("requeue_inflight")
@value
class RequeueInflight(Request[Requeued]):
    """Put every unacked delivery back in the caller's inbox (a harness starting up)."""
