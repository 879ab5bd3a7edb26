"""What `hyperhive serve` adds to the daemon's tree: the dashboard and, with `--demo`, the demo.

Kept out of the CLI so that `serve` only parses: this turns its options into container
settings and child factories for `run_daemon(extra_children=...)`.
"""

from __future__ import annotations

import os
import secrets
import stat
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

__all__ = ["ENV_TOKEN", "generated_token", "read_token", "serve_children"]

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


def generated_token(path: Path) -> str:
    """The operator token kept in `path` (0600, in the 0700 state dir), made on first use.

    Never follows a link there; a file that is not a regular file of ours is refused.

    Raises:
        ConfigError: it cannot be read or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        token = secrets.token_urlsafe(24)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(token + "\n")
        except OSError as exc:
            raise ConfigError(f"cannot write the dashboard token to {path}: {exc}") from exc
        return token
    except OSError as exc:
        raise ConfigError(f"cannot read the dashboard token file {path}: {exc}") from exc
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise ConfigError(f"{path} is not a file of this user's; remove it")
        text = source.read(_MAX_TOKEN).decode(errors="replace").strip()
    if len(text) < 16:
        raise ConfigError(f"the dashboard token in {path} is shorter than 16 characters")
    return text


def serve_children(
    settings: ContainerSettings,
    *,
    dashboard: str | None,
    token_file: Path | None,
    demo: bool,
    say: Callable[[str], None],
    agents_share_network: bool = False,
    generated_token_file: Path | None = None,
) -> tuple[ContainerSettings, list[Callable[[Handles], ChildSpec]]]:
    """The container settings and extra children `serve` runs with.

    `agents_share_network`: network-on agents join the host's network namespace (the bwrap
    wall's fallback), so a loopback dashboard is in their reach too. Without a token of the
    operator's, it then gets one kept in `generated_token_file`, and `say` tells where.

    Raises:
        ConfigError: a bad `--dashboard`, or a non-loopback one without a token.
    """
    children: list[Callable[[Handles], ChildSpec]] = []
    if dashboard is not None:
        bind = parse_bind(dashboard)
        token = read_token(token_file)
        note = ""
        if token is None and agents_share_network and generated_token_file is not None:
            token = generated_token(generated_token_file)
            note = (
                f" (agents share this host's network here, so it asks for the operator "
                f"token in {generated_token_file}; docs/security.md)"
            )
        children.append(
            dashboard_child(bind, token=token, on_bound=lambda d: say(f"dashboard: {d.url}{note}"))
        )
    if demo:
        from hyperhive.testing.demo import demo_agent_command, demo_child

        settings = attrs.evolve(settings, agent_command=demo_agent_command(), ensure_manager=True)
        children.append(demo_child)
        say("demo hive: agents run the real harness and claude against a scripted model")
    return settings, children
