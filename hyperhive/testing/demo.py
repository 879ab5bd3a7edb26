"""The demo hive (`hyperhive serve --demo`): real agents, a scripted model, canned behaviours.

Every demo agent runs the real harness and the real `claude` binary; only the model is
scripted. Each agent's command is `scripted_api` wrapping the harness
(`demo_agent_command`): it serves a `ModelAPI` on 127.0.0.1 *inside the agent's own network
namespace* and points Claude at it, so the demo needs no credential and works on every backend,
the walled bwrap default included (there the host's loopback is out of the agent's reach, its
own is not; docs/web-ui.md, "Demo hive").

The behaviours (`demo_reply`), decided from the wake prompt Claude was given, one tool call per
message, oldest first:

| the message | what the agent does |
|---|---|
| from the operator, ``greet NAME`` | sends NAME ``hello NAME, I am <me>`` |
| from the operator, ``ask me ...`` | asks the operator which colour the hive should be (options) |
| from the operator, ``show your tools`` | writes ``notes/plan.md``, edits it, runs ``echo`` |
| from the operator, ``hold on`` | keeps the model request open (until the turn is cancelled) |
| from the operator, ``xss`` | puts HTML and script in text, a file name, tool arguments |
| from the operator, anything else | replies to the operator, quoting it in markdown |
| from an agent, ``hello ...`` | answers that agent ``nice to meet you, <them>`` |
| from an agent, anything else | nothing (no reply loops) |
| hive event: your question was answered | thanks the operator for the answer (if not cancelled) |
| hive event: NAME crashed (the manager) | tells the operator, suggests a restart |
| hive event: someone asks you a question | answers it with its first option (or ``yes``) |

A request without the hive's tools (Claude's own side requests) gets the polite default. An agent
whose name starts with ``guest`` is started with no credential (`LOGGED_OUT_PREFIX`), so the
demo can show the login flow.

`demo_child` is the daemon child that sets the demo up once the agents are started: it spawns
`DEMO_AGENTS` that do not exist yet and sends each new one its kick-off message.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, Any, Final

import trio

from actors import ChildSpec, Restart
from hyperhive.errors import HyperhiveError
from hyperhive.testing.model_api import ApiRequest, Hold, Reply, Text, ToolCall

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from hyperhive.core.handles import Handles

__all__ = [
    "DEMO_AGENTS",
    "KICKOFF",
    "LOGGED_OUT_PREFIX",
    "XSS",
    "demo_agent_command",
    "demo_child",
    "demo_reply",
    "plan",
]

LOGGER = logging.getLogger("hyperhive.demo")
DEMO_AGENTS: Final = ("alice", "bob")
# What the operator "says" to each new demo agent, so a fresh demo has something going on.
KICKOFF: Final[Mapping[str, str]] = {
    "alice": "greet bob",
    "bob": "ask me which colour the hive should be",
}
COLOURS: Final = ("amber", "teal", "violet")
LOGGED_OUT_PREFIX: Final = "guest"  # demo agents named so start without a credential
# What the `xss` behaviour puts everywhere an agent can put text: shown, never run.
XSS: Final = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
_HOLD: Final = "hold on"
_SEND: Final = "mcp__hive__send"
_ASK: Final = "mcp__hive__ask"
_ANSWER: Final = "mcp__hive__answer"
_BLOCK: Final = re.compile(r"^from: (\S+)\n\n(.*)\Z", re.DOTALL)


def demo_agent_command(python: str = sys.executable) -> tuple[str, ...]:
    """The command a demo agent runs: the scripted model wrapping the real harness."""
    return (
        python,
        "-m",
        "hyperhive.testing.scripted_api",
        "--script",
        "demo",
        "--",
        python,
        "-m",
        "hyperhive",
        "agent",
        "serve",
    )


def _messages(wake: str) -> list[tuple[str, str]]:
    """(sender, body) of each message block in a wake prompt, oldest first."""
    found = []
    for part in wake.split("\n\n---\n\n"):
        lines = part.split("\n")
        while lines and lines[0].startswith("["):  # redelivery banners
            lines.pop(0)
        match = _BLOCK.match("\n".join(lines))
        if match:
            found.append((match.group(1), match.group(2).strip()))
    return found


def _show_tools(me: str, state: str) -> list[ToolCall]:
    path = f"{state}/notes/plan.md"
    return [
        ToolCall(
            "Write",
            {"file_path": path, "content": "# plan\n\nstep one\n"},
            text="I will **write** a plan, edit it and run a command.",
        ),
        ToolCall("Edit", {"file_path": path, "old_string": "step one", "new_string": "step two"}),
        ToolCall("Bash", {"command": "echo tools-ok", "description": "say it works"}),
        ToolCall(_SEND, {"to": "operator", "body": f"**{me}** wrote, edited and ran things"}),
    ]


def _xss(state: str) -> list[ToolCall]:
    return [
        ToolCall(
            "Write",
            {"file_path": f"{state}/notes/{XSS.replace('/', '_')}.md", "content": XSS},
            text=f"Here is some text: {XSS}",
        ),
        ToolCall(_SEND, {"to": "operator", "body": f"a message: {XSS}"}),
        ToolCall("Bash", {"command": f"echo '{XSS}'", "description": XSS}),
    ]


def _action(me: str, sender: str, body: str, state: str = "/state") -> list[ToolCall]:
    """What agent `me` does about one message (the table in the module docstring)."""
    found = _one_action(me, sender, body)
    if sender == "operator" and body.lower().startswith("show your tools"):
        return _show_tools(me, state)
    if sender == "operator" and body.lower() == "xss":
        return _xss(state)
    if sender == "operator" and body.lower().startswith(_HOLD):
        return []
    return [found] if found is not None else []


def _one_action(me: str, sender: str, body: str) -> ToolCall | None:
    if sender == "operator":
        if greet := re.match(r"greet (\S+)", body):
            peer = greet.group(1).strip(".,!")
            return ToolCall(_SEND, {"to": peer, "body": f"hello {peer}, I am {me}"})
        if body.lower().startswith("ask me"):
            return ToolCall(
                _ASK,
                {
                    "question": "Which colour should the hive's banner be?",
                    "options": list(COLOURS),
                },
            )
        quoted = "\n".join(f"> {line}" for line in body.splitlines()) or "> (empty)"
        return ToolCall(
            _SEND, {"to": "operator", "body": f"**{me}** got your message:\n\n{quoted}"}
        )
    if sender == "hive":
        return _on_hive_event(me, body)
    if body.startswith("hello"):
        return ToolCall(_SEND, {"to": sender, "body": f"nice to meet you, {sender}"})
    return None


def _on_hive_event(me: str, body: str) -> ToolCall | None:
    if answered := re.search(
        r"your question #(\d+) was answered by (\S+).*\nanswer: (.*)", body, re.S
    ):
        number, answerer, answer = answered.groups()
        text = f"thanks, {answerer}: you picked **{answer.strip()}** (question #{number})"
        if answer.strip().startswith("[cancelled"):
            text = f"ok, never mind question #{number}"
        return ToolCall(_SEND, {"to": "operator", "body": text})
    if asked := re.search(r"asks you question #(\d+)", body):
        options = re.search(r"options: (.*)", body)
        pick = options.group(1).split(" | ")[0] if options else "yes"
        return ToolCall(_ANSWER, {"id": int(asked.group(1)), "answer": pick})
    if "hive event: container crash" in body:
        name = re.search(r"- name: (\S+)", body)
        status = re.search(r"- exit_code: (\S+)", body)
        text = (
            f"{name.group(1) if name else 'an agent'} crashed (exit status "
            f"{status.group(1) if status else 'unknown'}); restart it from the dashboard"
        )
        return ToolCall(_SEND, {"to": "operator", "body": text})
    return None


def _holds(wake: str) -> bool:
    """Whether the wake has a new ``hold on`` from the operator (one shown again after its
    turn was cancelled is let go, so the agent is not stuck on it)."""
    for part in wake.split("\n\n---\n\n"):
        if part.startswith("["):
            continue  # a banner: redelivered or shown again
        if any(s == "operator" and b.lower().startswith(_HOLD) for s, b in _messages(part)):
            return True
    return False


def plan(me: str, wake: str, state: str = "/state") -> list[ToolCall]:
    """Every tool call agent `me` makes for one wake prompt, in order."""
    return [call for sender, body in _messages(wake) for call in _action(me, sender, body, state)]


def _wake_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    """The index of the last user message that is a prompt, not tool results."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        content = message.get("content")
        if message.get("role") != "user":
            continue
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            continue
        return index
    return None


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "\n".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))


def _last_text(content: object) -> str:
    """The last text block of a message: Claude merges an interrupted turn's prompt, its
    "[Request interrupted by user]" and the next prompt into one user message."""
    if isinstance(content, str):
        return content
    texts = (
        [str(b.get("text", "")) for b in content if isinstance(b, dict)]
        if isinstance(content, list)
        else []
    )
    return texts[-1] if texts else ""


def _calls_since(messages: Sequence[Mapping[str, Any]], index: int) -> int:
    count = 0
    for message in messages[index + 1 :]:
        content = message.get("content")
        if message.get("role") == "assistant" and isinstance(content, list):
            count += sum(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)
    return count


def demo_reply(me: str, request: ApiRequest, state: str = "/state") -> Reply:
    """The scripted model's answer for agent `me` (stateless: a function of the request);
    `state` is the agent's state directory as it sees it (where it writes files)."""
    if _SEND not in request.tool_names:
        return Text("ok.")
    index = _wake_index(request.messages)
    if index is None:
        return Text("ok.")
    wake = _text(request.messages[index].get("content"))
    done = _calls_since(request.messages, index)
    if done == 0 and _holds(_last_text(request.messages[index].get("content"))):
        return Hold(trio.Event(), Text("held, then let go."))  # until claude gives up on it
    calls = plan(me, wake, state)
    if done < len(calls):
        return calls[done]
    return Text("done." if calls else "nothing to do.")


def demo_child(hive: Handles) -> ChildSpec:
    """The daemon child that spawns the demo agents once the daemon has started its agents."""

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await hive.agents.wait_autostarted()
        for name in DEMO_AGENTS:
            if hive.agents.has_record(name):
                continue
            try:
                await hive.agents.spawn(name)
                await hive.messages.send("operator", name, KICKOFF[name])
            except HyperhiveError as exc:
                LOGGER.error("demo: could not spawn %s: %s", name, exc)
        LOGGER.info("demo hive ready: %s and the manager", ", ".join(DEMO_AGENTS))

    return ChildSpec("demo", run, restart=Restart.TRANSIENT, shutdown_timeout=0.0)
