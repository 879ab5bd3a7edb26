"""The `hyperhive` command. Commands parse and validate, then `trio.run` one coroutine.

No logic lives here: serving is `hyperhive.core.daemon`, talking to it is `hyperhive.client`,
drawing is `hyperhive.tui`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import trio
import typer
from rich.console import Console

from actors import SupervisorGaveUp
from hyperhive import __version__, wire
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
    add_completion=False,
    pretty_exceptions_enable=False,
)
_console = Console()
_errors = Console(stderr=True)

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
        _errors.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except SupervisorGaveUp as exc:
        _errors.print(f"[bold red]hyperhive stopped:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _paths(state_dir: Path | None) -> StatePaths:
    return StatePaths(resolve_state_dir(state_dir))


@app.command()
def serve(state_dir: StateDirOption = None) -> None:
    """Start the daemon in the foreground (stop it with Ctrl-C or SIGTERM)."""
    from hyperhive.core.daemon import run_daemon

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    paths = _paths(state_dir)
    _errors.print(f"hyperhive {__version__}: state in {paths.root}", highlight=False)
    _run(run_daemon, paths)


@app.command()
def status(
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show the live actor tree and each actor's statistics."""
    from hyperhive.tui import status_table

    reply = _run(_call, _paths(state_dir), wire.Status(), wire.StatusReply)
    if as_json:
        print(json.dumps(wire.to_json(reply), indent=2))
    else:
        _console.print(status_table(reply))


@app.command()
def send(
    name: Annotated[str, typer.Argument(help="Recipient agent (or `manager`).")],
    text: Annotated[str, typer.Argument(help="Message body; `-` reads it from stdin.")],
    state_dir: StateDirOption = None,
) -> None:
    """Send a message to an agent as the operator."""
    body = sys.stdin.read() if text == "-" else text
    sent = _run(_call, _paths(state_dir), wire.Send(to=name, body=body), wire.Sent)
    _console.print(f"sent #{sent.id} to {name}", highlight=False)


@app.command()
def inbox(
    state_dir: StateDirOption = None,
    limit: Annotated[int, typer.Option(help="How many of the newest messages.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")] = False,
) -> None:
    """Show what agents sent to the operator, newest last."""
    from hyperhive.tui import messages_table

    reply = _run(_call, _paths(state_dir), wire.Inbox(limit=limit), wire.InboxReply)
    if as_json:
        print(json.dumps(wire.to_json(reply), indent=2))
    else:
        _console.print(messages_table("operator inbox", reversed(reply.messages)))


@app.command()
def agents(state_dir: StateDirOption = None) -> None:
    """List the registered agents."""
    reply = _run(_call, _paths(state_dir), wire.ListAgents(), wire.Agents)
    for name in reply.agents:
        print(name)


@app.command()
def register(
    name: Annotated[str, typer.Argument(help="1-11 lowercase letters, digits and dashes.")],
    state_dir: StateDirOption = None,
) -> None:
    """Register an agent by name and open its socket (no container yet)."""
    _run(_call, _paths(state_dir), wire.RegisterAgent(name=name), wire.Agents)
    _console.print(f"registered {name}", highlight=False)


@app.command()
def unregister(
    name: Annotated[str, typer.Argument(help="A registered agent.")],
    state_dir: StateDirOption = None,
) -> None:
    """Forget an agent and close its socket; its stored messages stay."""
    _run(_call, _paths(state_dir), wire.UnregisterAgent(name=name), wire.Agents)
    _console.print(f"unregistered {name}", highlight=False)


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
        _run(_call, paths, wire.ReplayDead(id=replay), wire.Sent)
        _console.print(f"replayed #{replay}", highlight=False)
    elif drop is not None:
        _run(_call, paths, wire.DropDead(id=drop), wire.Empty)
        _console.print(f"dropped #{drop}", highlight=False)
    else:
        reply = _run(_call, paths, wire.ListDeadLetters(recipient=recipient), wire.DeadLetters)
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
        past = await query.call(wire.History(limit=history), wire.HistoryReply)
        for event in past.events:
            _console.print(event_line(event), highlight=False)
        async for event in stream:
            if event.seq > past.seq:
                _console.print(event_line(event), highlight=False)


@app.command()
def version() -> None:
    """Print the hyperhive version."""
    print(__version__)


async def _call(paths: StatePaths, request: wire.Request, reply: type[_T]) -> _T:
    async with open_client(paths.admin_socket) as client:
        return await client.call(request, reply)


def main() -> None:
    """Console-script entry point."""
    app()
