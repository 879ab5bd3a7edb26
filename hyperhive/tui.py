"""Rich renderings of the daemon's state, for `hyperhive status` and the live view."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

import attrs
from rich.table import Table
from rich.text import Text

from hyperhive import wire

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


__all__ = ["dead_letters_table", "event_line", "messages_table", "status_table"]

_STATE_STYLE = {
    "running": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "stopping": "yellow",
    "stopped": "dim",
    "failed": "bold red",
}


def status_table(status: wire.StatusReply) -> Table:
    """The actor tree as a table: one row per actor, indented under its supervisor."""
    table = Table(
        title=f"hyperhive · pid {status.pid} · up {_duration(status.uptime_seconds)}",
        caption=status.state_dir,
    )
    for column in ("actor", "kind", "state", "restarts", "queue"):
        table.add_column(
            column, justify="right" if column in {"restarts", "queue"} else "left", no_wrap=True
        )
    table.add_column("last error", overflow="fold")
    for depth, node in _walk(status.tree, 0):
        table.add_row(
            "  " * depth + node.id,
            node.kind if node.strategy is None else node.strategy,
            Text(node.state, style=_STATE_STYLE.get(node.state, "")),
            str(node.restarts),
            "" if node.queue_depth is None else f"{node.queue_depth}/{node.queue_capacity}",
            Text(node.last_error or "", style="red"),
        )
    return table


def _walk(node: wire.ActorInfo, depth: int) -> Iterator[tuple[int, wire.ActorInfo]]:
    yield depth, node
    for child in node.children:
        yield from _walk(child, depth + 1)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def messages_table(title: str, messages: Iterable[wire.Message]) -> Table:
    """Messages as a table: id, when, from, to, body."""
    table = Table(title=title)
    for column in ("#", "sent", "from", "to", "message"):
        table.add_column(column, overflow="fold")
    for message in messages:
        table.add_row(
            str(message.id),
            _stamp(message.sent_at),
            message.sender,
            message.recipient,
            message.body,
        )
    return table


def dead_letters_table(letters: Iterable[wire.DeadLetter]) -> Table:
    """Dead letters: what they were, and how often delivery was tried."""
    table = Table(title="dead letters", caption="replay with --replay ID, delete with --drop ID")
    for column in ("#", "sent", "from", "to", "attempts", "message"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            str(letter.id),
            _stamp(letter.sent_at),
            letter.sender,
            letter.recipient,
            str(letter.attempts),
            letter.body,
        )
    return table


def event_line(event: wire.Event) -> Text:
    """One event as a line for `hyperhive events`."""
    payload = event.payload
    match payload:
        case wire.MessageSent(message=m):
            detail = f"{m.sender} → {m.recipient}: {_clip(m.body)}"
        case wire.MessageDelivered():
            detail = f"#{payload.id} delivered to {payload.recipient} (attempt {payload.attempt})"
        case wire.MessageDeadLettered():
            detail = f"#{payload.id} to {payload.recipient} dead after {payload.attempts} tries"
        case wire.EventGap():
            detail = f"missed events {payload.first_seq}..{payload.last_seq} (too slow)"
        case _:
            detail = ", ".join(f"{k}={v}" for k, v in attrs.asdict(payload).items())
    kind = type(payload).__name__
    return Text.assemble(
        (f"{event.seq:>6} ", "dim"), (_stamp(event.at), "dim"), f" {kind:<20} ", detail
    )


def _stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def _clip(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
