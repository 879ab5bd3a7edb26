"""Agent web ports: a pure hash of the name into a configured range, collisions caught early.

Each agent's harness serves its web page on a port of its own (agents share the host network by
default, so two cannot use the same one). The port is derived from the name alone, so it is
stable across restarts, rebuilds and daemon moves with nothing to store; the record keeps it
anyway so the dashboard can show it. Two names can hash to the same port: `check_spawn` refuses
the second one before anything is created, and `collisions` lists any that exist (a range that
was narrowed, records edited by hand) for `hyperhive list` and the dashboard.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING

from hyperhive.errors import ConfigError, Conflict

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["check_range", "check_spawn", "collisions", "web_port"]


def check_range(ports: tuple[int, int]) -> None:
    """Refuse a range that is empty or outside the unprivileged TCP ports."""
    first, last = ports
    if not 1024 <= first <= last <= 65535:
        raise ConfigError(f"web port range {first}-{last} must lie within 1024-65535, low to high")


def web_port(name: str, ports: tuple[int, int]) -> int:
    """The port of agent `name`: sha256 of the name, modulo the range size, plus its start."""
    first, last = ports
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return first + digest % (last - first + 1)


def collisions(ports_by_name: Mapping[str, int | None]) -> dict[int, list[str]]:
    """Every port claimed by more than one name, with the names sorted."""
    claims: dict[int, list[str]] = defaultdict(list)
    for name, port in ports_by_name.items():
        if port is not None:
            claims[port].append(name)
    return {port: sorted(names) for port, names in sorted(claims.items()) if len(names) > 1}


def check_spawn(name: str, ports: tuple[int, int], taken: Iterable[tuple[str, int | None]]) -> int:
    """The port `name` would get, unless another agent already holds it.

    Raises:
        Conflict: the port is taken; the text names the holder and what to do.
    """
    port = web_port(name, ports)
    for other, other_port in taken:
        if other != name and other_port == port:
            raise Conflict(
                f"agent {name!r} would get web port {port}, which {other!r} already uses; "
                "pick another name (or widen the web port range)"
            )
    return port
