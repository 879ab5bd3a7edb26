"""Rich renderings of the daemon's state, for `hyperhive status` and the live view.

Most of what is shown came from agents (message bodies, questions, names in errors, logs), so
nothing here is ever parsed as rich markup: every cell is a `Text` built with `literal`, which
also makes control characters visible (an agent's escape sequence must not retitle, clear or
recolour the operator's terminal). Newlines and tabs are kept.
"""

from __future__ import annotations

import datetime
import re
import time
from typing import TYPE_CHECKING

import attrs
from rich.table import Table
from rich.text import Text

from hyperhive import wire

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from hyperhive.doctor import Finding


__all__ = [
    "activity_text",
    "containers_table",
    "dead_letters_table",
    "doctor_report",
    "event_line",
    "literal",
    "messages_table",
    "questions_table",
    "reminders_table",
    "status_table",
    "tombstones_table",
    "visible",
]

# C0 controls but newline and tab, DEL, C1 controls, and the bidi and other format controls
# that can make text read differently than it is.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def visible(text: str) -> str:
    """`text` with every control character but newline and tab shown as an escape (``\x1b``)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def literal(text: str | None, style: str = "") -> Text:
    """A cell that shows `text` exactly as written (no markup), controls made visible."""
    return Text(visible(text or ""), style=style)


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
        title=Text(f"hyperhive · pid {status.pid} · up {_duration(status.uptime_seconds)}"),
        caption=literal(status.state_dir),
    )
    right = {"restarts", "queue", "last activity"}
    for column in ("actor", "kind", "state", "restarts", "queue", "last activity"):
        table.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    table.add_column("counters", overflow="fold")
    table.add_column("last error", overflow="fold")
    for depth, node in _walk(status.tree, 0):
        table.add_row(
            literal("  " * depth + node.id),
            literal(node.kind if node.strategy is None else node.strategy),
            literal(node.state, _STATE_STYLE.get(node.state, "")),
            Text(str(node.restarts)),
            Text(_queue(node)),
            Text(_ago(status.at, node)),
            literal(" ".join(f"{k}={v}" for k, v in sorted(node.counters.items()))),
            literal(node.last_error, "red"),
        )
    return table


def _queue(node: wire.ActorInfo) -> str:
    if node.queue_depth is None:
        return ""
    capacity = "∞" if node.queue_capacity is None else str(node.queue_capacity)
    return f"{node.queue_depth}/{capacity}"


def _ago(now: float, node: wire.ActorInfo) -> str:
    """When the actor last took a message, as "3s ago"; "-" before its first."""
    if node.kind == "supervisor":
        return ""
    if node.last_message_at is None:
        return "-"
    seconds = max(0.0, now - node.last_message_at)
    if seconds < 1:
        return "now"
    return f"{_duration(seconds)} ago" if seconds >= 60 else f"{int(seconds)}s ago"


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
    table = Table(title=literal(title))
    for column in ("#", "sent", "from", "to", "message"):
        table.add_column(column, overflow="fold")
    for message in messages:
        table.add_row(
            Text(str(message.id)),
            Text(_stamp(message.sent_at)),
            literal(message.sender),
            literal(message.recipient),
            literal(message.body),
        )
    return table


_STATE_STYLE = {"running": "green", "crashed": "bold red", "unknown": "yellow"}


def containers_table(views: Iterable[wire.ContainerView]) -> Table:
    """Agents' containers: state (and any action in flight), what the agent is doing, wanted
    state, flags."""
    table = Table(title="containers")
    for column in ("agent", "role", "state", "doing", "wants", "network", "notes"):
        table.add_column(column, overflow="fold")
    for view in views:
        state = literal(view.state, _STATE_STYLE.get(view.state, ""))
        if view.transient:
            state.append(visible(f" ({view.transient}…)"), style="cyan")
        notes = [
            *(["needs login"] if view.needs_login else []),
            *(["rate limited"] if view.rate_limited else []),
            *([f"exit {view.exit_code}"] if view.exit_code not in (None, 0) else []),
            *([f"model {view.model}"] if view.model else []),
            *([f"{view.pending_reminders} reminder(s)"] if view.pending_reminders else []),
            *(_disk_note(view) if view.disk_bytes is not None else []),
            *view.notes,
        ]
        table.add_row(
            literal(view.name),
            literal(view.role),
            state,
            literal(activity_text(view.activity, now=time.time())),
            literal(view.wanted),
            Text("on" if view.network else "off"),
            literal(", ".join(notes)),
        )
    return table


def activity_text(report: wire.HarnessReport | None, *, now: float) -> str:
    """What the agent is doing, in a few words (`wire.HarnessReport`; ``-`` when unknown)."""
    if report is None:
        return "-"
    until = ""
    if report.until is not None and report.until > now:
        until = " until " + datetime.datetime.fromtimestamp(report.until).strftime("%H:%M:%S")
    detail = f": {_clip(report.detail, 120)}" if report.detail else ""
    match report.activity:
        case "tool":
            return f"running {report.tool or 'a tool'}"
        case "waiting_recv":
            return "waiting on recv"
        case "retrying":
            return f"retrying{detail}{until}"
        case "rate_limited":
            return f"rate limited{until}{detail}"
        case "backing_off":
            return f"backing off{until}{detail}"
        case "needs_login":
            return "needs login"
        case "disconnected":
            return "lost the hive, reconnecting"
        case "interrupted":
            return "interrupted (waits for new work)"
        case known if known in wire.ACTIVITIES:
            return known
    return f"unknown ({_clip(report.activity, 40)})"


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count:.1f} TiB"


def _disk_note(view: wire.ContainerView) -> list[str]:
    assert view.disk_bytes is not None
    note = f"disk {_size(view.disk_bytes)}"
    if view.disk_quota is not None and view.disk_bytes > view.disk_quota:
        note += f" (over its {_size(view.disk_quota)} quota)"
    return [note]


def tombstones_table(tombstones: Iterable[wire.Tombstone]) -> Table:
    """Destroyed agents whose state is kept."""
    table = Table(title="tombstones", caption="purge with `hyperhive destroy NAME --purge`")
    for column in ("agent", "role", "destroyed"):
        table.add_column(column)
    for tombstone in tombstones:
        table.add_row(
            literal(tombstone.name), literal(tombstone.role), Text(_stamp(tombstone.destroyed_at))
        )
    return table


def dead_letters_table(letters: Iterable[wire.DeadLetter]) -> Table:
    """Dead letters: what they were, and how often delivery was tried."""
    table = Table(title="dead letters", caption="replay with --replay ID, delete with --drop ID")
    for column in ("#", "sent", "from", "to", "attempts", "message"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            Text(str(letter.id)),
            Text(_stamp(letter.sent_at)),
            literal(letter.sender),
            literal(letter.recipient),
            Text(str(letter.attempts)),
            literal(letter.body),
        )
    return table


def questions_table(questions: Iterable[wire.Question], *, answered: bool = False) -> Table:
    """The operator's questions: who asked what, the suggested options, the ttl deadline."""
    title = "answered questions" if answered else "questions for the operator"
    caption = None if answered else "answer with: hyperhive answer ID TEXT"
    table = Table(title=title, caption=caption)
    table.add_column("#", no_wrap=True)
    table.add_column("asked", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("question", overflow="fold", ratio=3)
    table.add_column("options", overflow="fold", ratio=1)
    if answered:
        table.add_column("answer", overflow="fold", ratio=2)
    else:
        table.add_column("expires", no_wrap=True)
    for q in questions:
        choices = " / ".join(q.options) + (" (several)" if q.multi else "")
        if answered:
            last = f"{q.answer} ({q.answerer})"
        else:
            last = _short_stamp(q.expires_at) if q.expires_at else ""
        table.add_row(
            Text(str(q.id)),
            Text(_short_stamp(q.asked_at)),
            literal(q.asker),
            literal(q.question),
            literal(choices),
            literal(last),
        )
    return table


def reminders_table(reminders: Iterable[wire.Reminder]) -> Table:
    """Reminders: whose, when due, their state, and why a failed one never landed."""
    table = Table(title="reminders", caption="cancel or dismiss with --cancel ID")
    table.add_column("#", no_wrap=True)
    table.add_column("owner", no_wrap=True)
    table.add_column("due", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("message", overflow="fold", ratio=3)
    table.add_column("file", overflow="fold", ratio=1)
    for r in reminders:
        message = literal(_clip(r.message, 200))
        if r.failure:
            message.append(visible(f"\n✗ {r.failure}"), style="red")
        state = literal(r.state, _REMINDER_STYLE.get(r.state, ""))
        table.add_row(
            Text(str(r.id)),
            literal(r.owner),
            Text(_short_stamp(r.due_at)),
            state,
            message,
            literal(r.file_path),
        )
    return table


_REMINDER_STYLE = {"pending": "yellow", "delivered": "green", "failed": "bold red"}


def _short_stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M")


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
        case wire.ContainerStateChanged(container=view):
            busy = f" ({view.transient})" if view.transient else ""
            detail = f"{view.name}: {view.state}{busy}, wants {view.wanted}"
        case wire.ContainerCrashed():
            detail = f"{payload.name} crashed (exit status {payload.exit_code})"
        case wire.QuestionAdded(question=q) | wire.QuestionResolved(question=q):
            answer = f" → {_clip(q.answer, 40)} ({q.answerer})" if q.answer is not None else ""
            detail = f"#{q.id} {q.asker} → {q.target}: {_clip(q.question, 60)}{answer}"
        case wire.ReminderSet(reminder=r) | wire.ReminderFired(reminder=r):
            detail = f"#{r.id} for {r.owner} due {_stamp(r.due_at)}: {_clip(r.message, 60)}"
        case wire.ReminderFailed(reminder=r):
            detail = f"#{r.id} for {r.owner} failed: {r.failure}"
        case wire.LimitHit():
            detail = f"{payload.agent} hit limit {payload.limit}: {payload.detail}"
        case _:
            detail = ", ".join(f"{k}={v}" for k, v in attrs.asdict(payload).items())
    kind = type(payload).__name__
    return Text.assemble(
        (f"{event.seq:>6} ", "dim"), (_stamp(event.at), "dim"), f" {kind:<20} ", visible(detail)
    )


def _stamp(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def _clip(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


_DOCTOR_MARK = {
    "ok": ("✓", "green"),
    "warn": ("!", "yellow"),
    "fail": ("✗", "bold red"),
    "skip": ("-", "dim"),
}


def doctor_report(findings: Iterable[Finding]) -> Table:
    """`hyperhive doctor`: one row per check, and under each one not ok, what to fix."""
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("mark", no_wrap=True)
    table.add_column("check", no_wrap=True, style="bold")
    table.add_column("finding", overflow="fold")
    for finding in findings:
        mark, style = _DOCTOR_MARK[finding.status]
        text = literal(finding.summary)
        if finding.fix and finding.status in ("warn", "fail"):
            text.append("\nfix: ", style=style)
            text.append(visible(finding.fix))
        table.add_row(Text(mark, style), Text(finding.check), text)
    return table
