"""Which agents exist: names, validation, and their directories under the state root.

An agent is registered when `agents/<name>/agent.json` exists. The directory is the agent's
home on the host (its socket directory `run/` lives there, and later its state and config), so
the registry survives a daemon restart with no database of its own.

Names are lowercase letters, digits and dashes, start with a letter, and are at most 11
characters (nixos-container's limit), which also means no name can reach outside the state
root. `operator` and `manager` are reserved: they are the two identities that are not agents.
"""

from __future__ import annotations

import json
import re
import shutil
from typing import TYPE_CHECKING, Final

from hyperhive.errors import InvalidName, UnknownAgent

if TYPE_CHECKING:
    from hyperhive.config import StatePaths

__all__ = ["MANAGER", "RESERVED", "AgentRegistry", "validate_name"]

MANAGER: Final = "manager"
RESERVED: Final = frozenset({"operator", MANAGER, "root", "hive"})
_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,10}")
_MARKER: Final = "agent.json"


def validate_name(name: str) -> str:
    """Return `name` if it is a valid agent name, else raise `InvalidName` saying why."""
    if not _NAME.fullmatch(name) or name.endswith("-"):
        raise InvalidName(
            f"invalid agent name {name!r}: use 1-11 lowercase letters, digits and dashes, "
            "starting with a letter and not ending with a dash"
        )
    if name in RESERVED:
        raise InvalidName(f"{name!r} is reserved; pick another agent name")
    return name


class AgentRegistry:
    """The registered agents, loaded from disk once and kept in memory.

    Only the daemon's own task mutates it (from the admin surface), so it needs no lock.
    """

    def __init__(self, paths: StatePaths) -> None:
        self._paths = paths
        self._names = {
            entry.parent.name
            for entry in paths.agents_dir.glob(f"*/{_MARKER}")
            if _NAME.fullmatch(entry.parent.name) and entry.parent.name not in RESERVED
        }

    def names(self) -> list[str]:
        """Registered agent names, sorted."""
        return sorted(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def is_recipient(self, name: str) -> bool:
        """Whether a message to `name` has somewhere to go (an agent, the manager, the operator)."""
        return name in self._names or name in {"operator", MANAGER}

    def register(self, name: str) -> bool:
        """Create the agent's directory; returns False if it was already registered."""
        validate_name(name)
        if name in self._names:
            return False
        home = self._paths.agent_dir(name)
        self._paths.agent_socket_dir(name).mkdir(parents=True, exist_ok=True, mode=0o700)
        (home / _MARKER).write_text(json.dumps({"name": name}) + "\n")
        self._names.add(name)
        return True

    def unregister(self, name: str) -> None:
        """Forget the agent and remove its directory; its messages stay in the broker."""
        if name not in self._names:
            raise UnknownAgent(f"unknown agent {name!r}")
        self._names.discard(name)
        shutil.rmtree(self._paths.agent_dir(name), ignore_errors=True)
