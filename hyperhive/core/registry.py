"""Which agents exist: names, validation, and their directories under the state root.

An agent is registered when `agents/<name>/agent.json` exists. The directory is the agent's
home on the host (its socket directory `run/`, its `state/` and `config/`), so the registry
survives a daemon restart with no database of its own. `agent.json` is the agent's record
(`AgentRecord`: role, network on/off, wanted state, the deploy it runs); older files
holding only the name read with the defaults.

The manager's record lives at `agents/manager/agent.json` too, but the manager is not an agent
name (`names()` never lists it; its socket is `manager/hive.sock`). A destroyed agent leaves a
tombstone: its directory without `agent.json` and `run/`, with `tombstone.json` beside the kept
`state/` and `config/`, until it is purged.

Names are lowercase letters, digits and dashes, start with a letter, and are at most 11
characters (nixos-container's limit), which also means no name can reach outside the state
root. `operator` and `manager` are reserved: they are the two identities that are not agents.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from hyperhive import wire
from hyperhive.errors import Conflict, InvalidName, UnknownAgent

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.config import StatePaths

__all__ = [
    "MANAGER",
    "RESERVED",
    "AgentRecord",
    "AgentRegistry",
    "remove_tree",
    "validate_name",
]

MANAGER: Final = "manager"
RESERVED: Final = frozenset({"operator", MANAGER, "root", "hive"})
_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,10}")
_MARKER: Final = "agent.json"
_TOMBSTONE: Final = "tombstone.json"


@attrs.frozen
class AgentRecord:
    """What the daemon remembers about one agent between runs (its `agent.json`).

    ``paused``: the operator paused it (it takes no turns, its mail waits) until resumed.
    """

    name: str
    role: Literal["agent", "manager"] = "agent"
    network: bool = True
    wanted: Literal["running", "stopped"] = "running"
    paused: bool = False
    # The approval whose deploy (agents/<name>/deploys/<id>/) the container runs; None: its
    # config is agents/<name>/config, as the operator left it (docs/approvals.md).
    deploy: int | None = None
    # Who asked for it: the manager for an agent spawned from its approved request_spawn;
    # None for the operator's own spawns and records older than this field.
    parent: str | None = None

    @classmethod
    def from_json(cls, name: str, data: Any) -> AgentRecord:
        """Tolerant of older and partial files: whatever is missing or malformed is defaulted."""
        data = data if isinstance(data, dict) else {}
        role: Literal["agent", "manager"] = "manager" if data.get("role") == "manager" else "agent"
        wanted: Literal["running", "stopped"] = (
            "stopped" if data.get("wanted") == "stopped" else "running"
        )
        # Older records carry a hashed "web_port"; nothing needs it any more.
        deploy = data.get("deploy")
        parent = data.get("parent")
        return cls(
            name=name,
            role=role,
            network=data.get("network") is not False,
            wanted=wanted,
            paused=data.get("paused") is True,
            deploy=deploy if isinstance(deploy, int) and not isinstance(deploy, bool) else None,
            parent=MANAGER if parent == MANAGER else None,
        )


def _write_json(path: Path, data: object) -> None:
    """Replace `path` atomically, so a crash never leaves half a record."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(scratch, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


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
    """The registered agents and their records, loaded from disk once and kept in memory.

    Plain blocking code: the agents actor (`hyperhive.core.agents`) owns the one registry and
    calls it through its `Offload`, one call at a time, so it needs no lock. Records are read
    from disk when the registry is made and written through on every change; nothing re-reads
    an `agent.json` afterwards.
    """

    def __init__(self, paths: StatePaths) -> None:
        self._paths = paths
        self._names = {
            entry.parent.name
            for entry in paths.agents_dir.glob(f"*/{_MARKER}")
            if _NAME.fullmatch(entry.parent.name) and entry.parent.name not in RESERVED
        }
        self._records: dict[str, AgentRecord] = {}
        # A destroyed manager takes no mail, like any destroyed agent, until it has a record
        # again. Cached: `is_recipient` runs for every message.
        manager = paths.agent_dir(MANAGER)
        self._manager_retired = (manager / _TOMBSTONE).exists() and not (manager / _MARKER).exists()
        self._manager_has_record = (manager / _MARKER).exists()
        for name in [*self._names, *([MANAGER] if self._manager_has_record else [])]:
            data = _read_json(paths.agent_dir(name) / _MARKER)
            record = AgentRecord.from_json(name, data)
            self._records[name] = (
                attrs.evolve(record, role="manager") if name == MANAGER else record
            )

    @property
    def manager_retired(self) -> bool:
        """Whether the manager was destroyed (and takes no mail until it has a record again)."""
        return self._manager_retired

    def names(self) -> list[str]:
        """Registered agent names, sorted."""
        return sorted(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def is_recipient(self, name: str) -> bool:
        """Whether a message to `name` has somewhere to go (an agent, the manager unless it was
        destroyed, the operator)."""
        if name == MANAGER:
            return not self._manager_retired
        return name in self._names or name == "operator"

    def register(self, name: str, record: AgentRecord | None = None) -> bool:
        """Create the agent's directory and record; returns False if it was already registered.

        Registering over a tombstone revives it: the kept state is the agent's again.
        """
        validate_name(name)
        if name in self._names:
            return False
        home = self._paths.agent_dir(name)
        self._paths.agent_socket_dir(name).mkdir(parents=True, exist_ok=True, mode=0o700)
        record = record or AgentRecord(name)
        _write_json(home / _MARKER, attrs.asdict(record))
        (home / _TOMBSTONE).unlink(missing_ok=True)
        self._names.add(name)
        self._records[name] = record
        return True

    # -- records ------------------------------------------------------------------------------

    def has_record(self, name: str) -> bool:
        """Whether `name` is a registered agent, or the manager once it has a record."""
        return name in self._names or (name == MANAGER and self._manager_has_record)

    def record(self, name: str) -> AgentRecord:
        """The agent's (or the manager's) record.

        Raises:
            UnknownAgent: no such agent.
        """
        if not self.has_record(name):
            raise UnknownAgent(f"unknown agent {name!r}")
        return self._records[name]

    def records(self) -> list[AgentRecord]:
        """Every agent's record, then the manager's if it has one."""
        names = self.names() + ([MANAGER] if self.has_record(MANAGER) else [])
        return [self.record(name) for name in names]

    def save(self, record: AgentRecord) -> None:
        """Write a record: an existing agent's, or the manager's (created if missing)."""
        if record.name != MANAGER and record.name not in self._names:
            raise UnknownAgent(f"unknown agent {record.name!r}")
        home = self._paths.agent_dir(record.name)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_json(home / _MARKER, attrs.asdict(record))
        self._records[record.name] = record
        if record.name == MANAGER:
            (home / _TOMBSTONE).unlink(missing_ok=True)
            self._manager_retired = False
            self._manager_has_record = True

    # -- tombstones ---------------------------------------------------------------------------

    def retire(self, name: str, *, destroyed_at: float) -> wire.Tombstone:
        """Forget the agent but keep its state and config as a tombstone."""
        record = self.record(name)
        self._names.discard(name)
        self._records.pop(name, None)
        home = self._paths.agent_dir(name)
        tombstone = wire.Tombstone(name, record.role, destroyed_at)
        _write_json(home / _TOMBSTONE, wire.to_json(tombstone))
        (home / _MARKER).unlink(missing_ok=True)
        shutil.rmtree(self._paths.agent_socket_dir(name), ignore_errors=True)
        if name == MANAGER:
            self._manager_retired = True
            self._manager_has_record = False
        return tombstone

    def tombstones(self) -> list[wire.Tombstone]:
        """Destroyed agents whose state is kept, by name."""
        found = []
        for path in sorted(self._paths.agents_dir.glob(f"*/{_TOMBSTONE}")):
            name = path.parent.name
            if not _NAME.fullmatch(name) or self.has_record(name):
                continue
            data = _read_json(path)
            data = data if isinstance(data, dict) else {}
            role = "manager" if data.get("role") == "manager" else "agent"
            at = data.get("destroyed_at")
            found.append(
                wire.Tombstone(name, role, float(at) if isinstance(at, int | float) else 0.0)
            )
        return found

    def has_tombstone(self, name: str) -> bool:
        """Whether a destroyed agent of that name left its state behind."""
        return bool(_NAME.fullmatch(name)) and (self._paths.agent_dir(name) / _TOMBSTONE).exists()

    def purge(self, name: str) -> None:
        """Delete a tombstone (the agent's kept state) for good.

        Raises:
            Conflict: `name` is a live agent (destroy it first).
            UnknownAgent: there is no tombstone of that name.
        """
        self.purgeable(name)
        remove_tree(self._paths.agent_dir(name))

    def purgeable(self, name: str) -> None:
        """Check that `name` is a tombstone that may be purged (raises as `purge` does)."""
        if not _NAME.fullmatch(name):
            raise InvalidName(f"invalid agent name {name!r}")
        if self.has_record(name):
            raise Conflict(f"{name!r} is a live agent; destroy it first (`hyperhive destroy`)")
        if not self.has_tombstone(name):
            raise UnknownAgent(f"there is no tombstone of {name!r}")


def remove_tree(path: Path) -> None:
    """Delete a destroyed agent's directory (symlinks inside are removed, never followed).
    Blocking, and slow for a big state directory: run it in a thread."""
    shutil.rmtree(path)
