"""What `hyperhive serve` adds to the daemon's tree: the dashboard and, with `--demo`, the demo.

Kept out of the CLI so that `serve` only parses: this turns its options into container
settings and child factories for `run_daemon(extra_children=...)`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

import attrs

from hyperhive.errors import ConfigError
from hyperhive.web import dashboard_child, parse_bind

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from actors import ChildSpec
    from hyperhive.containers.settings import ContainerSettings
    from hyperhive.core.handles import Handles

__all__ = ["ENV_TOKEN", "read_token", "serve_children"]

ENV_TOKEN: Final = "HYPERHIVE_DASHBOARD_TOKEN"
_MAX_TOKEN: Final = 4096


def read_token(token_file: Path | None) -> str | None:
    """The operator token: from `token_file` if given, else `HYPERHIVE_DASHBOARD_TOKEN`.

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    if token_file is None:
        return os.environ.get(ENV_TOKEN) or None
    try:
        text = token_file.read_text()[:_MAX_TOKEN].strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the dashboard token file {token_file}: {exc}") from exc
    if not text:
        raise ConfigError(f"the dashboard token file {token_file} is empty")
    return text


def serve_children(
    settings: ContainerSettings,
    *,
    dashboard: str | None,
    token_file: Path | None,
    demo: bool,
    say: Callable[[str], None],
) -> tuple[ContainerSettings, list[Callable[[Handles], ChildSpec]]]:
    """The container settings and extra children `serve` runs with.

    Raises:
        ConfigError: a bad `--dashboard`, or a non-loopback one without a token.
    """
    children: list[Callable[[Handles], ChildSpec]] = []
    if dashboard is not None:
        bind = parse_bind(dashboard)
        token = read_token(token_file)
        children.append(
            dashboard_child(bind, token=token, on_bound=lambda d: say(f"dashboard: {d.url}"))
        )
    if demo:
        from hyperhive.testing.demo import demo_agent_command, demo_child

        settings = attrs.evolve(settings, agent_command=demo_agent_command(), ensure_manager=True)
        children.append(demo_child)
        say("demo hive: agents run the real harness and claude against a scripted model")
    return settings, children
