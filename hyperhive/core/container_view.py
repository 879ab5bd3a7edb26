"""The container view: one row per agent, as the dashboard, `hyperhive list` and the manager see
it, and the pure diff the rescanner turns into events.

A row joins four sources: the agent's record (role, network, wanted state), the
backend's status (state, exit code, detail), the lifecycle's transient action, and small files:

- `hyperhive-needs-login`, `hyperhive-rate-limited` (sentinels), `hyperhive-model` and
  `hyperhive-state.json` (what the harness says it is doing, a `wire.HarnessReport`) in the
  agent's state directory, written by the harness (`hyperhive.agent.settings.AgentPaths`);
- `deployed-sha` in the agent's host directory, written by the config flow when it deploys;
- the state directory's disk use (`hyperhive.containers.disk`), held against its soft quota:
  `quota_crossings` finds the rows that just went over, for the operator's event.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, TypeVar

import attrs

from hyperhive import wire
from hyperhive.core.agent_files import UnsafeFile, is_regular_file, read_capped
from hyperhive.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from hyperhive.containers.base import AgentStatus
    from hyperhive.core.registry import AgentRecord

__all__ = ["AgentFlags", "build_view", "diff_views", "quota_crossings", "read_flags"]

_T = TypeVar("_T")
# The harness writes these (`hyperhive.wire.harness` names them for both sides).
NEEDS_LOGIN = wire.NEEDS_LOGIN
RATE_LIMITED = wire.RATE_LIMITED
MODEL = wire.MODEL_FILE
DEPLOYED_SHA = wire.DEPLOYED_SHA
STATE_REPORT = wire.STATE_REPORT


# What the harness writes is a line or two; anything bigger is refused unread.
MAX_FLAG_BYTES = 4096


@attrs.frozen
class AgentFlags:
    needs_login: bool = False
    rate_limited: bool = False
    model: str | None = None
    deployed_sha: str | None = None
    disk_bytes: int | None = None
    disk_quota: int | None = None
    activity: wire.HarnessReport | None = None
    # Why a file was ignored (a symlink, a FIFO, too big ...): shown in the agent's `list` row.
    problems: tuple[str, ...] = ()


def read_flags(state_dir: Path, agent_dir: Path) -> AgentFlags:
    """The harness's sentinels and the deployed sha. Blocking: run it in a thread.

    The state directory is the agent's to write, so every file is read as hostile input
    (`hyperhive.core.agent_files`): never through a symlink, never a FIFO or device, at most
    `MAX_FLAG_BYTES`. A file that fails those checks counts as absent and says why in
    ``problems``; it never blocks, and never affects another agent.
    """
    problems: list[str] = []

    def guarded(read: Callable[[], _T], default: _T) -> _T:
        try:
            return read()
        except (UnsafeFile, OSError) as exc:
            problems.append(f"ignored {exc}" if isinstance(exc, UnsafeFile) else str(exc))
            return default

    def sentinel(name: str) -> bool:
        return guarded(
            lambda: is_regular_file(state_dir, PurePosixPath(name), shown_as=_SHOWN), False
        )

    def first_line(root: Path, name: str, shown_as: str) -> str | None:
        def read() -> str | None:
            data = read_capped(root, PurePosixPath(name), MAX_FLAG_BYTES, shown_as=shown_as)
            text = data.decode(errors="replace").strip() if data else ""
            return text.splitlines()[0][:200] if text else None

        return guarded(read, None)

    def report() -> wire.HarnessReport | None:
        data = read_capped(state_dir, PurePosixPath(STATE_REPORT), MAX_FLAG_BYTES, shown_as=_SHOWN)
        if not data:
            return None
        try:
            return wire.from_json(json.loads(data), wire.HarnessReport)
        except (ValueError, RecursionError, BadRequest) as exc:
            raise UnsafeFile(f"/state/{STATE_REPORT}: not a state report ({exc})") from None

    return AgentFlags(
        activity=guarded(report, None),
        needs_login=sentinel(NEEDS_LOGIN),
        rate_limited=sentinel(RATE_LIMITED),
        model=first_line(state_dir, MODEL, _SHOWN),
        deployed_sha=first_line(agent_dir, DEPLOYED_SHA, ""),
        problems=tuple(problems),
    )


_SHOWN = "/state"


def build_view(
    record: AgentRecord,
    status: AgentStatus | None,
    *,
    transient: str | None = None,
    flags: AgentFlags = AgentFlags(),  # frozen: one shared default is safe
    pending_reminders: int = 0,
    notes: tuple[str, ...] = (),
) -> wire.ContainerView:
    """One agent's row. `status` is None when no backend runs containers (`--backend none`)."""
    return wire.ContainerView(
        name=record.name,
        role=record.role,
        state=status.state.value if status is not None else "absent",
        wanted=record.wanted,
        network=record.network,
        transient=transient,
        exit_code=status.exit_code if status is not None else None,
        detail=status.detail[-2000:] if status is not None else "",
        needs_login=flags.needs_login,
        rate_limited=flags.rate_limited,
        model=flags.model,
        deployed_sha=flags.deployed_sha,
        pending_reminders=pending_reminders,
        disk_bytes=flags.disk_bytes,
        disk_quota=flags.disk_quota,
        notes=(*flags.problems, *notes),
        activity=flags.activity if status is not None and status.state.value == "running" else None,
    )


def _over(view: wire.ContainerView | None) -> bool:
    return (
        view is not None
        and view.disk_bytes is not None
        and view.disk_quota is not None
        and view.disk_bytes > view.disk_quota
    )


def quota_crossings(
    old: Mapping[str, wire.ContainerView], new: Mapping[str, wire.ContainerView]
) -> list[wire.ContainerView]:
    """Rows over their disk quota now that were not (or not known) before, sorted by name."""
    return [new[name] for name in sorted(new) if _over(new[name]) and not _over(old.get(name))]


def diff_views(
    old: Mapping[str, wire.ContainerView], new: Mapping[str, wire.ContainerView]
) -> tuple[list[wire.ContainerView], list[str]]:
    """(rows that appeared or changed, names that disappeared), both sorted by name."""
    changed = [view for name, view in sorted(new.items()) if old.get(name) != view]
    removed = sorted(name for name in old if name not in new)
    return changed, removed
