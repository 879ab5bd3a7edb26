"""`hyperhive agent ...`: the commands that run inside an agent's container.

Each parses and validates, then runs one coroutine; the work is in `hyperhive.agent.serve`,
`hyperhive.agent.mcp_server` and `hyperhive.agent.login`.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from hyperhive.agent.harness import HarnessOptions
from hyperhive.agent.settings import (
    ENV_AGENT,
    ENV_CONFIG,
    ENV_ROLE,
    ENV_SOCKET,
    ENV_STATE,
    AgentSettings,
)
from hyperhive.errors import HyperhiveError

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


@agent_app.command()
def serve(
    name: Name = None,
    role: Role = None,
    socket: Socket = None,
    state_dir: State = None,
    config_dir: Config = None,
    runtime: Annotated[
        str, typer.Option(envvar="HYPERHIVE_RUNTIME", help="claude, or command.")
    ] = "claude",
    command: Annotated[
        str,
        typer.Option(
            envvar="HYPERHIVE_RUNTIME_COMMAND",
            help="For --runtime command: the command line that reads the wake prompt on stdin.",
        ),
    ] = "",
    recv_wait: Annotated[float, typer.Option(envvar="HYPERHIVE_RECV_WAIT")] = 30.0,
    rate_limit_backoff: Annotated[
        float,
        typer.Option(envvar="HYPERHIVE_RATE_LIMIT_BACKOFF", help="Seconds, when no reset time."),
    ] = 300.0,
    failure_backoff: Annotated[float, typer.Option(envvar="HYPERHIVE_FAILURE_BACKOFF")] = 10.0,
    claude_mode: Annotated[
        str,
        typer.Option(
            envvar="HYPERHIVE_CLAUDE_MODE",
            help="warm: one claude process serves many turns; cold: one process per turn.",
        ),
    ] = "warm",
    claude_idle_release: Annotated[
        float,
        typer.Option(
            envvar="HYPERHIVE_CLAUDE_IDLE_RELEASE",
            help="Seconds idle before the warm process is let go (0: never).",
        ),
    ] = 600.0,
    claude_max_turns: Annotated[
        int,
        typer.Option(
            envvar="HYPERHIVE_CLAUDE_MAX_TURNS",
            help="Turns before the warm process is replaced (0: no limit).",
        ),
    ] = 100,
    claude_max_age: Annotated[
        float,
        typer.Option(
            envvar="HYPERHIVE_CLAUDE_MAX_AGE",
            help="Seconds before the warm process is replaced (0: no limit).",
        ),
    ] = 4 * 3600.0,
    claude_answer_timeout: Annotated[
        float,
        typer.Option(
            envvar="HYPERHIVE_CLAUDE_ANSWER_TIMEOUT",
            help="Seconds claude may stay silent after a message before it counts as wedged.",
        ),
    ] = 60.0,
    claude_stall_timeout: Annotated[
        float,
        typer.Option(
            envvar="HYPERHIVE_CLAUDE_STALL_TIMEOUT",
            help="Seconds without output inside a turn before claude counts as wedged.",
        ),
    ] = 900.0,
) -> None:
    """Run the agent's turn loop in the foreground (stop with SIGTERM or Ctrl-C)."""
    import trio

    from hyperhive.agent.claude import ClaudeOptions, Limits
    from hyperhive.agent.serve import serve_agent

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings(
        name=name, role=role, socket=socket, state_dir=state_dir, config_dir=config_dir
    )
    options = HarnessOptions(
        recv_wait=recv_wait,
        rate_limit_backoff=rate_limit_backoff,
        failure_backoff=failure_backoff,
    )
    if claude_mode not in ("warm", "cold"):
        raise _fail(HyperhiveError(f"--claude-mode must be warm or cold, not {claude_mode!r}"))
    claude_options = ClaudeOptions(
        warm=claude_mode == "warm",
        idle_release=max(0.0, claude_idle_release),
        max_turns=max(0, claude_max_turns),
        max_age=max(0.0, claude_max_age),
        limits=Limits(answer_timeout=claude_answer_timeout, stall_timeout=claude_stall_timeout),
    )
    try:
        trio.run(
            lambda: serve_agent(
                settings,
                runtime=runtime,
                command=shlex.split(command),
                options=options,
                claude_options=claude_options,
            )
        )
    except HyperhiveError as exc:
        raise _fail(exc) from None


@agent_app.command()
def mcp(
    socket: Socket = None,
    role: Role = None,
) -> None:
    """Serve the agent's tools as an MCP server on stdin/stdout (Claude starts this)."""
    from hyperhive.agent.mcp_server import serve_stdio

    if socket is None:
        raise _fail(HyperhiveError(f"agent mcp needs --socket / {ENV_SOCKET}"))
    if (role or "agent") not in ("agent", "manager"):
        raise _fail(HyperhiveError(f"role must be agent or manager, not {role!r}"))
    serve_stdio(socket.absolute(), manager=role == "manager")


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
