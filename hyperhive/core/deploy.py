"""The git and build work of the approval flow, for the approvals actor's child tasks.

`ConfigRepos` does every step that touches an agent's config repos, its deploy directories
or its build sandbox (docs/approvals.md):

- `seed` (``request_init_config``), `import_proposal` (a request), `tag` (a step of the tag
  state machine, published as `wire.ConfigRefChanged`);
- `prepare`: read and validate ``agent.toml`` at the commit, check that it builds on
  ``main``, tag ``building/``, export the commit into ``agents/<name>/deploys/<id>/config``;
- `build`: each ``build.commands`` entry in a fresh sandbox of the agent (the backend's
  `run_job`) with the network on, ``/config`` read-only, a fresh ``/tools`` read-write and a
  scratch ``/state``, under ``build.timeout``; a failure touches nothing the agent runs;
- `finish`: ``deployed/`` (``main`` moves), ``deployed-sha`` for the container row;
  `rewind` points ``main`` back for a rollback;
- `detail` and `history`: the unified and capability diffs, the tag history.

One writer per agent: the actor runs at most one child per agent at a time
(`ConfigRepos.lock`). Nothing here touches the approval store; the actor does.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import TYPE_CHECKING, Final

import attrs
import trio

from hyperhive import wire
from hyperhive.config_repo.applied import AGENT_TOML, MAX_AGENT_TOML, AppliedRepo
from hyperhive.config_repo.capabilities import capability_diff
from hyperhive.config_repo.git import Git
from hyperhive.config_repo.seed import RepoPaths, seed_repos
from hyperhive.config_repo.tags import Stage, annotation, tag_name
from hyperhive.core.agent_spec import MANAGER_AGENTS, MANAGER_APPLIED
from hyperhive.core.registry import AgentRecord, remove_tree
from hyperhive.errors import ConfigError, HyperhiveError, RepoError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from hyperhive.config import StatePaths
    from hyperhive.config_repo.agent_toml import AgentConfig
    from hyperhive.config_repo.applied import TagInfo
    from hyperhive.containers.base import ContainerBackend
    from hyperhive.core.agent_spec import SpecBuilder
    from hyperhive.core.events import EventsHandle
    from hyperhive.offload import Offload

__all__ = ["BuildFailed", "ConfigRepos", "Prepared", "rfc3339"]

LOGGER = logging.getLogger("hyperhive.approvals")
BUILD_LOG_TAIL: Final = 3000
_SHELL: Final = ("/bin/sh", "-c")


def rfc3339(stamp: float | None) -> str | None:
    """Unix seconds as RFC 3339 in UTC (``2030-06-01T09:00:00Z``); None stays None."""
    if stamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class BuildFailed(HyperhiveError):
    """A build command failed; the text names it and ends with the tail of its output."""


@attrs.frozen
class Prepared:
    """A commit ready to build: its validated config and its deploy directory."""

    config: AgentConfig
    commit: str
    deploy_dir: Path


class ConfigRepos:
    """See the module docstring.

    Args:
        paths: the state directory (deploys live under each agent's directory).
        now: the wall clock, for tag dates.
        offload: how file work leaves the trio thread.
        backend: where builds run and repos are handed to the manager (None: no containers).
        specs: builds an agent's spec (the build sandbox is one).
        events: where ref changes are published.
    """

    def __init__(
        self,
        *,
        paths: StatePaths,
        now: Callable[[], float],
        offload: Offload,
        backend: ContainerBackend | None,
        specs: SpecBuilder,
        events: EventsHandle,
    ) -> None:
        self._paths = paths
        self.repos = RepoPaths(paths.configs_dir)
        self._now = now
        self._offload = offload
        self._backend = backend
        self._specs = specs
        self._events = events
        self._git: Git | None = None
        self._locks: dict[str, trio.Lock] = {}

    # -- plumbing -----------------------------------------------------------------------------

    def lock(self, name: str) -> trio.Lock:
        """The lock a child holds while it works on `name`'s repos and deploys."""
        return self._locks.setdefault(name, trio.Lock())

    def busy(self) -> int:
        return sum(lock.locked() for lock in self._locks.values())

    async def git(self) -> Git:
        """The git runner (made on first use; ConfigError if the host has no git)."""
        if self._git is None:
            await self._offload(self.repos.ensure)
            self._git = await self._offload(lambda: Git(self.repos.git_home))
        return self._git

    async def applied(self, name: str) -> AppliedRepo:
        repos = self.repos
        return AppliedRepo(
            await self.git(), repos.applied(name), work_dir=repos.work, now=self._now
        )

    async def has_repos(self, name: str) -> bool:
        """Whether `name` has an applied repo (it was seeded)."""
        return await self._offload(lambda: (self.repos.applied(name) / "objects").is_dir())

    def _published(self, name: str, info: TagInfo) -> TagInfo:
        ref = f"refs/tags/{tag_name(info.stage, info.id)}"
        self._events.publish(wire.ConfigRefChanged(name, ref, info.commit, info.message))
        return info

    # -- seeding and proposals ----------------------------------------------------------------

    async def seed(self, name: str, *, manager: str) -> wire.ConfigInitialised:
        """Seed `name`'s repos from the template and hand the proposed one to `manager`.

        Raises:
            Conflict: it has a proposed repo already. RepoError: git failed.
        """
        git = await self.git()
        sha = await seed_repos(git, self.repos, name, now=self._now)
        if self._backend is not None:
            await self._backend.hand_over(manager, self.repos.proposed(name))
        self._events.publish(wire.ConfigRefChanged(name, "refs/heads/main", sha))
        return wire.ConfigInitialised(
            name=name,
            seed=sha,
            path=str(MANAGER_AGENTS / name / "config"),
            applied_path=str(MANAGER_APPLIED / name),
        )

    async def import_proposal(self, name: str, commit_ref: str, id: int) -> str:
        """Bring `commit_ref` of `name`'s proposed repo in as ``proposal/<id>``; its sha.

        Raises:
            RepoError: no such repo or commit, or it breaks the rules; the text says which.
        """
        if not await self.has_repos(name):
            raise RepoError(
                f"{name} has no config repo yet; call request_init_config({name!r}) first"
            )
        applied = await self.applied(name)
        sha = await applied.import_proposal(self.repos.proposed_root, name, commit_ref, id)
        stages = await applied.stages(id)
        self._published(name, stages[Stage.PROPOSAL])
        return sha

    async def tag(self, name: str, id: int, stage: Stage, message: str | None = None) -> TagInfo:
        """Tag approval `id` `stage` (moving ``main`` on ``deployed``), published."""
        applied = await self.applied(name)
        info = self._published(name, await applied.advance(id, stage, message))
        if stage is Stage.DEPLOYED:
            self._events.publish(wire.ConfigRefChanged(name, "refs/heads/main", info.commit))
        return info

    async def stage_of(self, name: str, id: int) -> set[Stage]:
        """The tags approval `id` carries in `name`'s applied repo."""
        return set(await (await self.applied(name)).stages(id))

    # -- a deploy -----------------------------------------------------------------------------

    async def prepare(self, name: str, id: int, commit: str) -> Prepared:
        """Validate the commit, tag ``building/``, export it into its deploy directory.

        Raises:
            ConfigError: ``agent.toml`` is missing or invalid (the text has the field path).
            Conflict: the commit does not build on ``main``. RepoError: git failed.
        """
        applied = await self.applied(name)
        config = await applied.agent_config(commit)
        if not await applied.is_fast_forward(commit):
            main = await applied.main()
            raise ConfigError(
                f"commit {commit[:12]} does not build on the deployed config (main is "
                f"{main[:12] if main else 'unset'}); rebase it onto main and propose it again"
            )
        await self.tag(name, id, Stage.BUILDING)
        deploy = self._paths.deploy_dir(name, id)
        await self._offload(_fresh_deploy_dir, deploy)
        skipped = await applied.export_tree(commit, deploy / "config")
        if skipped:
            LOGGER.info("deploy %d of %s: left out %d links or submodules", id, name, len(skipped))
        return Prepared(config, commit, deploy)

    async def build(self, name: str, id: int, prepared: Prepared, role: str) -> None:
        """Run the build commands; returns when every one exited 0.

        Raises:
            BuildFailed: a command failed or the build ran past its timeout; the text names
                the command and ends with the tail of the build's output (its log is
                ``deploys/<id>/build.log``).
            ContainerError: the daemon runs no containers, or the backend cannot build.
        """
        commands = prepared.config.build.commands
        if not commands:
            return
        if self._backend is None:
            raise BuildFailed("this daemon runs no containers, so build.commands cannot run")
        backend = self._backend
        deploy = prepared.deploy_dir
        log = deploy / "build.log"
        base = self._specs.base(AgentRecord(name, role="manager" if role == "manager" else "agent"))
        spec = await self._specs.with_config(base, prepared.config, deploy, secrets=False)
        spec = attrs.evolve(
            spec,
            state_dir=deploy / "build",
            socket_dir=deploy / "build-run",
            log_path=log,
            tools_writable=True,
            network=True,
            binds=(),
            # The build gets the approved binds and limits, not the agent's allowlist: it
            # installs things; the operator's sandbox.json still caps it.
            approved=attrs.evolve(spec.approved, egress=None) if spec.approved else None,
        )
        timeout = float(prepared.config.build.timeout)
        for number, command in enumerate(commands, 1):
            await self._offload(_note, log, f"$ {command}\n")
            job = attrs.evolve(spec, argv=(*_SHELL, command))
            with trio.move_on_after(timeout) as timer:
                code = await backend.run_job(job)
            if timer.cancelled_caught:
                raise BuildFailed(
                    f"build command {number} ({_short(command)}) ran past the build timeout "
                    f"of {timeout:g} s and was stopped{await self._tail(log)}"
                )
            if code != 0:
                raise BuildFailed(
                    f"build command {number} ({_short(command)}) exited with status {code}"
                    f"{await self._tail(log)}"
                )

    async def _tail(self, log: Path) -> str:
        text = await self._offload(_read_tail, log)
        return f"; its output ended:\n{text}" if text else ""

    async def finish(self, name: str, id: int) -> str:
        """``deployed/<id>`` (main moves there); record it for the container row; the sha."""
        info = await self.tag(name, id, Stage.DEPLOYED)
        await self._offload(_write_deployed_sha, self._paths.agent_dir(name), info.commit)
        return info.commit

    async def rewind(self, name: str, commit: str | None) -> None:
        """Point ``main`` back at `commit` (the config before a rolled-back deploy)."""
        if commit is None:
            return
        applied = await self.applied(name)
        old = await applied.main()
        git = await self.git()
        await git.run(applied.path, "update-ref", "refs/heads/main", commit, old or "")
        await self._offload(_write_deployed_sha, self._paths.agent_dir(name), commit)
        self._events.publish(wire.ConfigRefChanged(name, "refs/heads/main", commit))

    async def main(self, name: str) -> str | None:
        return await (await self.applied(name)).main()

    # -- reads --------------------------------------------------------------------------------

    async def detail(self, approval: wire.Approval, *, spawn: bool) -> wire.ApprovalDetail:
        """The approval with its unified diff from ``main`` and its capability diff."""
        name = approval.agent
        applied = await self.applied(name)
        new = approval.fetched_sha
        if new is None:
            return wire.ApprovalDetail(approval, None, "", False, (), "not fetched yet")
        base = None if spawn else await applied.main()
        diff = await applied.diff(base, new)
        changes: tuple[wire.CapabilityChange, ...] = ()
        error = None
        try:
            after = await applied.agent_config(new)
            before = None if base is None else await _config_or_default(applied, base)
            changes = tuple(
                wire.CapabilityChange(c.area, c.effect, c.subject, c.before, c.after)
                for c in capability_diff(before, after)
            )
        except ConfigError as exc:
            error = str(exc)
        return wire.ApprovalDetail(approval, base, diff.text, diff.truncated, changes, error)

    async def history(self, name: str, deploy: int | None) -> wire.ConfigReply:
        """`name`'s deployed config (``agent.toml`` at ``main``) and every approval tag."""
        if not await self.has_repos(name):
            return wire.ConfigReply(name, None, None, deploy, ())
        applied = await self.applied(name)
        main = await applied.main()
        text = None
        if main is not None:
            raw = await applied.read_file(main, AGENT_TOML, max_bytes=MAX_AGENT_TOML)
            text = None if raw is None else raw.decode("utf-8", errors="replace")
        tags = tuple(
            wire.ConfigTag(t.stage.value, t.id, t.commit, rfc3339(t.at) or "", t.message)
            for t in await applied.history()
        )
        return wire.ConfigReply(name, main, text, deploy, tags)


async def _config_or_default(applied: AppliedRepo, commit: str) -> AgentConfig | None:
    """The config at `commit`, or None (a new agent) when it has none that parses."""
    try:
        return await applied.agent_config(commit)
    except ConfigError:
        return None


def _fresh_deploy_dir(deploy: Path) -> None:
    """An empty deploy directory with ``config/`` (a leftover of a crash is removed)."""
    if os.path.lexists(deploy):
        remove_tree(deploy)
    deploy.mkdir(parents=True, mode=0o755)
    (deploy / "config").mkdir(mode=0o755)
    for sub in ("tools", "build", "build-run"):
        (deploy / sub).mkdir(mode=0o755)


def _note(log: Path, text: str) -> None:
    with log.open("a", encoding="utf-8") as handle:
        handle.write(text)


def _read_tail(log: Path) -> str:
    try:
        with log.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - BUILD_LOG_TAIL))
            data = handle.read()
    except OSError:
        return ""
    return annotation(data.decode("utf-8", errors="replace"), BUILD_LOG_TAIL)


def _write_deployed_sha(agent_dir: Path, sha: str) -> None:
    agent_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch = agent_dir / (wire.DEPLOYED_SHA + ".tmp")
    scratch.write_text(sha + "\n")
    os.replace(scratch, agent_dir / wire.DEPLOYED_SHA)


def _short(command: str) -> str:
    return command if len(command) <= 80 else command[:77] + "..."
