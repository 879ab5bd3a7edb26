"""The container view: one row per agent, as the dashboard, `hyperhive list` and the manager see
it, and the pure diff the rescanner turns into events.

A row joins four sources: the agent's record (role, network, wanted state), the
backend's status (state, exit code, detail), the lifecycle's transient action, and small files:

- `hyperhive-needs-login`, `hyperhive-rate-limited` (sentinels), `hyperhive-model` and the
  harness's report `hyperhive-report.json` (`wire.AgentReport`: what it is doing and why, its
  last turn; `hyperhive.agent.report`) in the agent's state directory, written by the harness
  (`hyperhive.agent.settings.AgentPaths`);
- `deployed-sha` in the agent's host directory, written by the config flow when it deploys;
- the state directory's disk use (`hyperhive.containers.disk`), held against its soft quota:
  `quota_crossings` finds the rows that just went over, for the operator's event.

`semantic_state` turns all that into the word and the sentence every surface shows (`list`,
``top``, the dashboard's card, the agent's page through `doing`).
"""

from __future__ import annotations

import datetime
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

__all__ = [
    "AgentFlags",
    "build_view",
    "diff_views",
    "doing",
    "quota_crossings",
    "read_flags",
    "semantic_state",
]

_T = TypeVar("_T")
# The harness writes these (`hyperhive.wire.harness` names them for both sides).
NEEDS_LOGIN = wire.NEEDS_LOGIN
RATE_LIMITED = wire.RATE_LIMITED
MODEL = wire.MODEL_FILE
DEPLOYED_SHA = wire.DEPLOYED_SHA


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
    report: wire.AgentReport | None = None
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

    def report() -> wire.AgentReport | None:
        def read() -> wire.AgentReport | None:
            path = PurePosixPath(wire.REPORT_FILE)
            data = read_capped(state_dir, path, wire.MAX_REPORT_BYTES, shown_as=_SHOWN)
            if data is None:
                return None
            try:
                return wire.decode_report(data)
            except BadRequest as exc:
                raise UnsafeFile(f"{_SHOWN}/{wire.REPORT_FILE}: {exc}") from None

        return guarded(read, None)

    return AgentFlags(
        needs_login=sentinel(NEEDS_LOGIN),
        rate_limited=sentinel(RATE_LIMITED),
        model=first_line(state_dir, MODEL, _SHOWN),
        deployed_sha=first_line(agent_dir, DEPLOYED_SHA, ""),
        report=report(),
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
    mail: tuple[int, int] = (0, 0),
    status_text: tuple[str, float] | None = None,
    notes: tuple[str, ...] = (),
    needs_update: bool = False,
    now: float = 0.0,
) -> wire.ContainerView:
    """One agent's row. `status` is None when no backend runs containers (`--backend none`);
    `mail` is its (pending, in flight) messages, `status_text` what it said it is doing,
    `needs_update` whether an approved config of it waits to be deployed."""
    state = status.state.value if status is not None else "absent"
    live = state in ("running", "starting")
    # The harness's report and its status describe a harness that runs; a stopped agent's
    # files are a snapshot from before it stopped.
    report = flags.report if live else None
    said = status_text if state == "running" else None
    view = wire.ContainerView(
        name=record.name,
        role=record.role,
        state=status.state.value if status is not None else "absent",
        wanted=record.wanted,
        network=record.network,
        transient=transient,
        exit_code=status.exit_code if status is not None else None,
        detail=status.detail[-2000:] if status is not None else "",
        start_refused=status is not None and status.refused and state == "crashed",
        needs_login=flags.needs_login,
        rate_limited=flags.rate_limited,
        model=flags.model,
        deployed_sha=flags.deployed_sha,
        pending_reminders=pending_reminders,
        disk_bytes=flags.disk_bytes,
        disk_quota=flags.disk_quota,
        notes=(*flags.problems, *notes),
        paused=record.paused,
        turn_state=report.state if report is not None else None,
        last_turn=flags.report.last_turn if flags.report is not None else None,
        pending_messages=mail[0],
        inflight_messages=mail[1],
        status_text=said[0] if said is not None else None,
        status_set_at=said[1] if said is not None else None,
        needs_update=needs_update,
        parent=record.parent,
    )
    word, reason = semantic_state(view, report, now)
    return attrs.evolve(view, semantic=word, reason=reason)


def semantic_state(
    view: wire.ContainerView, report: wire.AgentReport | None, now: float
) -> tuple[str, str]:
    """Where the agent is, in a word, and why, in a sentence (pure).

    In order: an action in flight; the container (absent, stopped, crashed, start refused,
    starting, unknown);
    then, for a harness that runs, what `doing` says.
    """
    if view.transient:
        return view.transient, f"{view.transient} (an operator action is in flight)"
    if view.state == "crashed":
        last = view.detail.strip().splitlines()[-1:] if view.detail.strip() else []
        if view.start_refused:  # nothing ran: the refusal's reason, not an exit
            why = _refusal(view.detail)
            why = f": {why[:300]}" if why else " (the backend gave no reason)"
            return "start refused", f"its start was refused before anything ran{why}"
        code = f" with status {view.exit_code}" if view.exit_code is not None else ""
        return "crashed", f"its process exited{code}" + (f": {last[0][:200]}" if last else "")
    if view.state in ("absent", "stopped"):
        should = view.wanted == "running" and view.state == "stopped"
        return "stopped", "not running" + ("; it is meant to: start it" if should else "")
    if view.state not in ("running", "starting"):
        return view.state, view.detail[:200]
    return doing(
        report,
        now,
        paused=view.paused,
        pending_messages=view.pending_messages,
        needs_login=view.needs_login,
        name=view.name,
    )


def _refusal(detail: str) -> str:
    """The line of a refused start's detail that says why: bubblewrap's own (a sandbox that
    failed to set up also logs its network helper's lines after it), else the last."""
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("bwrap: ")]
    return (said or lines or [""])[-1]


def doing(
    report: wire.AgentReport | None,
    now: float,
    *,
    paused: bool = False,
    pending_messages: int = 0,
    needs_login: bool = False,
    name: str | None = None,
) -> tuple[str, str]:
    """What a running harness is doing, in a word, and why, in a sentence (pure): the one
    reading of its report, for the daemon's rows and the agent's live page alike.

    In order: paused by the operator; needs login; then what the harness reports: rate limited
    until T, an API retry n of N with its error, backing off after a failed turn, working
    (thinking, running tool X, waiting on recv), compacting, interrupted, idle, lost the hive.
    """
    if paused:
        waiting = f"; {pending_messages} message(s) wait" if pending_messages else ""
        return "paused", f"paused by the operator{waiting} (resume it to continue)"
    if needs_login or (report is not None and report.state == "needs_login"):
        detail = report.detail if report is not None and report.detail else "no Claude credential"
        # By name: that always reaches it, also after `hyperhive logout NAME` (which the
        # hive's credential, `hyperhive login` alone, no longer does).
        command = f"hyperhive login {name}" if name else "hyperhive login NAME"
        return "needs login", f"{detail}; log it in with `{command}`"
    if report is None:
        return "starting", "its harness has not reported yet"
    retry = report.retry
    match report.state:
        case "rate_limited":
            until = f" until {_clock(report.until, now)}" if report.until else ""
            return "rate limited", f"rate limited{until}" + _detail(report.detail)
        case "backing_off":
            when = f"; retrying at {_clock(report.until, now)}" if report.until else ""
            failures = f" ({report.failures} in a row)" if report.failures > 1 else ""
            return "backing off", f"its turn failed{failures}{_detail(report.detail)}{when}"
        case "running" | "compacting" if retry is not None:
            error = retry.error or (f"HTTP {retry.status}" if retry.status else "an API error")
            status = f" ({retry.status})" if retry.error and retry.status else ""
            return "retrying", f"API retry {retry.attempt} of {retry.max_retries}: {error}{status}"
        case "running" if report.tool == wire.RECV_TOOL:
            return "working", "waiting on recv"
        case "running" if report.tool:
            return "working", f"running {report.tool}"
        case "running":
            return "working", "thinking"
        case "compacting":
            return "compacting", "compacting its conversation"
        case "idle" if report.interrupted:
            return "interrupted", "its turn was cancelled; it waits for new work"
        case "idle":
            return "idle", "waiting for mail"
        case "paused":
            return "paused", "its harness is paused"
        case "disconnected":
            return "lost the hive", "its harness lost its socket and is reconnecting"
        case "starting":
            return "starting", "its harness is starting"
    return f"unknown ({report.state[:40]})", report.detail


def _detail(text: str) -> str:
    return f": {text}" if text else ""


def _clock(at: float, now: float) -> str:
    """``14:05:10 (in 3m)``: a local time, and how far off it is."""
    left = max(0, int(at - now))
    minutes, seconds = divmod(left, 60)
    hours, minutes = divmod(minutes, 60)
    span = f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m" if minutes else f"{seconds}s")
    return f"{datetime.datetime.fromtimestamp(at).strftime('%H:%M:%S')} (in {span})"


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
