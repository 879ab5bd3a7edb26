"""The container view: one row per agent, as the dashboard, `hyperhive list` and the manager see
it, and the pure diff the rescanner turns into events.

A row joins four sources: the agent's record (role, network, wanted state, web port), the
backend's status (state, exit code, detail), the lifecycle's transient action, and small files:

- `hyperhive-needs-login`, `hyperhive-rate-limited` (sentinels) and `hyperhive-model` in the
  agent's state directory, written by the harness (`hyperhive.agent.settings.AgentPaths`);
- `deployed-sha` in the agent's host directory, written by the config flow when it deploys;
- the state directory's disk use (`hyperhive.containers.disk`), held against its soft quota:
  `quota_crossings` finds the rows that just went over, for the operator's event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from hyperhive import wire

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from hyperhive.containers.base import AgentStatus
    from hyperhive.core.registry import AgentRecord

__all__ = ["AgentFlags", "build_view", "diff_views", "quota_crossings", "read_flags"]

NEEDS_LOGIN = "hyperhive-needs-login"
RATE_LIMITED = "hyperhive-rate-limited"
MODEL = "hyperhive-model"
DEPLOYED_SHA = "deployed-sha"


@attrs.frozen
class AgentFlags:
    needs_login: bool = False
    rate_limited: bool = False
    model: str | None = None
    deployed_sha: str | None = None
    disk_bytes: int | None = None
    disk_quota: int | None = None


def _first_line(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return text.splitlines()[0][:200] if text else None


def read_flags(state_dir: Path, agent_dir: Path) -> AgentFlags:
    """The harness's sentinels and the deployed sha (blocking file reads: run in a thread)."""
    return AgentFlags(
        needs_login=(state_dir / NEEDS_LOGIN).exists(),
        rate_limited=(state_dir / RATE_LIMITED).exists(),
        model=_first_line(state_dir / MODEL),
        deployed_sha=_first_line(agent_dir / DEPLOYED_SHA),
    )


def build_view(
    record: AgentRecord,
    status: AgentStatus | None,
    *,
    transient: str | None = None,
    flags: AgentFlags = AgentFlags(),  # frozen: one shared default is safe
    pending_reminders: int = 0,
) -> wire.ContainerView:
    """One agent's row. `status` is None when no backend runs containers (`--backend none`)."""
    return wire.ContainerView(
        name=record.name,
        role=record.role,
        state=status.state.value if status is not None else "absent",
        wanted=record.wanted,
        network=record.network,
        transient=transient,
        web_port=record.web_port,
        exit_code=status.exit_code if status is not None else None,
        detail=status.detail[-2000:] if status is not None else "",
        needs_login=flags.needs_login,
        rate_limited=flags.rate_limited,
        model=flags.model,
        deployed_sha=flags.deployed_sha,
        pending_reminders=pending_reminders,
        disk_bytes=flags.disk_bytes,
        disk_quota=flags.disk_quota,
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
