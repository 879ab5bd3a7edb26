"""Rich renderings of the daemon's state, for `hyperhive status` and the live view.

Most of what is shown came from agents (message bodies, questions, names in errors, logs), so
nothing here is ever parsed as rich markup: every cell is a `Text` built with `literal`, which
also makes control characters visible (an agent's escape sequence must not retitle, clear or
recolour the operator's terminal). Newlines and tabs are kept.
"""

from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING

import attrs
from rich.table import Table
from rich.text import Text

from hyperhive import wire
from hyperhive.literal import literal, visible

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hyperhive.doctor import Finding


__all__ = [
    "agent_inbox_table",
    "approval_detail",
    "approvals_table",
    "config_view",
    "containers_table",
    "dead_letters_table",
    "doctor_report",
    "event_line",
    "last_turn",
    "literal",
    "messages_table",
    "questions_table",
    "reminders_table",
    "status_table",
    "tombstones_table",
    "visible",
]


def status_table(status: wire.StatusReply) -> Table:
    """The actor tree as a table: one row per actor, indented under its supervisor (drawn by
    the CLI's quick path, from the reply's JSON)."""
    from hyperhive.quick import status_table as draw

    return draw(wire.to_json(status))


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


def containers_table(views: Iterable[wire.ContainerView], now: float | None = None) -> Table:
    """Agents: container state (and any action in flight), what the agent is doing and why
    (the daemon's word and sentence: while it works, thinking, running a tool, ...), its mail
    (pending + in flight), its last turn, then flags (who spawned it, an approved config
    waiting to be deployed, the wanted state where it differs, the network when off, the row's
    notes)."""
    at = time.time() if now is None else now
    table = Table(title="agents")
    for column in ("agent", "state", "doing", "why", "mail", "last turn", "notes"):
        table.add_column(column, overflow="fold")
    for view in views:
        state = literal(view.state, _STATE_STYLE.get(view.state, ""))
        if view.transient:
            state.append(visible(f" ({view.transient}…)"), style="cyan")
        notes = [
            *(["manager"] if view.role == "manager" else []),
            *([f"spawned by {view.parent}"] if view.parent else []),
            *(["update pending"] if view.needs_update else []),
            *([f"wants {view.wanted}"] if view.wanted not in (view.state, "") else []),
            *(["net off"] if not view.network else []),
            *(["rate limited"] if view.rate_limited and view.semantic != "rate limited" else []),
            *([f"exit {view.exit_code}"] if view.exit_code not in (None, 0) else []),
            *([f"model {view.model}"] if view.model else []),
            *([f"{view.pending_reminders} reminder(s)"] if view.pending_reminders else []),
            *(_disk_note(view) if view.disk_bytes is not None else []),
            *view.notes,
        ]
        said = view.status_text if view.state == "running" and view.status_text else ""
        table.add_row(
            literal(view.name),
            state,
            literal(view.semantic or "-", _DOING_STYLE.get(view.semantic, "")),
            literal(view.reason + (f" — “{said}”" if said else "")),
            Text(f"{view.pending_messages} + {view.inflight_messages}"),
            literal(last_turn(view.last_turn, at)),
            literal(", ".join(notes)),
        )
    return table


_DOING_STYLE = {
    "needs login": "bold red",
    "crashed": "bold red",
    "start refused": "bold red",
    "backing off": "red",
    "retrying": "yellow",
    "rate limited": "yellow",
    "paused": "magenta",
    "working": "green",
}


def last_turn(last: wire.LastTurn | None, now: float) -> str:
    """``3m ago, 4.2s, ok``: when the last turn ended, how long it took, how it went."""
    if last is None:
        return "-"
    ago = max(0, int(now - last.ended_at))
    when = f"{ago}s" if ago < 60 else (f"{ago // 60}m" if ago < 3600 else f"{ago // 3600}h")
    result = last.result + (f": {_clip(last.detail, 60)}" if last.detail else "")
    return f"{when} ago, {last.duration_ms / 1000:.1f}s, {result}"


def agent_inbox_table(inbox: wire.AgentInbox) -> Table:
    """One agent's mail: in flight (handed to its turn, not yet acked) first, then pending."""
    shown = len(inbox.pending)
    more = f", {inbox.pending_total - shown} more pending" if inbox.pending_total > shown else ""
    counts = f"{inbox.inflight_total} in flight, {inbox.pending_total} pending{more}"
    table = Table(title=literal(f"{inbox.name}: {counts}"))
    for column in ("#", "", "sent", "from", "message"):
        table.add_column(column, overflow="fold")
    for delivery in inbox.inflight:
        again = f" (attempt {delivery.attempt})" if delivery.attempt > 1 else ""
        table.add_row(
            Text(str(delivery.id)),
            Text("in flight" + again, style="cyan"),
            Text(_stamp(delivery.sent_at)),
            literal(delivery.sender),
            literal(delivery.body),
        )
    for message in inbox.pending:
        table.add_row(
            Text(str(message.id)),
            Text("pending", style="dim"),
            Text(_stamp(message.sent_at)),
            literal(message.sender),
            literal(message.body),
        )
    return table


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


_APPROVAL_STYLE = {"pending": "yellow", "approved": "green", "denied": "red", "failed": "bold red"}


def approvals_table(approvals: Iterable[wire.Approval], *, title: str = "approvals") -> Table:
    """Approval rows: who, what, which commit, where it stands; the manager's text literally."""
    table = Table(
        title=title, caption="see one with `hyperhive diff ID`; decide with approve / deny"
    )
    for column in ("#", "agent", "kind", "commit", "requested", "status", "description"):
        table.add_column(column, overflow="fold")
    for a in approvals:
        status = literal(a.status, _APPROVAL_STYLE.get(a.status, ""))
        if a.note:
            status.append(visible(f": {a.note}"))
        table.add_row(
            Text(str(a.id)),
            literal(a.agent),
            literal(a.kind),
            literal((a.fetched_sha or a.commit_ref)[:12]),
            literal(a.requested_at),
            status,
            literal(a.description),
        )
    return table


_MARK = {"grants": "+", "revokes": "-", "changes": "~"}
_MARK_STYLE = {"grants": "green", "revokes": "red", "changes": "yellow"}


def approval_detail(detail: wire.ApprovalDetail) -> Text:
    """`hyperhive diff ID`: the approval, its capability diff, then its unified diff."""
    a = detail.approval
    text = Text()
    text.append(visible(f"approval #{a.id}: {a.kind} of {a.agent} ({a.status})\n"), style="bold")
    text.append(visible(f"commit {a.fetched_sha or a.commit_ref}"))
    text.append(visible(f" on {detail.base}\n" if detail.base else " (a new agent)\n"))
    text.append(visible(f"requested {a.requested_at}: {a.description}\n"))
    if a.note:
        text.append(visible(f"note: {a.note}\n"))
    text.append("\ncapabilities\n", style="bold")
    if detail.capability_error:
        text.append(visible(detail.capability_error + "\n"), style="red")
    elif not detail.capabilities:
        text.append("no change to what the agent may do\n")
    for change in detail.capabilities:
        text.append(visible(_capability_line(change)) + "\n", style=_MARK_STYLE[change.effect])
    text.append("\ndiff\n", style="bold")
    for line in detail.diff.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
        if line.startswith(("+++", "---", "diff ", "@@")):
            style = "cyan"
        text.append(visible(line) + "\n", style=style)
    return text


def _capability_line(change: wire.CapabilityChange) -> str:
    from hyperhive.config_repo.capabilities import Change, render_text

    effect = change.effect if change.effect in _MARK else "changes"
    row = Change(change.area, effect, change.subject, change.before, change.after)  # type: ignore[arg-type]
    return render_text([row])


def config_view(config: wire.ConfigReply) -> Text:
    """`hyperhive config NAME`: the deployed agent.toml and the tag history."""
    text = Text()
    deploy = f"deploy #{config.deploy}" if config.deploy else "no deploy (its plain config)"
    main = config.main[:12] if config.main else "none"
    text.append(visible(f"{config.name}: main {main}, runs {deploy}\n"), style="bold")
    if config.agent_toml is not None:
        text.append("\nagent.toml at main\n", style="bold")
        text.append(visible(config.agent_toml))
        if not config.agent_toml.endswith("\n"):
            text.append("\n")
    text.append("\nhistory\n", style="bold")
    if not config.tags:
        text.append("no approvals yet\n")
    for tag in config.tags:
        line = f"{tag.at}  {tag.stage}/{tag.id}  {tag.commit[:12]}"
        message = tag.message.strip()
        if tag.stage in ("failed", "denied") and message:
            line += f"  {message}"
        style = {"deployed": "green", "failed": "red", "denied": "red"}.get(tag.stage, "")
        text.append(visible(line) + "\n", style=style)
    return text


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
        case wire.ApprovalAdded(approval=a) | wire.ApprovalResolved(approval=a):
            note = f": {_clip(a.note, 60)}" if a.note else ""
            detail = f"#{a.id} {a.kind} of {a.agent} {a.status}{note}: {_clip(a.description, 40)}"
        case wire.ConfigRefChanged():
            message = f": {_clip(payload.message, 60)}" if payload.message else ""
            ref = payload.ref.removeprefix("refs/tags/").removeprefix("refs/heads/")
            detail = f"{payload.agent} {ref} → {payload.commit[:12]}{message}"
        case wire.CredentialSaved():
            whose = "the hive's" if payload.hive else "own"
            given = ", ".join(payload.agents) or "no agent yet"
            detail = f"{whose} credential ({', '.join(payload.variables)}) given to {given}"
        case wire.CredentialRemoved():
            hive = "the hive's credential forgotten; " if payload.hive else ""
            detail = f"{hive}logged out: {', '.join(payload.agents) or 'no agent'}"
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
