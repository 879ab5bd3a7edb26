"""One agent's sandbox settings: extra binds, egress allowlist, limits, disk quota.

They live in `agents/<name>/sandbox.json`, a file only the operator (and the daemon) can write:
it is outside everything bound into any container. Every key is optional:

    {"binds": [{"source": "/srv/data", "target": "/data", "writable": false}],
     "egress": ["api.anthropic.com:443", "10.0.0.0/8:*", "192.0.2.7:8000-8100"],
     "memory_max": "4G", "pids_max": 512, "disk_quota": "20G"}

A missing key takes the daemon's default (`ContainerSettings`); a missing `egress` means any
destination. The file is read at every start, so `hyperhive rebuild NAME` applies a change.
A file that does not parse makes the start fail with the file and the field named; nothing of
it is half-applied.

An agent whose config came through an approval also has *approved* settings (its
`agent.toml`, `hyperhive.config_repo.agent_toml.to_sandbox_settings`). `combine` joins the
two, the operator's file capping what was approved: each limit is the lower of the approved
value and the operator's (the file's, else the daemon's default), both egress allowlists apply
(a destination must pass each), and the binds of both are mounted.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Final

import attrs

from hyperhive.errors import ConfigError

__all__ = [
    "Bind",
    "EgressRule",
    "SandboxSettings",
    "combine",
    "load_sandbox_settings",
    "parse_egress",
    "parse_size",
]

_SIZE: Final = re.compile(r"(\d+)\s*([KMGT]?)(i?B?)?", re.IGNORECASE)
_UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]+", re.IGNORECASE
)
# Sandbox paths an extra bind may not cover: the wall's own mounts.
_RESERVED_TARGETS: Final = ("/", "/state", "/config", "/run", "/proc", "/dev", "/usr", "/etc")
_MAX_FILE_BYTES: Final = 64 * 1024
_MAX_ENTRIES: Final = 64


def parse_size(value: object, what: str) -> int:
    """`4G`, `512M`, `1048576`: a byte count (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        number = int(match.group(1)) * _UNITS[match.group(2).upper()]
        if number > 0:
            return number
    raise ConfigError(f"{what}: {value!r} is not a size (say 512M, 4G or a byte count)")


@attrs.frozen
class Bind:
    """A host path the agent also sees, at `target`, read-only unless `writable`."""

    source: Path
    target: PurePosixPath
    writable: bool = False


@attrs.frozen
class EgressRule:
    """One allowed destination: a network (a hostname is resolved at start) and ports."""

    host: str  # "*", an address, a CIDR or a hostname
    first_port: int = 1
    last_port: int = 65535

    def networks(self, resolved: tuple[str, ...] = ()) -> list[str]:
        """The IPv4 networks this rule allows (`resolved`: the hostname's addresses)."""
        if self.host == "*":
            return ["0.0.0.0/0"]
        try:
            return [str(ipaddress.IPv4Network(self.host, strict=False))]
        except ValueError:
            return [f"{address}/32" for address in resolved]

    @property
    def is_hostname(self) -> bool:
        if self.host == "*":
            return False
        try:
            ipaddress.IPv4Network(self.host, strict=False)
        except ValueError:
            return True
        return False


def parse_egress(entry: object) -> EgressRule:
    """`HOST:PORT`, with HOST `*`, an IPv4 address or network, or a hostname (no wildcards),
    and PORT a number, `A-B` or `*`."""
    if not isinstance(entry, str) or ":" not in entry:
        raise ConfigError(f"egress: {entry!r} is not HOST:PORT (say api.anthropic.com:443)")
    host, _, ports = entry.strip().rpartition(":")
    if host != "*":
        try:
            ipaddress.IPv4Network(host, strict=False)
        except ValueError:
            if "*" in host or not _HOSTNAME.fullmatch(host):
                raise ConfigError(
                    f"egress: {host!r} is neither an IPv4 address or network nor a hostname "
                    "(wildcard hostnames cannot be enforced by address and are refused)"
                ) from None
    if ports == "*":
        return EgressRule(host)
    first, _, last = ports.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise ConfigError(f"egress: {ports!r} is not a port, a range A-B or *") from None
    if not 1 <= low <= high <= 65535:
        raise ConfigError(f"egress: ports {ports!r} must lie within 1-65535, low to high")
    return EgressRule(host, low, high)


def _parse_bind(entry: object) -> Bind:
    if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
        raise ConfigError(f"binds: {entry!r} needs at least a source path")
    source = Path(entry["source"])
    raw_target = entry.get("target", entry["source"])
    if not isinstance(raw_target, str):
        raise ConfigError(f"binds: {entry!r}: target must be a path")
    target = PurePosixPath(raw_target)
    if not source.is_absolute() or not target.is_absolute() or ".." in target.parts:
        raise ConfigError(f"binds: {entry!r}: source and target must be absolute, without '..'")
    if str(target) in _RESERVED_TARGETS or any(
        PurePosixPath(reserved) in (target, *target.parents)
        for reserved in ("/state", "/config", "/run/hyperhive", "/proc", "/dev")
    ):
        raise ConfigError(f"binds: {target} is one of the sandbox's own mounts")
    writable = entry.get("writable", False)
    if not isinstance(writable, bool):
        raise ConfigError(f"binds: {entry!r}: writable is true or false")
    return Bind(source, target, writable)


@attrs.frozen
class SandboxSettings:
    """Per-agent settings; None means the daemon's default."""

    binds: tuple[Bind, ...] = ()
    egress: tuple[EgressRule, ...] | None = None  # None: any destination
    memory_max: int | None = None
    pids_max: int | None = None
    disk_quota: int | None = None
    # A second allowlist every connection must also pass (`combine`: the approved one).
    also_egress: tuple[EgressRule, ...] | None = None

    @property
    def egress_layers(self) -> tuple[tuple[EgressRule, ...], ...]:
        """Every allowlist in force; a destination must be allowed by each."""
        return tuple(rules for rules in (self.egress, self.also_egress) if rules is not None)

    @classmethod
    def from_json(cls, data: Any, where: str = "sandbox settings") -> SandboxSettings:
        """Parse the file's content. Raises ConfigError naming `where` and the field."""
        try:
            return cls._parse(data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def _parse(cls, data: Any) -> SandboxSettings:
        if not isinstance(data, dict):
            raise ConfigError("the file must hold one JSON object")
        unknown = set(data) - {"binds", "egress", "memory_max", "pids_max", "disk_quota"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}")
        binds = data.get("binds", [])
        egress = data.get("egress")
        if not isinstance(binds, list) or len(binds) > _MAX_ENTRIES:
            raise ConfigError(f"binds must be a list of at most {_MAX_ENTRIES} entries")
        if egress is not None and (not isinstance(egress, list) or len(egress) > _MAX_ENTRIES):
            raise ConfigError(f"egress must be a list of at most {_MAX_ENTRIES} HOST:PORT")
        pids = data.get("pids_max")
        if pids is not None and (not isinstance(pids, int) or isinstance(pids, bool) or pids < 1):
            raise ConfigError(f"pids_max: {pids!r} is not a positive number")
        return cls(
            binds=tuple(_parse_bind(entry) for entry in binds),
            egress=None if egress is None else tuple(parse_egress(e) for e in egress),
            memory_max=_optional_size(data, "memory_max"),
            pids_max=pids,
            disk_quota=_optional_size(data, "disk_quota"),
        )


def combine(
    operator: SandboxSettings,
    approved: SandboxSettings | None,
    *,
    memory_max: int,
    pids_max: int,
    disk_quota: int,
) -> SandboxSettings:
    """The settings an agent runs with: the operator's file capping its approved config.

    The keyword arguments are the daemon's defaults, which stand for the operator where the
    file says nothing. Without approved settings this is the operator's file as it was.
    """
    if approved is None:
        return operator

    def capped(mine: int | None, theirs: int | None, default: int) -> int:
        cap = theirs if theirs is not None else default
        return cap if mine is None else min(mine, cap)

    return SandboxSettings(
        binds=(*operator.binds, *approved.binds),
        egress=operator.egress,
        memory_max=capped(approved.memory_max, operator.memory_max, memory_max),
        pids_max=capped(approved.pids_max, operator.pids_max, pids_max),
        disk_quota=capped(approved.disk_quota, operator.disk_quota, disk_quota),
        also_egress=approved.egress,
    )


def _optional_size(data: dict[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else parse_size(data[key], key)


def load_sandbox_settings(path: Path | None) -> SandboxSettings:
    """The settings in `path` (defaults when it is None or missing). Blocking: run off-thread.

    Raises:
        ConfigError: the file exists but is not valid.
    """
    if path is None:
        return SandboxSettings()
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return SandboxSettings()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from exc
    if len(raw) > _MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {_MAX_FILE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    return SandboxSettings.from_json(data, str(path))
