"""The `hyperhive` command. Commands parse and validate, then `trio.run` one coroutine.

No logic lives here: serving is `hyperhive.core.daemon`, talking to it is `hyperhive.client`,
drawing is `hyperhive.tui`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import attrs
import trio
import typer
from rich.console import Console

from actors import SupervisorGaveUp
from hyperhive import __version__, wire
from hyperhive.agent.cli import agent_app
from hyperhive.client import open_client
from hyperhive.config import StatePaths, resolve_state_dir
from hyperhive.errors import HyperhiveError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["app", "main"]

app = typer.Typer(
    name="hyperhive",
    help="Run and watch a persistent swarm of Claude Code agents.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (docs/terminal.md)
    pretty_exceptions_enable=False,
    # Help text is shown as written: rich markup would eat every "[default: ...]".
    rich_markup_mode=None,
)
app.add_typer(agent_app, name="agent")  # in-container commands: hyperhive/agent/cli.py
_console = Console()
_errors = Console(stderr=True)


def _say(text: str) -> None:
    """One line for the operator, shown literally: it may hold names or text from agents."""
    from hyperhive.tui import literal

    _console.print(literal(text), highlight=False)


def _complain(label: str, text: str) -> None:
    """`label:` in bold red, then `text` literally (the daemon's sentence may quote agents)."""
    from rich.text import Text

    from hyperhive.tui import visible

    _errors.print(Text.assemble((label, "bold red"), " ", visible(text)), highlight=False)


StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="HYPERHIVE_STATE_DIR",
        help="State directory [default: ~/.local/state/hyperhive].",
        show_default=False,
    ),
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _run(fn: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run one coroutine; a HyperhiveError becomes its sentence on stderr and exit status 1."""
    try:
        return trio.run(functools.partial(fn, *args, **kwargs))
    except HyperhiveError as exc:
        _complain("error:", str(exc))
        raise typer.Exit(1) from None
    except SupervisorGaveUp as exc:
        _complain("hyperhive stopped:", str(exc))
        raise typer.Exit(1) from None


def _paths(state_dir: Path | None) -> StatePaths:
    return StatePaths(resolve_state_dir(state_dir))


@app.command()
def serve(
    state_dir: StateDirOption = None,
    backend: Annotated[
        str,
        typer.Option(
            envvar="HYPERHIVE_BACKEND",
            help="How agents run: bwrap, process, nixos or none [default: bwrap if "
            "bubblewrap works here, else process]. See docs/containers.md.",
            show_default=False,
        ),
    ] = "auto",
    agent_command: Annotated[
        str | None,
        typer.Option(
            envvar="HYPERHIVE_AGENT_COMMAND",
            help="The command each agent runs [default: this python -m hyperhive agent serve].",
            show_default=False,
        ),
    ] = None,
    manager: Annotated[
        bool, typer.Option(help="Create and start the manager agent if it is missing.")
    ] = True,
    operator_pronouns: Annotated[
        str,
        typer.Option(
            envvar="HYPERHIVE_OPERATOR_PRONOUNS",
            help="The operator's pronouns, as agents are told them (whoami, prompts).",
        ),
    ] = "they/them",
    nixos_flake: Annotated[
        str | None,
        typer.Option(
            envvar="HYPERHIVE_NIXOS_FLAKE",
            help="For --backend nixos: the meta flake with an agent-<name> output per agent "
            "[default: /var/lib/hyperhive/meta].",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            envvar="HYPERHIVE_LIMITS",
            help="Override a limit, as NAME=VALUE (repeatable; in the environment, separated "
            "by spaces), e.g. --limit max_body_bytes=65536. The limits and their defaults are "
            "in docs/limits.md.",
            show_default=False,
        ),
    ] = None,
    dashboard: Annotated[
        str,
        typer.Option(
            envvar="HYPERHIVE_DASHBOARD",
            help="Where the dashboard listens, HOST:PORT. Beyond loopback it needs an operator "
            "token (HYPERHIVE_DASHBOARD_TOKEN or --dashboard-token-file). See docs/web-ui.md.",
        ),
    ] = "127.0.0.1:7000",
    no_dashboard: Annotated[
        bool, typer.Option("--no-dashboard", help="Serve no dashboard.")
    ] = False,
    dashboard_token_file: Annotated[
        Path | None,
        typer.Option(help="A file holding the dashboard's operator token (never put it in argv)."),
    ] = None,
    secret_dir: Annotated[
        list[Path] | None,
        typer.Option(
            help="A directory agent.toml's `file:` secrets may point into (repeatable) "
            "[default: $CREDENTIALS_DIRECTORY, systemd's, if set]. See docs/config.md.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    crash_loop: Annotated[
        str,
        typer.Option(
            envvar="HYPERHIVE_CRASH_LOOP",
            help="CRASHES/SECONDS after a deploy that roll it back (docs/approvals.md).",
            metavar="N/S",
        ),
    ] = "3/600",
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Run the demo hive: agents driven by a scripted model, no credential needed "
            "[state dir default: ~/.local/state/hyperhive-demo].",
        ),
    ] = False,
) -> None:
    """Start the daemon in the foreground (stop it with Ctrl-C or SIGTERM)."""
    import os
    import shlex

    from hyperhive.containers.settings import ContainerSettings, resolve_backend
    from hyperhive.core.approvals import DeployPolicy
    from hyperhive.core.daemon import run_daemon
    from hyperhive.core.limits import Limits
    from hyperhive.tui import literal
    from hyperhive.web.launch import serve_children

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if demo and state_dir is None:
        state_dir = resolve_state_dir().with_name("hyperhive-demo")
    paths = _paths(state_dir)
    _errors.print(literal(f"hyperhive {__version__}: state in {paths.root}"), highlight=False)
    try:
        limits = Limits.parse(item for entry in limit or () for item in entry.split())
        policy = DeployPolicy.parse(crash_loop)
        resolved = resolve_backend(backend)
    except HyperhiveError as exc:
        _complain("error:", str(exc))
        raise typer.Exit(1) from None
    kind = resolved.kind
    for warning in resolved.warnings:
        _complain("WARNING:", warning)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    secret_dirs = tuple(secret_dir or ([Path(credentials)] if credentials else []))
    settings = ContainerSettings(
        backend=kind, ensure_manager=manager, secret_dirs=tuple(p.resolve() for p in secret_dirs)
    )
    if agent_command:
        settings = attrs.evolve(settings, agent_command=tuple(shlex.split(agent_command)))
    if nixos_flake:
        settings = attrs.evolve(settings, meta_flake=nixos_flake)
    try:
        settings, children = serve_children(
            settings,
            dashboard=None if no_dashboard else dashboard,
            token_file=dashboard_token_file,
            demo=demo,
            say=lambda text: _errors.print(literal(text), highlight=False),
            agents_share_network=resolved.shared_network,
            generated_token_file=paths.dashboard_token,
        )
    except HyperhiveError as exc:
        _complain("error:", str(exc))
        raise typer.Exit(1) from None
    _run(
        run_daemon,
        paths,
        containers=settings,
        operator_pronouns=operator_pronouns,
        limits=limits,
        extra_children=children,
        deploy_policy=policy,
    )


@app.command()
def status(
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show the live actor tree and each actor's statistics."""
    _quick("status", state_dir, as_json)


@app.command()
def send(
    name: Annotated[str, typer.Argument(help="Recipient agent (or `manager`).")],
    text: Annotated[str, typer.Argument(help="Message body; `-` reads it from stdin.")],
    state_dir: StateDirOption = None,
) -> None:
    """Send a message to an agent as the operator."""
    body = sys.stdin.read() if text == "-" else text
    sent = _run(_call, _paths(state_dir), wire.Send(to=name, body=body))
    _say(f"sent #{sent.id} to {name}")


@app.command()
def inbox(
    name: Annotated[
        str | None,
        typer.Argument(
            help="An agent: its pending and in-flight mail [default: the operator's].",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDirOption = None,
    limit: Annotated[int, typer.Option(min=0, help="How many messages at most.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show what agents sent to the operator, newest last; with NAME, the mail waiting for that
    agent (oldest first) and what its turn holds but has not acked yet."""
    from hyperhive.tui import agent_inbox_table, messages_table

    if name is not None:
        mail = _run(_call, _paths(state_dir), wire.ReadAgentInbox(name=name, limit=limit))
        if as_json:
            print(json.dumps(wire.to_json(mail), indent=2))
        else:
            _console.print(agent_inbox_table(mail))
        return
    reply = _run(_call, _paths(state_dir), wire.ReadInbox(limit=limit))
    if as_json:
        print(json.dumps(wire.to_json(reply), indent=2))
    else:
        _console.print(messages_table("operator inbox", reversed(reply.messages)))


@app.command()
def agents(
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """List the registered agents (the manager too)."""
    _quick("agents", state_dir, as_json)


def _quick(command: str, state_dir: Path | None, as_json: bool) -> None:
    """A command the quick path answers (`hyperhive.quick`); here when typer parsed it."""
    from hyperhive import quick

    socket_path = os.fspath(_paths(state_dir).admin_socket)
    try:
        quick.QUICK[command](socket_path, as_json)
    except quick.QuickError as exc:
        _complain("error:", str(exc))
        raise typer.Exit(1) from None


@app.command()
def register(
    name: Annotated[str, typer.Argument(help="1-11 lowercase letters, digits and dashes.")],
    state_dir: StateDirOption = None,
) -> None:
    """Register an agent by name and open its socket (no container yet)."""
    _run(_call, _paths(state_dir), wire.RegisterAgent(name=name))
    _say(f"registered {name}")


@app.command()
def unregister(
    name: Annotated[str, typer.Argument(help="A registered agent.")],
    state_dir: StateDirOption = None,
) -> None:
    """Forget an agent and close its socket (= destroy): its state is kept as a tombstone
    and its stored messages stay."""
    _run(_call, _paths(state_dir), wire.UnregisterAgent(name=name))
    _say(f"unregistered {name}")


def _lifecycle(request: wire.Request[wire.Container], state_dir: Path | None, done: str) -> None:
    reply = _run(_call, _paths(state_dir), request)
    view = reply.container
    _say(f"{done} {view.name}: {view.state}")


NameArgument = Annotated[str, typer.Argument(help="The agent (1-11 lowercase letters, digits, -).")]


@app.command()
def spawn(
    name: NameArgument,
    state_dir: StateDirOption = None,
    network: Annotated[bool, typer.Option(help="Let the agent reach the network.")] = True,
) -> None:
    """Create an agent (its directories, socket and container) and start it."""
    _lifecycle(wire.Spawn(name=name, network=network), state_dir, "spawned")


@app.command()
def start(name: NameArgument, state_dir: StateDirOption = None) -> None:
    """Start an agent's container."""
    _lifecycle(wire.StartAgent(name=name), state_dir, "started")


@app.command()
def stop(name: NameArgument, state_dir: StateDirOption = None) -> None:
    """Stop an agent (SIGTERM, then SIGKILL after the grace period)."""
    _lifecycle(wire.StopAgent(name=name), state_dir, "stopped")


@app.command()
def restart(name: NameArgument, state_dir: StateDirOption = None) -> None:
    """Stop an agent, then start it."""
    _lifecycle(wire.RestartAgent(name=name), state_dir, "restarted")


@app.command()
def pause(name: NameArgument, state_dir: StateDirOption = None) -> None:
    """Pause an agent: it takes no turns and its mail waits until it is resumed."""
    _lifecycle(wire.SetPaused(name=name, paused=True), state_dir, "paused")


@app.command()
def resume(name: NameArgument, state_dir: StateDirOption = None) -> None:
    """Resume a paused agent: the mail that waited is handed to it at once."""
    _lifecycle(wire.SetPaused(name=name, paused=False), state_dir, "resumed")


@app.command()
def kill(name: NameArgument, state_dir: StateDirOption = None) -> None:
    """Kill an agent at once (also ends a stop that is still waiting)."""
    _lifecycle(wire.KillAgent(name=name), state_dir, "killed")


@app.command()
def rebuild(name: NameArgument, state_dir: StateDirOption = None) -> None:
    """Re-apply an agent's container settings, restarting it if they need it."""
    _lifecycle(wire.RebuildAgent(name=name), state_dir, "rebuilt")


@app.command()
def destroy(
    name: NameArgument,
    state_dir: StateDirOption = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete its state too (also purges a tombstone).")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Needed to destroy the manager.")] = False,
) -> None:
    """Remove an agent's container and socket; its state stays as a tombstone unless --purge.

    Asks for confirmation on a terminal; without one, pass --yes.
    """
    if not yes:
        what = f"{name} and delete its state for good" if purge else name
        if not sys.stdin.isatty():
            _complain("error:", f"not destroying {what} without confirmation; pass --yes")
            raise typer.Exit(1)
        if not typer.confirm(f"Destroy {what}?", default=False):
            _complain("error:", "nothing was destroyed")
            raise typer.Exit(1)
    request = wire.Destroy(name=name, purge=purge, force=force)
    _run(_call, _paths(state_dir), request)
    kept = "and its state" if purge else "(its state is kept: `hyperhive list` shows it)"
    _say(f"destroyed {name} {kept}")


@app.command("list")
def list_containers(
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON replies.")] = False,
) -> None:
    """Show every agent, the manager too: its container's state, what it is doing and why
    (needs login, API retry 3 of 10, rate limited until T, paused, running a tool, ...), its
    mail (pending + in flight), its last turn, then flags; then tombstones."""
    from hyperhive.tui import containers_table, tombstones_table

    paths = _paths(state_dir)
    views = _run(_call, paths, wire.ListContainers())
    tombstones = _run(_call, paths, wire.ListTombstones())
    if as_json:
        print(json.dumps({**wire.to_json(views), **wire.to_json(tombstones)}, indent=2))
        return
    _console.print(containers_table(views.containers))
    if tombstones.tombstones:
        _console.print(tombstones_table(tombstones.tombstones))


@app.command()
def logs(
    name: NameArgument,
    state_dir: StateDirOption = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines.")] = 200,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="Write the bytes as they are, escape sequences included (for a file)."
        ),
    ] = False,
) -> None:
    """Print the last lines an agent's process wrote, control characters made visible."""
    from hyperhive.tui import visible

    reply = _run(_call, _paths(state_dir), wire.Logs(name=name, lines=lines))
    sys.stdout.write(reply.text if raw else visible(reply.text))


@app.command("dead-letters")
def dead_letters(
    state_dir: StateDirOption = None,
    recipient: Annotated[str | None, typer.Option(help="Only this recipient's.")] = None,
    replay: Annotated[int | None, typer.Option(help="Put this dead letter back.")] = None,
    drop: Annotated[int | None, typer.Option(help="Delete this dead letter.")] = None,
) -> None:
    """List dead-lettered messages, or replay or drop one."""
    from hyperhive.tui import dead_letters_table

    paths = _paths(state_dir)
    if replay is not None:
        _run(_call, paths, wire.ReplayDead(id=replay))
        _say(f"replayed #{replay}")
    elif drop is not None:
        _run(_call, paths, wire.DropDead(id=drop))
        _say(f"dropped #{drop}")
    else:
        reply = _run(_call, paths, wire.ListDeadLetters(recipient=recipient))
        _console.print(dead_letters_table(reply.letters))


@app.command()
def events(
    state_dir: StateDirOption = None,
    history: Annotated[int, typer.Option(help="Show this many past events first.")] = 20,
) -> None:
    """Follow the hive's event stream (Ctrl-C stops)."""
    with contextlib.suppress(KeyboardInterrupt):
        _run(_follow_events, _paths(state_dir), history)


async def _follow_events(paths: StatePaths, history: int) -> None:
    from hyperhive.tui import event_line

    async with open_client(paths.admin_socket) as feed, open_client(paths.admin_socket) as query:
        # Subscribe first, read history second, drop what history already showed: nothing is
        # lost between the two and nothing is printed twice.
        stream = await feed.subscribe()
        past = await query.call(wire.History(limit=history))
        for event in past.events:
            _console.print(event_line(event), highlight=False)
        async for event in stream:
            if event.seq > past.seq:
                _console.print(event_line(event), highlight=False)


@app.command()
def questions(
    state_dir: StateDirOption = None,
    answered: Annotated[
        bool, typer.Option("--answered", help="Show recently answered ones instead.")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show the questions agents asked the operator (answer with `hyperhive answer`)."""
    from hyperhive.tui import questions_table

    request = wire.ListQuestions(answered=answered, limit=limit)
    reply = _run(_call, _paths(state_dir), request)
    if as_json:
        print(json.dumps(wire.to_json(reply), indent=2))
    else:
        _console.print(questions_table(reply.questions, answered=answered))


@app.command()
def answer(
    id: Annotated[int, typer.Argument(help="The question's number, from `hyperhive questions`.")],
    text: Annotated[str, typer.Argument(help="The answer; `-` reads it from stdin.")],
    state_dir: StateDirOption = None,
) -> None:
    """Answer a question as the operator; the asking agent gets it in its inbox."""
    body = sys.stdin.read() if text == "-" else text
    reply = _run(_call, _paths(state_dir), wire.Answer(id=id, answer=body))
    _say(f"answered #{id} for {reply.question.asker}")


@app.command()
def reminders(
    state_dir: StateDirOption = None,
    owner: Annotated[str | None, typer.Option(help="Only this agent's.")] = None,
    delivered: Annotated[
        bool, typer.Option("--delivered", help="Include delivered ones (last 30 days).")
    ] = False,
    cancel: Annotated[int | None, typer.Option(help="Cancel (or dismiss) this reminder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show pending and failed reminders, or cancel one."""
    from hyperhive.tui import reminders_table

    paths = _paths(state_dir)
    if cancel is not None:
        _run(_call, paths, wire.CancelLooseEnd(kind="reminder", id=cancel))
        _say(f"cancelled reminder #{cancel}")
        return
    request = wire.ListReminders(owner=owner, delivered=delivered)
    reply = _run(_call, paths, request)
    if as_json:
        print(json.dumps(wire.to_json(reply), indent=2))
    else:
        _console.print(reminders_table(reply.reminders))


IdArgument = Annotated[int, typer.Argument(help="The approval's number, from `hyperhive pending`.")]


@app.command()
def pending(
    state_dir: StateDirOption = None,
    all_: Annotated[
        bool, typer.Option("--all", help="The newest approvals in any status, newest first.")
    ] = False,
    limit: Annotated[int, typer.Option(help="With --all: at most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show the config changes waiting for the operator (see one with `hyperhive diff ID`)."""
    from hyperhive.tui import approvals_table

    reply = _run(_call, _paths(state_dir), wire.ListPending(all=all_, limit=limit))
    if as_json:
        print(json.dumps(wire.to_json(reply), indent=2))
    elif not reply.approvals and not all_:
        _say("nothing waits for approval")
    else:
        _console.print(approvals_table(reply.approvals, title="approvals" if all_ else "pending"))


@app.command()
def approve(id: IdArgument, state_dir: StateDirOption = None) -> None:
    """Approve a config change: its deploy starts (build, rebuild, then deployed/)."""
    approval = _run(_call, _paths(state_dir), wire.Approve(id=id)).approval
    _say(
        f"approved #{approval.id} ({approval.kind} of {approval.agent}); it deploys now: "
        f"`hyperhive config {approval.agent}` shows how far it got"
    )


@app.command()
def deny(
    id: IdArgument,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (the manager is told; required).")
    ],
    state_dir: StateDirOption = None,
) -> None:
    """Deny a config change, with the reason the manager is told."""
    if not reason.strip():
        _complain("error:", "a denial needs a reason (--reason TEXT)")
        raise typer.Exit(1)
    approval = _run(_call, _paths(state_dir), wire.Deny(id=id, note=reason)).approval
    _say(f"denied #{approval.id} ({approval.kind} of {approval.agent})")


@app.command()
def diff(
    id: IdArgument,
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show an approval's capability diff and unified diff (control characters made visible)."""
    from hyperhive.tui import approval_detail

    reply = _run(_call, _paths(state_dir), wire.ShowApproval(id=id))
    if as_json:
        print(json.dumps(wire.to_json(reply), indent=2))
    else:
        _console.print(approval_detail(reply), highlight=False, soft_wrap=True)


@app.command()
def config(
    name: NameArgument,
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show an agent's deployed config (agent.toml at applied main) and its approval history."""
    from hyperhive.tui import config_view

    reply = _run(_call, _paths(state_dir), wire.ShowConfig(name=name))
    if as_json:
        print(json.dumps(wire.to_json(reply), indent=2))
    else:
        _console.print(config_view(reply), highlight=False, soft_wrap=True)


@app.command()
def top(
    state_dir: StateDirOption = None,
    refresh: Annotated[
        float, typer.Option(help="Seconds between log polls (rows reload every 5 of them).")
    ] = 1.0,
) -> None:
    """Watch the hive live, agents first: their rows, questions, approvals, the message flow;
    keys answer, approve or deny, send, and follow an agent's log (? shows them, q quits)."""
    from hyperhive.top import run_top

    keys = sys.stdin.fileno() if sys.stdin.isatty() else None
    with contextlib.suppress(KeyboardInterrupt):
        _run(run_top, _paths(state_dir), _console, refresh=refresh, keys=keys)


@app.command()
def doctor(
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    model: Annotated[
        str, typer.Option(help="The model the API check asks for (one token).")
    ] = "claude-haiku-4-5",
    api: Annotated[
        bool, typer.Option(help="Send one minimal request to Claude's API (ANTHROPIC_BASE_URL).")
    ] = True,
) -> None:
    """Check that this host can run a hive, and say what to fix (exit 1: something essential
    is missing). See docs/troubleshooting.md."""
    from hyperhive.doctor import Probes, exit_status, run_checks, to_json
    from hyperhive.tui import doctor_report

    probes = Probes.of_this_host(resolve_state_dir(state_dir), model=model, api=api)
    findings = run_checks(probes)
    if as_json:
        print(json.dumps(to_json(findings), indent=2))
    else:
        _console.print(doctor_report(findings), highlight=False, end="")
    raise typer.Exit(exit_status(findings))


@app.command()
def login(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Agents to log in with a credential of their own [default: store the hive's "
            "credential, for every agent without one].",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDirOption = None,
    kind: Annotated[
        str,
        typer.Option(
            help="What is entered: api-key; token (what `claude setup-token` printed); gateway "
            "(NAME=VALUE lines: ANTHROPIC_BASE_URL and what Bedrock, Vertex or a proxy needs); "
            "auto: NAME=VALUE lines are a gateway, sk-ant-oat... a token, else an API key.",
        ),
    ] = "auto",
) -> None:
    """Store a Claude credential in the daemon and log agents in with it at once.

    The credential is read from a hidden prompt on a terminal, else from stdin
    (`hyperhive login < gateway.env`); never from the command line. Without NAME it is the
    hive's: every agent without one of its own gets it now and at each start, new agents
    included. With NAMEs, those agents get it as their own. See docs/security.md.
    """
    from hyperhive.core.credentials import KINDS, variables_from_text

    if kind not in KINDS:
        _complain("error:", f"--kind must be one of {', '.join(KINDS)}")
        raise typer.Exit(2)
    try:
        variables = variables_from_text(_read_credential(kind), kind)
    except HyperhiveError as exc:
        _complain("error:", str(exc))
        raise typer.Exit(1) from None
    request = wire.Login(variables=tuple(variables), agents=tuple(names or ()))
    stored = _run(_call, _paths(state_dir), request)
    what = ", ".join(stored.variables)
    whose = "the hive's credential" if stored.hive else f"a credential for {', '.join(names or ())}"
    given = ", ".join(stored.agents) if stored.agents else "no agent yet"
    _say(f"stored {whose} ({what}); logged in now: {given}")


@app.command()
def logout(
    name: Annotated[
        str | None,
        typer.Argument(
            help="The agent to log out [default: forget the hive's credential, the one "
            "`hyperhive login` without NAME stored].",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDirOption = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Without NAME: do not ask for confirmation."),
    ] = False,
) -> None:
    """Undo a login: take the Claude credential back.

    With NAME: the agent gets no credential any more (not even the hive's) until you log it
    in by name, its credential files are removed, and it is restarted if it runs, so it shows
    `needs login`. Without NAME (asks first; --yes for scripts): the hive's credential is
    forgotten and every agent that was given it loses its copy, restarted if it runs; agents
    with a credential of their own keep it. See docs/security.md.
    """
    if name is None and not yes:
        if not sys.stdin.isatty():
            _complain(
                "error:",
                "not forgetting the hive's credential without confirmation; "
                "pass --yes (or name the agent to log out)",
            )
            raise typer.Exit(1)
        if not typer.confirm("Forget the hive's credential and log out every agent using it?"):
            _complain("error:", "nothing was removed")
            raise typer.Exit(1)
    done = _run(_call, _paths(state_dir), wire.Logout(name=name))
    if name is None:
        _say("forgot the hive's credential" if done.hive else "no hive credential was stored")
    for agent in done.agents:
        removed = ", ".join(agent.removed) or "no credential file"
        after = "restarted it" if agent.restarted else "it was not running"
        _say(f"logged {agent.name} out: removed {removed}; {after}")
    if name is None and not done.agents:
        _say("no agent had a copy of it")


def _read_credential(kind: str) -> str:
    """The credential as typed (hidden) on a terminal, or all of stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.read()
    import getpass

    if kind == "gateway":
        print("NAME=VALUE lines (hidden as you type); an empty line ends:", file=sys.stderr)
        lines = []
        while line := getpass.getpass("> "):
            lines.append(line)
        return "\n".join(lines)
    prompts = {"api-key": "API key", "token": "setup token"}
    first = getpass.getpass(f"{prompts.get(kind, 'API key, setup token or NAME=VALUE')}: ")
    if kind == "auto" and "=" in first:  # a gateway: more lines may follow
        lines = [first]
        while line := getpass.getpass("> "):
            lines.append(line)
        return "\n".join(lines)
    return first


@app.command()
def version() -> None:
    """Print the hyperhive version."""
    print(__version__)


async def _call(paths: StatePaths, request: wire.Request[_T]) -> _T:
    async with open_client(paths.admin_socket) as client:
        return await client.call(request)


def main() -> None:
    """The full CLI (the console script enters at `hyperhive.quick.main`)."""
    app()
