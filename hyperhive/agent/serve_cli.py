"""The command line of `hyperhive agent serve`, declared once and parsed without a framework.

Every container start runs it (``python -m hyperhive agent serve``), so it stays off typer,
whose import pulls in pydantic and rich (150 ms here, a third of the harness's start-up):
`OPTIONS` is the table, `parse` reads argv with the environment as the fallback for each
option, and `main` runs the harness. The typer command in `agent/cli.py` hands its arguments
here, so ``hyperhive agent serve`` behaves the same by either road.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from hyperhive.agent.claude import ClaudeOptions
    from hyperhive.agent.harness import HarnessOptions
    from hyperhive.agent.settings import AgentSettings

__all__ = ["OPTIONS", "Option", "ServeConfig", "main", "parse"]


class Option(NamedTuple):
    flag: str
    env: str
    kind: Callable[[str], Any]
    default: Any
    help: str


OPTIONS: Final[tuple[Option, ...]] = (
    Option("--name", "HYPERHIVE_AGENT", str, None, "The agent's name."),
    Option("--role", "HYPERHIVE_ROLE", str, None, "agent or manager [default: agent]."),
    Option("--socket", "HYPERHIVE_SOCKET", str, None, "The agent's hive.sock."),
    Option("--state-dir", "HYPERHIVE_AGENT_STATE", str, None, "The agent's state dir."),
    Option("--config-dir", "HYPERHIVE_CONFIG_DIR", str, None, "Read-only config dir."),
    Option("--runtime", "HYPERHIVE_RUNTIME", str, "claude", "claude, or command."),
    Option(
        "--command",
        "HYPERHIVE_RUNTIME_COMMAND",
        str,
        "",
        "For --runtime command: the command line that reads the wake prompt on stdin.",
    ),
    Option("--recv-wait", "HYPERHIVE_RECV_WAIT", float, 30.0, "Seconds of one long-poll."),
    Option(
        "--rate-limit-backoff",
        "HYPERHIVE_RATE_LIMIT_BACKOFF",
        float,
        300.0,
        "Seconds, when no reset time.",
    ),
    Option("--failure-backoff", "HYPERHIVE_FAILURE_BACKOFF", float, 10.0, "Seconds, doubled."),
    Option(
        "--claude-mode",
        "HYPERHIVE_CLAUDE_MODE",
        str,
        "warm",
        "warm: one claude process serves many turns; cold: one process per turn.",
    ),
    Option(
        "--claude-idle-release",
        "HYPERHIVE_CLAUDE_IDLE_RELEASE",
        float,
        600.0,
        "Seconds idle before the warm process is let go (0: never).",
    ),
    Option(
        "--claude-max-turns",
        "HYPERHIVE_CLAUDE_MAX_TURNS",
        int,
        100,
        "Turns before the warm process is replaced (0: no limit).",
    ),
    Option(
        "--claude-max-age",
        "HYPERHIVE_CLAUDE_MAX_AGE",
        float,
        4 * 3600.0,
        "Seconds before the warm process is replaced (0: no limit).",
    ),
    Option(
        "--claude-answer-timeout",
        "HYPERHIVE_CLAUDE_ANSWER_TIMEOUT",
        float,
        60.0,
        "Seconds claude may stay silent after a message before it counts as wedged.",
    ),
    Option(
        "--claude-stall-timeout",
        "HYPERHIVE_CLAUDE_STALL_TIMEOUT",
        float,
        900.0,
        "Seconds without output inside a turn before claude counts as wedged.",
    ),
)


class ServeConfig(NamedTuple):
    settings: AgentSettings
    runtime: str
    command: list[str]
    options: HarnessOptions
    claude_options: ClaudeOptions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2: like every other command
        self.exit(2, f"error: {message}\n")


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hyperhive agent serve",
        description="Run the agent's turn loop in the foreground (stop with SIGTERM or Ctrl-C).",
    )
    for option in OPTIONS:
        raw = env.get(option.env)
        try:
            default = option.kind(raw) if raw else option.default
        except ValueError:
            parser.error(f"{option.env}={raw!r} is not a valid {option.kind.__name__}")
        shown = "" if option.default is None else f"; default: {option.default!r}"
        parser.add_argument(
            option.flag,
            type=option.kind,
            default=default,
            help=f"{option.help} [env: {option.env}{shown}]",
        )
    return parser


def parse(argv: Sequence[str], env: Mapping[str, str]) -> ServeConfig:
    """The harness's configuration from `argv`, each option falling back to `env`.

    Raises:
        SystemExit: bad arguments (the message is on stderr), or --help.
        hyperhive.errors.ConfigError: required settings missing or unusable.
    """
    args = _parser(env).parse_args(list(argv))
    from hyperhive.agent.claude import ClaudeOptions, Limits
    from hyperhive.agent.harness import HarnessOptions
    from hyperhive.agent.settings import AgentSettings
    from hyperhive.errors import ConfigError

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    settings = AgentSettings.resolve(
        name=args.name,
        role=args.role,
        socket=path(args.socket),
        state_dir=path(args.state_dir),
        config_dir=path(args.config_dir),
    )
    if args.claude_mode not in ("warm", "cold"):
        raise ConfigError(f"--claude-mode must be warm or cold, not {args.claude_mode!r}")
    harness = HarnessOptions(
        recv_wait=args.recv_wait,
        rate_limit_backoff=args.rate_limit_backoff,
        failure_backoff=args.failure_backoff,
    )
    claude = ClaudeOptions(
        warm=args.claude_mode == "warm",
        idle_release=max(0.0, args.claude_idle_release),
        max_turns=max(0, args.claude_max_turns),
        max_age=max(0.0, args.claude_max_age),
        limits=Limits(
            answer_timeout=args.claude_answer_timeout, stall_timeout=args.claude_stall_timeout
        ),
    )
    return ServeConfig(settings, args.runtime, shlex.split(args.command), harness, claude)


def main(argv: Sequence[str]) -> int:
    """``hyperhive agent serve [OPTIONS]``: run the harness until SIGTERM / SIGINT."""
    from hyperhive.errors import HyperhiveError

    try:
        config = parse(argv, os.environ)
    except HyperhiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import trio

    from hyperhive.agent.serve import serve_agent

    try:
        trio.run(
            lambda: serve_agent(
                config.settings,
                runtime=config.runtime,
                command=config.command,
                options=config.options,
                claude_options=config.claude_options,
            )
        )
    except HyperhiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
