"""What `hyperhive top` knows and what its keys do (pure: no I/O, no trio, no rich).

`TopModel` holds the hive as the daemon reported it (one row per agent, the operator's open
questions, pending approvals, the message flow, one agent's log while it is followed) and the
view's own state (which pane has the focus, the selection in each, an open prompt or overlay,
the last status line). The shell feeds it replies and events, hands it keys, and carries out
the `Command` a key returns; rendering (`screen.py`) only reads it.

Selections are kept by identity (an agent's name, a question's id), so rows that come and go
around the selected one do not move the selection.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

import attrs

from hyperhive import wire

if TYPE_CHECKING:
    from collections.abc import Iterable


__all__ = [
    "PANES",
    "Answer",
    "Approve",
    "Command",
    "Deny",
    "Flow",
    "Follow",
    "Pane",
    "Prompt",
    "Quit",
    "Send",
    "ShowTree",
    "TopModel",
    "scroll_window",
]

Pane = Literal["agents", "questions", "approvals", "messages"]
PANES: Final[tuple[Pane, ...]] = ("agents", "questions", "approvals", "messages")
Overlay = Literal["help", "tree", "question", "approval"]
_FLOW: Final = 500
_PAGE: Final = 10


# -- commands the shell carries out -----------------------------------------------------------


@attrs.frozen
class Send:
    to: str
    body: str


@attrs.frozen
class Answer:
    id: int
    answer: str


@attrs.frozen
class Approve:
    id: int


@attrs.frozen
class Deny:
    id: int
    note: str


@attrs.frozen
class Follow:
    """Follow `name`'s log (None: stop following)."""

    name: str | None


@attrs.frozen
class ShowTree:
    """Fetch the actor tree for the tree overlay."""


@attrs.frozen
class Quit:
    pass


Command: TypeAlias = Send | Answer | Approve | Deny | Follow | ShowTree | Quit


# -- the view's state -------------------------------------------------------------------------


@attrs.frozen
class Prompt:
    """A line being typed: a message to an agent, an answer, a reason for a denial."""

    kind: Literal["send", "answer", "deny"]
    target: str | int  # the agent's name, the question's or the approval's id
    label: str
    text: str = ""
    choices: tuple[str, ...] = ()  # a question's options, cycled into `text` with Tab
    choice: int = -1


@attrs.frozen
class Flow:
    """One line of the message flow: a message, or something that happened to one or an agent."""

    at: float
    kind: Literal["message", "dead", "crash", "limit", "gap"]
    sender: str = ""
    recipient: str = ""
    text: str = ""


def scroll_window(count: int, cursor: int, offset: int, visible: int) -> int:
    """The first row to show so that `cursor` is visible, moving `offset` as little as possible."""
    if visible <= 0 or count <= visible:
        return 0
    offset = min(max(offset, cursor - visible + 1), cursor)
    return max(0, min(offset, count - visible))


@attrs.define
class TopModel:
    agents: dict[str, wire.ContainerView] = attrs.Factory(dict)
    questions: dict[int, wire.Question] = attrs.Factory(dict)
    approvals: list[wire.Approval] = attrs.Factory(list)
    # None while the daemon serves no approval flow; then `approvals_note` says what it said.
    approvals_served: bool = False
    approvals_note: str = "asking the daemon…"
    diff: str | None = None  # the open approval's diff, when the daemon serves one
    flow: deque[Flow] = attrs.Factory(lambda: deque(maxlen=_FLOW))
    seen_seq: int = 0
    focus: Pane = "agents"
    selected: dict[Pane, str | int | None] = attrs.Factory(lambda: {pane: None for pane in PANES})
    offsets: dict[Pane, int] = attrs.Factory(lambda: {pane: 0 for pane in PANES})
    flow_back: int = 0  # lines scrolled back from the newest in the message flow
    prompt: Prompt | None = None
    overlay: Overlay | None = None
    confirm: Literal["approve", "deny"] | None = None
    detail_offset: int = 0  # lines scrolled down in an overlay (a long diff)
    following: str | None = None
    log_text: str = ""
    tree: wire.StatusReply | None = None
    status: str = ""
    status_is_error: bool = False
    connected: bool = True

    # -- what the daemon says -----------------------------------------------------------------

    def load_agents(self, views: Iterable[wire.ContainerView]) -> None:
        self.agents = {view.name: view for view in views}

    def load_questions(self, questions: Iterable[wire.Question]) -> None:
        self.questions = {q.id: q for q in questions if q.target == "operator"}

    def load_approvals(self, rows: list[wire.Approval] | None, note: str = "") -> None:
        """Pending approvals; None (with the daemon's sentence) when it serves no approval flow."""
        self.approvals_served = rows is not None
        self.approvals = [row for row in rows or () if row.status == "pending"]
        # A daemon without the flow answers "unknown cmd 'pending'; known commands: ...".
        self.approvals_note = "" if rows is not None else f"no approval flow here ({note})"

    def apply(self, event: wire.Event) -> None:
        """One event from history or the feed; anything already seen is ignored."""
        if event.seq <= self.seen_seq:
            return
        self.seen_seq = event.seq
        payload = event.payload
        match payload:
            case wire.ContainerStateChanged(container=view):
                self.agents[view.name] = view
            case wire.ContainerRemoved(name=name) | wire.AgentUnregistered(name=name):
                self.agents.pop(name, None)
            case wire.QuestionAdded(question=q) if q.target == "operator":
                self.questions[q.id] = q
            case wire.QuestionResolved(question=q):
                self.questions.pop(q.id, None)
            case wire.MessageSent(message=m):
                self._flow(Flow(m.sent_at, "message", m.sender, m.recipient, m.body))
            case wire.MessageDeadLettered():
                text = f"#{payload.id} dead after {payload.attempts} tries"
                self._flow(Flow(event.at, "dead", recipient=payload.recipient, text=text))
            case wire.ContainerCrashed():
                text = f"crashed (exit status {payload.exit_code})"
                self._flow(Flow(event.at, "crash", sender=payload.name, text=text))
            case wire.LimitHit():
                text = f"hit limit {payload.limit}: {payload.detail}"
                self._flow(Flow(event.at, "limit", sender=payload.agent, text=text))
            case wire.EventGap():
                text = f"missed events {payload.first_seq}..{payload.last_seq} (too slow)"
                self._flow(Flow(event.at, "gap", text=text))
            case _:
                pass

    def _flow(self, line: Flow) -> None:
        self.flow.append(line)
        if self.flow_back:  # keep the lines the operator scrolled back to in place
            self.flow_back = min(self.flow_back + 1, len(self.flow) - 1)

    def note(self, text: str, *, error: bool = False) -> None:
        self.status = text
        self.status_is_error = error

    # -- what is shown, in order ----------------------------------------------------------------

    def agent_rows(self) -> list[wire.ContainerView]:
        """The manager first, then by name."""
        return sorted(self.agents.values(), key=lambda v: (v.name != "manager", v.name))

    def question_rows(self) -> list[wire.Question]:
        return [self.questions[i] for i in sorted(self.questions)]

    def pane_keys(self, pane: Pane) -> list[str | int]:
        if pane == "agents":
            return [view.name for view in self.agent_rows()]
        if pane == "questions":
            return sorted(self.questions)
        if pane == "approvals":
            return [row.id for row in self.approvals]
        return []

    def cursor(self, pane: Pane) -> int:
        """The selected row's index in `pane` (the first row when the selection is gone)."""
        keys = self.pane_keys(pane)
        chosen = self.selected[pane]
        return keys.index(chosen) if chosen in keys else 0

    def current(self, pane: Pane) -> str | int | None:
        keys = self.pane_keys(pane)
        return keys[self.cursor(pane)] if keys else None

    def current_agent(self) -> wire.ContainerView | None:
        name = self.current("agents")
        return self.agents.get(name) if isinstance(name, str) else None

    def current_question(self) -> wire.Question | None:
        id = self.current("questions")
        return self.questions.get(id) if isinstance(id, int) else None

    def current_approval(self) -> wire.Approval | None:
        id = self.current("approvals")
        return next((row for row in self.approvals if row.id == id), None)

    # -- keys -----------------------------------------------------------------------------------

    def on_key(self, key: str) -> Command | None:
        """What `key` does here and now; a command for the shell, or None."""
        if key == "ctrl-c":
            return Quit()
        if self.prompt is not None:
            return self._prompt_key(key)
        if self.confirm is not None:
            return self._confirm_key(key)
        if self.overlay is not None:
            return self._overlay_key(key)
        return self._key(key)

    def _key(self, key: str) -> Command | None:
        match key:
            case "q":
                return Quit()
            case "tab" | "backtab":
                step = 1 if key == "tab" else -1
                self.focus = PANES[(PANES.index(self.focus) + step) % len(PANES)]
            case "up" | "k" | "down" | "j" | "pageup" | "pagedown" | "home" | "g" | "end" | "G":
                self._move(key)
            case "?":
                self.overlay = "help"
            case "t":
                self.overlay = "tree"
                return ShowTree()
            case "escape" if self.following is not None:
                return self._unfollow()
            case "s":
                self._start_send()
            case "a":
                self._start_answer()
            case "l" | "f":
                return self._follow()
            case "enter":
                return self._open()
            case "y" | "n" if self.focus == "approvals":
                self._start_decision("approve" if key == "y" else "deny")
            case _:
                pass
        return None

    def _move(self, key: str) -> None:
        if self.focus == "messages":
            steps = {"up": 1, "k": 1, "down": -1, "j": -1, "pageup": _PAGE, "pagedown": -_PAGE}
            if key in ("home", "g"):
                self.flow_back = max(0, len(self.flow) - 1)
            elif key in ("end", "G"):
                self.flow_back = 0
            else:
                self.flow_back = max(0, min(len(self.flow) - 1, self.flow_back + steps[key]))
            return
        keys = self.pane_keys(self.focus)
        if not keys:
            return
        here = self.cursor(self.focus)
        target = {
            "up": here - 1,
            "k": here - 1,
            "down": here + 1,
            "j": here + 1,
            "pageup": here - _PAGE,
            "pagedown": here + _PAGE,
            "home": 0,
            "g": 0,
            "end": len(keys) - 1,
            "G": len(keys) - 1,
        }[key]
        self.selected[self.focus] = keys[max(0, min(len(keys) - 1, target))]

    def _start_send(self) -> None:
        agent = self.current_agent() if self.focus == "agents" else None
        if agent is None:
            self.note("select an agent first (Tab to the agents pane)", error=True)
            return
        self.prompt = Prompt("send", agent.name, f"send to {agent.name}")

    def _start_answer(self) -> None:
        question = self.current_question()
        if question is None:
            self.note("no open question to answer", error=True)
            return
        self.focus = "questions"
        self.prompt = Prompt(
            "answer",
            question.id,
            f"answer #{question.id} ({question.asker}: {question.question})",
            choices=question.options,
        )

    def _follow(self) -> Command | None:
        agent = self.current_agent()
        if agent is None:
            self.note("no agent to follow", error=True)
            return None
        self.following = agent.name
        self.log_text = ""
        self.note(f"following {agent.name}'s log (Esc stops)")
        return Follow(agent.name)

    def _unfollow(self) -> Command:
        self.note(f"stopped following {self.following}")
        self.following = None
        self.log_text = ""
        return Follow(None)

    def _open(self) -> Command | None:
        self.detail_offset = 0
        if self.focus == "questions" and self.current_question() is not None:
            self.overlay = "question"
        elif self.focus == "approvals" and self.current_approval() is not None:
            self.overlay = "approval"
        elif self.focus == "agents":
            return self._follow()
        return None

    def _start_decision(self, verb: Literal["approve", "deny"]) -> None:
        approval = self.current_approval()
        if approval is None:
            why = self.approvals_note if not self.approvals_served else "no pending approval"
            self.note(why or "no pending approval", error=True)
            return
        if self.overlay != "approval":
            self.detail_offset = 0
        self.overlay = "approval"
        self.confirm = verb

    def _overlay_key(self, key: str) -> Command | None:
        steps = {"up": -1, "k": -1, "down": 1, "j": 1, "pageup": -_PAGE, "pagedown": _PAGE}
        if key in steps:
            self.detail_offset = max(0, self.detail_offset + steps[key])
        elif key in ("escape", "q"):
            self.overlay = None
        elif self.overlay == "question" and key == "a":
            self.overlay = None
            self._start_answer()
        elif self.overlay == "approval" and key in ("y", "n"):
            self._start_decision("approve" if key == "y" else "deny")
        elif self.overlay == "help" and key == "?":
            self.overlay = None
        return None

    def _confirm_key(self, key: str) -> Command | None:
        approval = self.current_approval()
        verb, self.confirm = self.confirm, None
        if approval is None or (key != "y" and not (verb == "deny" and key == "n")):
            self.note("nothing was decided")
            return None
        if verb == "approve":
            self.overlay = None
            return Approve(approval.id)
        self.overlay = None
        self.prompt = Prompt("deny", approval.id, f"deny #{approval.id}: the reason")
        return None

    def _prompt_key(self, key: str) -> Command | None:
        prompt = self.prompt
        assert prompt is not None
        match key:
            case "escape":
                self.prompt = None
                self.note("cancelled")
            case "enter":
                return self._submit(prompt)
            case "backspace":
                self.prompt = attrs.evolve(prompt, text=prompt.text[:-1])
            case "ctrl-u":
                self.prompt = attrs.evolve(prompt, text="")
            case "tab" if prompt.choices:
                choice = (prompt.choice + 1) % len(prompt.choices)
                self.prompt = attrs.evolve(prompt, choice=choice, text=prompt.choices[choice])
            case _ if len(key) == 1:
                self.prompt = attrs.evolve(prompt, text=prompt.text + key)
            case _:
                pass
        return None

    def _submit(self, prompt: Prompt) -> Command | None:
        text = prompt.text.strip()
        if not text:
            self.note("type something first (Esc cancels)", error=True)
            return None
        self.prompt = None
        if prompt.kind == "send":
            return Send(str(prompt.target), text)
        assert isinstance(prompt.target, int)
        if prompt.kind == "answer":
            return Answer(prompt.target, text)
        return Deny(prompt.target, text)
