"""Drawing `hyperhive top` from its model (rich renderables; reads the model, writes only the
scroll offsets it had to move to keep a selection visible).

The screen, top to bottom: a header line (counts), the agents pane, the questions and
approvals panes side by side, the message flow (or the followed agent's log), and two footer
lines (the status or the prompt being typed, then the keys). Panes share the height by ratio
with a minimum each, so on a small terminal they shrink to their title and a row or two but
never vanish; a pane with more rows than fit scrolls to keep its selection in view and says
which rows it shows.

Everything that came from an agent (names, message bodies, questions, log lines, approval
texts, notes) goes through `visible` and is set as plain `Text`: never parsed as markup,
control characters shown as escapes.
"""

from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Final

from rich.console import Group
from rich.layout import Layout
from rich.table import Table
from rich.text import Text

from hyperhive.agent.wake import render_body
from hyperhive.top.model import Flow, TopModel, scroll_window
from hyperhive.tui import status_table, visible

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

    from hyperhive import wire
    from hyperhive.top.model import Pane

__all__ = ["NOT_REPORTED", "render"]

# What the daemon has no figure for yet (an agent that has run no turn): shown as this mark,
# never guessed.
NOT_REPORTED: Final = "·"
_FOCUSED: Final = "reverse bold"
_STATE_STYLE: Final = {
    "running": "green",
    "crashed": "bold red",
    "unknown": "yellow",
    "absent": "dim",
    "stopped": "dim",
}
_NARROW: Final = (11, 9, 12, 9, 3, 4, 4, 4)
_WIDE: Final = (11, 12, 13, 16, 5, 6, 5, 10)
_HEADERS: Final = ("agent", "state", "doing", "model", "ctx", "cost", "mail", "last")
_KEYS: Final = "?:help q:quit Tab:pane ↑↓:move s:send a:answer y/n:approve/deny l:log t:tree"


def render(model: TopModel, now: float | None = None, height: int | None = None) -> RenderableType:
    """The whole screen for `model` (`now`: the wall clock, for ages; `height`: the
    terminal's, to size the panes by what they hold)."""
    now = time.time() if now is None else now
    layout = Layout()
    layout.split_column(
        Layout(_header(model, now), name="header", size=1),
        Layout(name="body", ratio=1),
        Layout(_Footer(model), name="footer", size=2),
    )
    body = layout["body"]
    if model.overlay is not None:
        body.update(_overlay(model, now))
        return layout
    lower: RenderableType = (
        _LogPane(model) if model.following is not None else _FlowPane(model, now)
    )
    questions = _question_lines(model, now)
    approvals = _approval_lines(model)
    middle = Layout(name="middle")
    middle.split_row(
        Layout(_ListPane(model, "questions", questions), name="questions"),
        Layout(_ListPane(model, "approvals", approvals), name="approvals"),
    )
    panes = [
        Layout(_AgentsPane(model, now), name="agents"),
        middle,
        Layout(lower, name="lower"),
    ]
    needs = (
        len(model.agents) + 2,
        max(len(questions[0]), len(approvals[0]), 1) + 1,
        (1 << 16) if model.following is not None else len(model.flow) + 1,
    )
    sizes = split_heights(height - 3, needs) if height is not None else None
    for pane, ratio, minimum, size in zip(
        panes, _RATIOS, _MINIMUMS, sizes or (None, None, None), strict=True
    ):
        pane.ratio, pane.minimum_size, pane.size = ratio, minimum, size
    body.split_column(*panes)
    return layout


_RATIOS: Final = (4, 1, 2)  # agents, questions and approvals, messages
_MINIMUMS: Final = (4, 3, 3)


def split_heights(total: int, needs: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """Heights for the three panes: each its minimum, then lines one at a time to the pane
    furthest below its ratio share among those that can use more, then by ratio alone.

    None when even the minimums do not fit (rich's ratios then decide).
    """
    sizes = list(_MINIMUMS)
    remaining = total - sum(sizes)
    if remaining < 0:
        return None
    while remaining > 0:
        wanting = [i for i in range(3) if sizes[i] < needs[i]] or [0, 1, 2]
        chosen = min(wanting, key=lambda i: sizes[i] / _RATIOS[i])
        sizes[chosen] += 1
        remaining -= 1
    return sizes[0], sizes[1], sizes[2]


# -- header and footer ------------------------------------------------------------------------


def _header(model: TopModel, now: float) -> Text:
    rows = list(model.agents.values())
    counts = [f"{len(rows)} agents"]
    tallies = (
        ("running", sum(v.state == "running" for v in rows)),
        ("crashed", sum(v.state == "crashed" for v in rows)),
        ("need login", sum(v.needs_login for v in rows)),
        ("rate limited", sum(v.rate_limited for v in rows)),
    )
    counts.extend(f"{count} {label}" for label, count in tallies if count)
    counts.append(f"{len(model.questions)} questions")
    counts.append(f"{len(model.approvals)} approvals" if model.approvals_served else "approvals: -")
    text = Text("hyperhive top", style="bold")
    text.append(" · " + " · ".join(counts))
    if not model.connected:
        text.append("  disconnected", style="bold red")
    clock = datetime.datetime.fromtimestamp(now).strftime("%H:%M:%S")
    return Text.assemble(text, " ", (clock, "dim"), no_wrap=True, overflow="ellipsis")


class _Footer:
    """The status line (or the prompt being typed, its end in view), then the keys."""

    def __init__(self, model: TopModel) -> None:
        self.model = model

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        model, prompt = self.model, self.model.prompt
        if prompt is None:
            first = Text(visible(model.status), style="bold red" if model.status_is_error else "")
            second = Text(_KEYS, style="dim")
        else:
            label = Text(visible(_flat(prompt.label))[: options.max_width // 2] + " > ", "cyan")
            room = max(1, options.max_width - label.cell_len - 1)
            typed = visible(prompt.text)
            if len(typed) > room:  # keep the end, where the cursor is, in view
                typed = "…" + typed[-(room - 1) :]
            first = Text.assemble(label, typed, ("█", "blink"))
            hint = "Enter: " + ("send" if prompt.kind == "send" else "submit")
            hint += " · Esc: cancel · Ctrl-U: clear"
            if prompt.choices:
                hint += " · Tab: " + " / ".join(visible(_flat(c)) for c in prompt.choices)
            second = Text(hint, style="dim")
        for line in (first, second):
            line.no_wrap = True
            line.overflow = "ellipsis"
            yield line


# -- panes ------------------------------------------------------------------------------------


def _title(model: TopModel, pane: Pane, label: str, count: int, first: int, shown: int) -> Text:
    span = f" {first + 1}-{first + shown} of {count}" if shown < count else f" ({count})"
    more = (" ↑" if first > 0 else "") + (" ↓" if first + shown < count else "")
    style = _FOCUSED if model.focus == pane else "bold"
    return Text(f" {label}{span}{more} ", style=style, no_wrap=True, overflow="ellipsis")


class _AgentsPane:
    """One row per agent; columns the daemon does not report are marked, not guessed."""

    def __init__(self, model: TopModel, now: float) -> None:
        self.model = model
        self.now = now

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        model = self.model
        rows = model.agent_rows()
        height = options.height or options.max_height
        visible_rows = max(1, height - 2)  # the title and the column headers
        cursor = model.cursor("agents")
        first = scroll_window(len(rows), cursor, model.offsets["agents"], visible_rows)
        model.offsets["agents"] = first
        shown = rows[first : first + visible_rows]
        title = _title(model, "agents", "agents", len(rows), first, len(shown))
        title.append(f"  {NOT_REPORTED} = not reported yet", style="dim")
        widths = _WIDE if options.max_width >= 120 else _NARROW
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
        for header, width in zip(_HEADERS, widths, strict=True):
            table.add_column(header, width=width, no_wrap=True, overflow="ellipsis")
        table.add_column("flags", ratio=1, no_wrap=True, overflow="ellipsis")
        table.header_style = "bold dim"
        for view in shown:
            selected = view.name == model.current("agents")
            style = (_FOCUSED if model.focus == "agents" else "underline") if selected else ""
            table.add_row(*_agent_cells(view, self.now), style=style)
        if not rows:
            table.add_row(Text("no agents registered", style="dim"))
        yield title
        yield table


def _agent_cells(view: wire.ContainerView, now: float) -> list[Text]:
    state = Text(visible(view.state), style=_STATE_STYLE.get(view.state, "yellow"))
    if view.transient:
        state = Text(visible(view.transient) + "…", style="cyan")
    doing = _doing(view)
    model = Text(visible(view.model), "") if view.model else Text("default", style="dim")
    name = Text(visible(view.name), style="bold" if view.role == "manager" else "")
    last = view.last_turn
    ctx = Text(_tokens(last.ctx_tokens) if last and last.ctx_tokens else NOT_REPORTED, "dim")
    cost = Text(f"${last.cost_usd:.2f}" if last and last.cost_usd is not None else NOT_REPORTED)
    mail = Text(f"{view.pending_messages}+{view.inflight_messages}")
    if not (view.pending_messages or view.inflight_messages):
        mail.stylize("dim")
    result_style = _RESULT_STYLE.get(last.result, "dim") if last else "dim"
    when = Text(_last(last, now) if last else NOT_REPORTED, style=result_style)
    flags = Text(visible(", ".join(_flags(view))))
    return [name, state, doing, model, ctx, cost, mail, when, flags]


_RESULT_STYLE: Final = {"ok": "", "failed": "red", "rate_limited": "yellow", "needs_login": "red"}
_DOING_STYLE: Final = {
    "needs login": "bold red",
    "crashed": "bold red",
    "start refused": "bold red",
    "retrying": "yellow",
    "backing off": "red",
    "rate limited": "yellow",
    "paused": "magenta",
    "working": "green",
    "lost the hive": "red",
}


def _doing(view: wire.ContainerView) -> Text:
    """The semantic state (what the daemon says the agent is doing), or its own status."""
    if not view.semantic:  # a row from an older daemon: its flags are all there is
        if view.needs_login:
            return Text("needs login", style="bold red")
        if view.rate_limited:
            return Text("rate limited", style="yellow")
        return Text(NOT_REPORTED, style="dim")
    word = view.status_text if view.semantic in ("working", "idle") and view.status_text else ""
    return Text(visible(word or view.semantic), style=_DOING_STYLE.get(view.semantic, ""))


def _tokens(count: int) -> str:
    return f"{count / 1000:.0f}k" if count >= 1000 else str(count)


def _last(last: wire.LastTurn, now: float) -> str:
    """How long ago the last turn ended, and how it went when not well."""
    ago = max(0, int(now - last.ended_at))
    span = f"{ago}s" if ago < 60 else (f"{ago // 60}m" if ago < 3600 else f"{ago // 3600}h")
    return span if last.result == "ok" else f"{span} {last.result}"


def _flags(view: wire.ContainerView) -> list[str]:
    flags = ["update pending"] if view.needs_update else []
    settled = view.state in ("running", "starting") if view.wanted == "running" else None
    if view.wanted == "stopped" and view.state == "running":
        settled = False
    if settled is False:
        flags.append(f"wants {view.wanted}")
    if view.exit_code not in (None, 0):
        flags.append(f"exit {view.exit_code}")
    if not view.network:
        flags.append("net off")
    if view.pending_reminders:
        flags.append(f"{view.pending_reminders} rem")
    quota = view.disk_quota
    if view.disk_bytes is not None and quota is not None and view.disk_bytes > quota:
        flags.append("over disk quota")
    flags.extend(_flat(note) for note in view.notes)
    if view.parent:
        flags.append(f"spawned by {view.parent}")
    return flags


class _ListPane:
    """A titled list of one-line rows with a selection (questions, approvals)."""

    def __init__(self, model: TopModel, pane: Pane, lines: tuple[list[Text], Text]) -> None:
        self.model = model
        self.pane = pane
        self.lines, self.empty = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        model, pane = self.model, self.pane
        height = options.height or options.max_height
        visible_rows = max(1, height - 1)
        cursor = model.cursor(pane)
        first = scroll_window(len(self.lines), cursor, model.offsets[pane], visible_rows)
        model.offsets[pane] = first
        shown = self.lines[first : first + visible_rows]
        yield _title(model, pane, pane, len(self.lines), first, len(shown))
        if not self.lines:
            yield self.empty
        for index, line in enumerate(shown, start=first):
            if index == cursor:
                line.stylize(_FOCUSED if model.focus == pane else "underline")
            line.no_wrap = True
            line.overflow = "ellipsis"
            yield line


def _question_lines(model: TopModel, now: float) -> tuple[list[Text], Text]:
    lines = []
    for q in model.question_rows():
        line = Text(f"#{q.id} ", style="bold")
        line.append(_age(now - q.asked_at) + " ", style="dim")
        line.append(visible(q.asker), style="cyan")
        line.append(": " + visible(_flat(q.question)))
        if q.options:
            line.append(" [" + " / ".join(visible(_flat(o)) for o in q.options) + "]", "dim")
        lines.append(line)
    return lines, Text("none open", style="dim")


def _approval_lines(model: TopModel) -> tuple[list[Text], Text]:
    if not model.approvals_served:
        note = visible(_flat(model.approvals_note))
        return [], Text(note, style="dim", no_wrap=True, overflow="ellipsis")
    lines = []
    for row in model.approvals:
        line = Text(f"#{row.id} ", style="bold")
        line.append(visible(row.agent), style="cyan")
        line.append(f" {visible(row.kind)} {visible(row.commit_ref[:12])} ", style="dim")
        line.append(visible(_flat(row.description)))
        lines.append(line)
    return lines, Text("none pending", style="dim")


class _FlowPane:
    """The newest messages (and crashes, dead letters, limits) at the bottom."""

    def __init__(self, model: TopModel, now: float) -> None:
        self.model = model
        self.now = now

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        model = self.model
        height = options.height or options.max_height
        visible_rows = max(1, height - 1)
        flow = list(model.flow)
        end = len(flow) - min(model.flow_back, max(0, len(flow) - 1))
        start = max(0, end - visible_rows)
        shown = flow[start:end]
        yield _title(model, "messages", "messages", len(flow), start, len(shown))
        if not flow:
            yield Text("no messages yet", style="dim")
        for line in shown:
            yield _flow_line(line)


def _flow_line(line: Flow) -> Text:
    stamp = datetime.datetime.fromtimestamp(line.at).strftime("%H:%M:%S")
    text = Text(stamp + " ", style="dim", no_wrap=True, overflow="ellipsis")
    if line.kind == "message":
        text.append(visible(line.sender), style="cyan")
        text.append(" → ")
        text.append(visible(line.recipient), style="cyan")
        body = render_body(line.sender, line.text)  # the hive's own notes, as sentences
        text.append(": " + visible(_flat(body)))
        return text
    style = {"dead": "red", "crash": "bold red", "limit": "yellow", "gap": "yellow"}[line.kind]
    who = line.sender or line.recipient
    if who:
        text.append(visible(who) + " ", style="cyan")
    text.append(visible(_flat(line.text)), style=style)
    return text


class _LogPane:
    """The followed agent's log: its newest lines, control characters made visible."""

    def __init__(self, model: TopModel) -> None:
        self.model = model

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        model = self.model
        height = options.height or options.max_height
        lines = model.log_text.splitlines()[-max(1, height - 1) :]
        title = f" log: {visible(model.following or '')} (Esc stops) "
        yield Text(title, style=_FOCUSED, no_wrap=True, overflow="ellipsis")
        if not lines:
            yield Text("nothing logged yet", style="dim")
        for line in lines:
            yield Text(visible(line.expandtabs()), no_wrap=True, overflow="ellipsis")


# -- overlays ---------------------------------------------------------------------------------


def _overlay(model: TopModel, now: float) -> RenderableType:
    if model.overlay == "tree":
        if model.tree is None:
            return Text("asking the daemon for its actor tree…", style="dim")
        return Group(status_table(model.tree), Text("Esc: back", style="dim"))
    if model.overlay == "question":
        question = model.current_question()
        if question is not None:
            return _question_detail(model, question, now)
    if model.overlay == "approval":
        approval = model.current_approval()
        if approval is not None:
            return _approval_detail(model, approval)
    return _help()


class _Detail:
    """An overlay's lines, scrolled by the model's `detail_offset`; its last line (what the
    keys do) always shows."""

    def __init__(self, model: TopModel, lines: list[Text], last: Text) -> None:
        self.model = model
        self.lines = lines
        self.last = last

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or options.max_height
        wrapped: list[Text] = []
        for line in self.lines:
            wrapped.extend(line.wrap(console, options.max_width))
        room = max(1, height - 1)
        top = min(self.model.detail_offset, max(0, len(wrapped) - room))
        self.model.detail_offset = top
        yield from wrapped[top : top + room]
        more = len(wrapped) - top - room
        if more > 0:
            self.last = Text.assemble((f"({more} more lines: ↓) ", "dim"), self.last)
        yield self.last


def _question_detail(model: TopModel, q: wire.Question, now: float) -> _Detail:
    head = Text(f"question #{q.id} from ", style="bold")
    head.append(visible(q.asker), style="bold cyan")
    head.append(f", asked {_age(now - q.asked_at)} ago", style="dim")
    lines = [head, *(Text(visible(line)) for line in q.question.splitlines() or [""])]
    if q.options:
        options = Text("options" + (" (several)" if q.multi else "") + ": ", style="bold")
        options.append(" / ".join(visible(o) for o in q.options))
        lines.append(options)
    return _Detail(model, lines, Text("a: answer · ↑↓: scroll · Esc: back", style="dim"))


def _approval_detail(model: TopModel, row: wire.Approval) -> _Detail:
    head = Text(f"approval #{row.id}: ", style="bold")
    head.append(visible(row.kind), style="bold")
    head.append(" for ")
    head.append(visible(row.agent), style="bold cyan")
    facts = Text(
        f"commit {visible(row.commit_ref)} · fetched {visible(row.fetched_sha or '-')} · "
        f"requested {visible(row.requested_at)} · {visible(row.status)}",
        style="dim",
    )
    lines = [head, facts, *(Text(visible(line)) for line in row.description.splitlines())]
    if model.diff is None:
        lines.append(Text("(the daemon serves no diff for this approval)", style="dim"))
    else:
        lines.extend(_diff(model.diff))
    if model.confirm == "approve":
        last = Text(f"approve #{row.id} and deploy it? y: yes · any other key: no", "bold")
    elif model.confirm == "deny":
        last = Text(f"deny #{row.id}? y: yes, then the reason · any other key: no", "bold")
    else:
        last = Text("y: approve · n: deny · ↑↓: scroll · Esc: back", style="dim")
    return _Detail(model, lines, last)


def _diff(diff: str) -> list[Text]:
    lines = []
    for line in diff.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
        if line.startswith("@@"):
            style = "cyan"
        lines.append(Text(visible(line), style=style))
    return lines


def _help() -> Group:
    rows = [
        ("Tab / Shift-Tab", "next / previous pane (agents, questions, approvals, messages)"),
        ("↑ ↓ j k, PgUp PgDn, g G", "move the selection; in messages, scroll back"),
        ("s", "send a message to the selected agent"),
        ("a, Enter", "answer the selected question / show it whole"),
        ("y, n, Enter", "approve / deny the selected approval (its diff is shown first)"),
        ("l, Enter", "follow the selected agent's log; Esc stops"),
        ("t", "the daemon's actor tree"),
        ("q, Ctrl-C", "quit"),
    ]
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, what in rows:
        table.add_row(key, what)
    return Group(Text("keys", style="bold"), table, Text("Esc or ?: back", style="dim"))


# -- small helpers ----------------------------------------------------------------------------


def _flat(text: str) -> str:
    return " ".join(text.split())


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
