"""The command table: every request the daemon's sockets take, each declared once.

A command is one attrs class with its tag and its reply type::

    @command("send", tool=agent_tool("Send a message to another agent ..."))
    @value
    class Send(Request[Sent]):
        to: str = attrs.field(metadata=text(MAX_NAME_CHARS))
        body: str = attrs.field(metadata=text(MAX_LINE_BYTES))

and everything else is derived from that declaration: the tag table (`COMMANDS`, `REQUESTS`),
the decoder and its field bounds (`hyperhive.wire.codec`), ``client.call(Send(...))`` typed as
returning `Sent`, the MCP tools an agent (``agent_tool``) or the manager (``manager_tool``)
gets (`hyperhive.agent.tools`), the Hypothesis strategies and examples
(`hyperhive.testing.wire_strategies`) and one golden fixture per command
(``tests/hyperhive/golden/wire/commands/``). docs/conventions.md shows adding one.

Tags are snake_case and stable: renaming a class never changes the wire. This module has no
hand-kept ``__all__``: `hyperhive.wire` exports every command in `COMMANDS`. The three commands
an agent's harness sends on its own (recv, ack_turn, requeue_inflight) are declared in
`hyperhive.wire.turn`, so that a harness starts without declaring the other fifty
(docs/performance.md); importing this module declares them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from hyperhive.value import value
from hyperhive.wire._bounds import (
    ID,
    MAX_ANSWER_CHARS,
    MAX_LIMIT,
    MAX_LINE_BYTES,
    MAX_NAME_CHARS,
    MAX_OPTION_CHARS,
    MAX_OPTIONS,
    MAX_PATH_CHARS,
    MAX_QUESTION_CHARS,
    MAX_SECONDS,
    number,
    text,
)
from hyperhive.wire._table import COMMANDS, Request, agent_tool, command, manager_tool
from hyperhive.wire.replies import (
    AgentInbox,
    Agents,
    AgentStatuses,
    ApprovalDetail,
    ApprovalReply,
    Approvals,
    Asked,
    ConfigInitialised,
    ConfigReply,
    Container,
    Containers,
    CredentialStored,
    DeadLetters,
    Empty,
    HistoryReply,
    InboxReply,
    LoggedOut,
    LogsReply,
    LooseEndCancelled,
    LooseEnds,
    Questions,
    Reminders,
    Resolved,
    Scheduled,
    Sent,
    StatusReply,
    Submitted,
    Tombstones,
    Urls,
    WhoamiReply,
)
from hyperhive.wire.rows import Scope
from hyperhive.wire.turn import AckTurn, Recv, RequeueInflight  # noqa: F401  (rows of the table)

if TYPE_CHECKING:
    from typing import Any


@command("status")
@value
class GetStatus(Request[StatusReply]):
    """Admin: the live actor tree with each actor's statistics."""


@command(
    "send",
    tool=agent_tool("Send a message to another agent by name, to `manager`, or to `operator`."),
)
@value
class Send(Request[Sent]):
    """Send ``body`` to agent ``to`` (or to ``operator``)."""

    to: str = attrs.field(metadata=text(MAX_NAME_CHARS))
    body: str = attrs.field(metadata=text(MAX_LINE_BYTES))


@command("register_agent")
@value
class RegisterAgent(Request[Agents]):
    """Admin: make ``name`` a known agent with its own socket."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command("unregister_agent")
@value
class UnregisterAgent(Request[Agents]):
    """Admin: forget ``name`` and close its socket; its state is kept as a tombstone and its
    messages stay on disk."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command("list_agents")
@value
class ListAgents(Request[Agents]):
    """Admin: the registered agents."""


@command("inbox")
@value
class ReadInbox(Request[InboxReply]):
    """Admin: the newest messages agents sent to the operator."""

    limit: int = attrs.field(default=50, metadata=number(0, MAX_LIMIT))


@command("dead_letters")
@value
class ListDeadLetters(Request[DeadLetters]):
    """Admin: dead-lettered messages, optionally for one recipient."""

    recipient: str | None = attrs.field(default=None, metadata=text(MAX_NAME_CHARS))


@command("replay_dead")
@value
class ReplayDead(Request[Sent]):
    """Admin: put a dead letter back in its recipient's inbox with a fresh attempt count."""

    id: int = attrs.field(metadata=ID)


@command("drop_dead")
@value
class DropDead(Request[Empty]):
    """Admin: delete a dead letter for good."""

    id: int = attrs.field(metadata=ID)


@command("history")
@value
class History(Request[HistoryReply]):
    """Dashboard events still in the hub's history, with the seq they are current to."""

    limit: int = attrs.field(default=200, metadata=number(0, MAX_LIMIT))


@command("subscribe")
@value
class SubscribeEvents(Request[Empty]):
    """Turn this connection into a live feed of dashboard events, one per line."""


@command(
    "ask",
    tool=agent_tool(
        "Ask the operator (default) or agent `to` a question. The answer arrives later as a "
        "hive event in your inbox. `options` suggests answers; `multi` allows several."
    ),
)
@value
class Ask(Request[Asked]):
    """Ask the operator (``to`` unset or ``operator``) or agent ``to`` a question.

    ``options`` are suggested answers (``multi``: more than one may be picked); with
    ``ttl_seconds`` an unanswered question is answered by the watchdog when it runs out.
    """

    question: str = attrs.field(metadata=text(MAX_QUESTION_CHARS))
    options: tuple[str, ...] = attrs.field(
        default=(), metadata=text(MAX_OPTION_CHARS, items=MAX_OPTIONS)
    )
    multi: bool = False
    ttl_seconds: float | None = attrs.field(default=None, metadata=number(0, MAX_SECONDS))
    to: str | None = attrs.field(default=None, metadata=text(MAX_NAME_CHARS))


@command("answer", tool=agent_tool("Answer question `id` that someone asked you."))
@value
class Answer(Request[Resolved]):
    """Answer question ``id`` (the operator, or the agent it was asked of)."""

    id: int = attrs.field(metadata=ID)
    answer: str = attrs.field(metadata=text(MAX_ANSWER_CHARS))


@command(
    "remind",
    tool=agent_tool(
        "Remind yourself of `message` after `delay_seconds`, or at `at` (ISO 8601 with a "
        "timezone). With `file_path`, the message is written to that file in your state "
        "directory and the reminder points at it."
    ),
)
@value
class Remind(Request[Scheduled]):
    """Remind the caller of ``message`` after ``delay_seconds`` or at ``at`` (ISO 8601 with a
    timezone); with ``file_path`` the message is written there in the caller's state directory.
    """

    message: str = attrs.field(metadata=text(MAX_LINE_BYTES))
    delay_seconds: float | None = attrs.field(default=None, metadata=number(0, MAX_SECONDS))
    at: str | None = attrs.field(default=None, metadata=text(64))
    file_path: str | None = attrs.field(default=None, metadata=text(MAX_PATH_CHARS))


@command(
    "whoami",
    tool=agent_tool("Your name, role, the operator's pronouns and the hyperhive version."),
)
@value
class Whoami(Request[WhoamiReply]):
    """Who the caller is: name, role, the operator's pronouns, version, pending reminders."""


@command(
    "get_loose_ends",
    tool=agent_tool(
        "Your open questions, pending reminders and approvals (hive-wide for the manager)."
    ),
)
@value
class GetLooseEnds(Request[LooseEnds]):
    """Open questions, pending reminders and approvals: the caller's, or hive-wide (manager)."""


@command(
    "cancel_loose_end",
    tool=agent_tool(
        "Cancel one of your loose ends: `kind` is `question`, `reminder` or (the manager) "
        "`approval`, withdrawing a request the operator has not decided yet."
    ),
)
@value
class CancelLooseEnd(Request[LooseEndCancelled]):
    """Cancel a loose end: ``kind`` is ``question``, ``reminder`` or ``approval``."""

    kind: str = attrs.field(metadata=text(32))
    id: int = attrs.field(metadata=ID)


@command("questions")
@value
class ListQuestions(Request[Questions]):
    """Admin: open questions to the operator, or (``answered``) the recently answered ones."""

    answered: bool = False
    limit: int = attrs.field(default=100, metadata=number(0, MAX_LIMIT))


@command("reminders")
@value
class ListReminders(Request[Reminders]):
    """Admin: pending and failed reminders (``delivered`` adds recent deliveries)."""

    owner: str | None = attrs.field(default=None, metadata=text(MAX_NAME_CHARS))
    delivered: bool = False
    limit: int = attrs.field(default=200, metadata=number(0, MAX_LIMIT))


@command("spawn")
@value
class Spawn(Request[Container]):
    """Admin: create agent ``name``'s container and start it (``network`` false: no network)."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))
    network: bool = True


@command("start", tool=manager_tool("Start agent `name`'s container."))
@value
class StartAgent(Request[Container]):
    """Admin, manager: start agent ``name``'s container."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command(
    "stop",
    tool=manager_tool("Stop agent `name` (asked politely, killed after its grace period)."),
)
@value
class StopAgent(Request[Container]):
    """Admin, manager: stop agent ``name`` (SIGTERM, then SIGKILL after the grace period)."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command("restart", tool=manager_tool("Restart agent `name`'s container."))
@value
class RestartAgent(Request[Container]):
    """Admin, manager: stop, then start agent ``name``."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command("kill", tool=manager_tool("Stop agent `name`'s container now."))
@value
class KillAgent(Request[Container]):
    """Admin, manager: kill agent ``name`` at once (no grace period)."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command(
    "rebuild",
    tool=manager_tool(
        "Rebuild agent `name`'s container from its deployed config (restarts it if running)."
    ),
)
@value
class RebuildAgent(Request[Container]):
    """Admin, manager: re-apply agent ``name``'s container settings from its deployed config,
    restarting it if they need it."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command("destroy")
@value
class Destroy(Request[Empty]):
    """Admin: remove agent ``name``'s container; its state stays as a tombstone unless
    ``purge`` (which also purges an existing tombstone of that name). The manager is destroyed
    only with ``force``."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))
    purge: bool = False
    force: bool = False


@command("list_containers")
@value
class ListContainers(Request[Containers]):
    """Admin: every agent's container view."""


@command("tombstones")
@value
class ListTombstones(Request[Tombstones]):
    """Admin: destroyed agents whose state was kept."""


@command("purge_tombstone")
@value
class PurgeTombstone(Request[Empty]):
    """Admin: delete a destroyed agent's kept state for good."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command("logs")
@value
class Logs(Request[LogsReply]):
    """Admin: the last ``lines`` lines agent ``name``'s process wrote."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))
    lines: int = attrs.field(default=200, metadata=number(0, MAX_LIMIT))


# -- the original's host socket (docs/conventions.md, "Commands shared with the original"):
# the verbs an existing client of the original sends, in its shapes.


@command("list")
@value
class ListNames(Request[Agents]):
    """Admin: every agent's name, the manager's included (the original's ``list``)."""


@command("agent_status")
@value
class GetAgentStatus(Request[AgentStatuses]):
    """Admin: one `AgentStatusRow` per agent, the manager included."""


@command("subscribe_agent_status")
@value
class SubscribeAgentStatus(Request[Empty]):
    """Admin: turn this connection into a feed: after the acknowledgement, one
    ``agent_statuses`` line (a single row) each time an agent's row changes."""


@command("urls")
@value
class GetUrls(Request[Urls]):
    """Admin: where the hive is reached from a browser."""


@command("set_paused")
@value
class SetPaused(Request[Container]):
    """Admin: pause agent ``name`` (it takes no turns; its mail waits) or resume it. Works on a
    stopped agent too; pausing a paused agent changes nothing."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))
    paused: bool


@command("start", variant="scope")
@value
class StartScope(Request[Containers]):
    """Admin: start the agents ``scope`` names (the original's ``start``)."""

    scope: Scope


@command("stop", variant="scope")
@value
class StopScope(Request[Containers]):
    """Admin: stop the agents ``scope`` names (the original's ``stop``). A stop is always
    graceful here (SIGTERM, the grace period, then SIGKILL; a turn cut short keeps its
    messages in flight for the next start); ``graceful`` is accepted for the original's
    shape."""

    scope: Scope
    graceful: bool = False


@command(
    "set_status",
    tool=agent_tool(
        "Set a one-line status the operator sees beside your name (what you are doing, at most "
        "200 characters); an empty text clears it."
    ),
)
@value
class SetStatus(Request[Empty]):
    """Agent: set (or, empty, clear) the caller's free-text status."""

    text: str = attrs.field(metadata=text(200))


@command("agent_inbox")
@value
class ReadAgentInbox(Request[AgentInbox]):
    """Admin: agent ``name``'s pending (oldest first, at most ``limit``) and in-flight mail."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))
    limit: int = attrs.field(default=50, metadata=number(0, MAX_LIMIT))


@command("login")
@value
class Login(Request[CredentialStored]):
    """Admin: store a Claude credential and hand it to agents at once (docs/security.md,
    "Claude credentials"): the hive's, for every agent without one of its own, or, naming
    ``agents``, theirs. ``variables`` are ``NAME=VALUE`` lines (an API key, a setup token, a
    gateway's base URL and settings); they are never shown: the repr leaves them out."""

    variables: tuple[str, ...] = attrs.field(repr=False, metadata=text(8192, items=32))
    agents: tuple[str, ...] = attrs.field(default=(), metadata=text(MAX_NAME_CHARS, items=1000))


@command("logout")
@value
class Logout(Request[LoggedOut]):
    """Admin: undo a ``login`` (docs/security.md, "Claude credentials"). With ``name``: that
    agent gets no credential any more (not even the hive's) until it is logged in by name, the
    credential files in its state directory are removed, and it is restarted if it runs.
    Without: the hive's credential is forgotten, and every agent that was given it loses the
    copy (restarted if it runs); agents with a credential of their own keep theirs."""

    name: str | None = attrs.field(default=None, metadata=text(MAX_NAME_CHARS))


# -- approvals (docs/approvals.md) ------------------------------------------------------------


@command(
    "request_init_config",
    tool=manager_tool(
        "Create the config repo of a new agent `name` from the template, at "
        "/agents/<name>/config. Edit agent.toml there, commit, then request_spawn."
    ),
)
@value
class RequestInitConfig(Request[ConfigInitialised]):
    """Manager: seed the proposed and applied config repos of a new agent ``name``."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


@command(
    "request_spawn",
    tool=manager_tool(
        "Ask the operator to approve creating agent `name` from commit `commit_ref` (its hex "
        "sha, `git rev-parse HEAD` in /agents/<name>/config) of its config repo; "
        "`description` says what the agent is for."
    ),
)
@value
class RequestSpawn(Request[Submitted]):
    """Manager: ask the operator to approve spawning ``name`` from ``commit_ref``."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))
    commit_ref: str = attrs.field(metadata=text(64))
    description: str = attrs.field(metadata=text(4000))


@command(
    "request_apply_commit",
    tool=manager_tool(
        "Ask the operator to approve deploying commit `commit_ref` (its hex sha, never a "
        "branch name) of /agents/<agent>/config; `description` says what changes and why."
    ),
)
@value
class RequestApplyCommit(Request[Submitted]):
    """Manager: ask the operator to approve deploying ``commit_ref`` of ``agent``'s config."""

    agent: str = attrs.field(metadata=text(MAX_NAME_CHARS))
    commit_ref: str = attrs.field(metadata=text(64))
    description: str = attrs.field(metadata=text(4000))


@command("pending")
@value
class ListPending(Request[Approvals]):
    """Admin: the approvals waiting for the operator, oldest first (``all``: the newest
    ``limit`` in any status, newest first)."""

    all: bool = False
    limit: int = attrs.field(default=100, metadata=number(0, MAX_LIMIT))


@command("approve")
@value
class Approve(Request[ApprovalReply]):
    """Admin: approve approval ``id``; its deploy starts (docs/approvals.md)."""

    id: int = attrs.field(metadata=ID)


@command("deny")
@value
class Deny(Request[ApprovalReply]):
    """Admin: deny approval ``id``; ``note`` is the reason the manager is told."""

    id: int = attrs.field(metadata=ID)
    note: str = attrs.field(default="", metadata=text(4000))


@command("approval_diff")
@value
class ShowApproval(Request[ApprovalDetail]):
    """Admin: approval ``id`` with its unified diff and capability diff."""

    id: int = attrs.field(metadata=ID)


@command("config")
@value
class ShowConfig(Request[ConfigReply]):
    """Admin: agent ``name``'s deployed config and its applied repo's tag history."""

    name: str = attrs.field(metadata=text(MAX_NAME_CHARS))


# cmd -> request class, for readers that only need the tag table.
REQUESTS: dict[str, type[Request[Any]]] = {cmd: c.request for cmd, c in COMMANDS.items()}
