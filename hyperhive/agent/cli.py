"""`hyperhive agent ...`: the commands that run inside an agent's container.

Each parses and validates, then runs one coroutine; the work is in `hyperhive.agent.serve`,
`hyperhive.agent.mcp_server` and `hyperhive.agent.login`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hyperhive.agent.settings import AgentSettings
from hyperhive.errors import HyperhiveError
from hyperhive.wire.harness import ENV_AGENT, ENV_CONFIG, ENV_ROLE, ENV_SOCKET, ENV_STATE

__all__ = ["agent_app"]

agent_app = typer.Typer(
    name="agent",
    help="Run inside an agent's container: the turn loop, its MCP tools, its login.",
    no_args_is_help=True,
)

Name = Annotated[str | None, typer.Option("--name", envvar=ENV_AGENT, help="The agent's name.")]
Role = Annotated[
    str | None, typer.Option("--role", envvar=ENV_ROLE, help="agent or manager [default: agent].")
]
Socket = Annotated[
    Path | None, typer.Option("--socket", envvar=ENV_SOCKET, help="The agent's hive.sock.")
]
State = Annotated[
    Path | None, typer.Option("--state-dir", envvar=ENV_STATE, help="The agent's state dir.")
]
Config = Annotated[
    Path | None, typer.Option("--config-dir", envvar=ENV_CONFIG, help="Read-only config dir.")
]


def _fail(exc: HyperhiveError) -> typer.Exit:
    print(f"error: {exc}", file=sys.stderr)
    return typer.Exit(1)


def _settings(**kwargs: object) -> AgentSettings:
    try:
        return AgentSettings.resolve(**kwargs)  # type: ignore[arg-type]
    except HyperhiveError as exc:
        raise _fail(exc) from None


@agent_app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def serve(ctx: typer.Context) -> None:
    """Run the agent's turn loop in the foreground (stop with SIGTERM or Ctrl-C).

    Options (see `hyperhive agent serve --help`) are parsed by hyperhive.agent.serve_cli,
    which `python -m hyperhive agent serve` reaches without this framework.
    """
    from hyperhive.agent.serve_cli import main

    raise typer.Exit(main(ctx.args))


@agent_app.command()
def mcp(
    connect: Annotated[
        Path, typer.Option("--connect", help="The harness's MCP socket (it names it itself).")
    ],
) -> None:
    """Relay the agent's tools between stdin/stdout and its harness (Claude starts this)."""
    from hyperhive.agent.mcp_relay import main

    raise typer.Exit(main(["--connect", str(connect)]))


@agent_app.command()
def login(
    state_dir: State = None,
    kind: Annotated[
        str,
        typer.Option("--kind", help="token (what `claude setup-token` printed) or api-key."),
    ] = "token",
) -> None:
    """Store credentials for the agent's turns; the value is read from stdin, never argv."""
    from hyperhive.agent import login as login_mod
    from hyperhive.agent.settings import AgentPaths

    if state_dir is None:
        raise _fail(HyperhiveError(f"agent login needs --state-dir / {ENV_STATE}"))
    text = sys.stdin.read()
    try:
        if kind == "token":
            login_mod.save_credentials(
                AgentPaths(state_dir), "oauth_token", login_mod.parse_setup_token(text)
            )
        elif kind == "api-key":
            login_mod.save_credentials(AgentPaths(state_dir), "api_key", text)
        else:
            raise HyperhiveError(f"--kind must be token or api-key, not {kind!r}")
    except HyperhiveError as exc:
        raise _fail(exc) from None
    print("credentials stored; the harness uses them from its next turn", file=sys.stderr)
