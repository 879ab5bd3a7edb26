"""Where the config repos live, and seeding an agent's pair from the template.

Under one daemon-owned root (docs/approvals.md)::

    <root>/
    ├── proposed/<name>/config  the manager's working repo (a normal repo with a work tree);
    │                           proposed/ is the manager's /agents, read-write
    ├── applied/<name>          the daemon's bare repo: main + approval tags; applied/ is the
    │                           manager's /applied, read-only
    ├── work/                   scratch repos, never bound into any container
    └── git-home/               the empty HOME every git runs with

`seed_repos` backs ``request_init_config(name)``. The proposed repo is built in ``work/`` and
renamed into place in one step, relative to an open descriptor of ``proposed/<name>/``: git
never runs inside ``proposed/``, so nothing the manager planted there (with an unprivileged
daemon it shares the daemon's uid and can write that directory) is ever read or run. The seed
commit goes into the applied repo as ``main``, so the manager's first proposal builds on the
same history. A retry after a crash between the two steps finds
the applied repo and seeds the proposed one from its ``main``.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.resources
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import trio

from hyperhive.config_repo.applied import AppliedRepo
from hyperhive.errors import Conflict, RepoError

if TYPE_CHECKING:
    from collections.abc import Callable

    from hyperhive.config_repo.git import Git

__all__ = ["TEMPLATE_FILES", "RepoPaths", "seed_repos", "template_files"]

TEMPLATE_FILES: Final = ("agent.toml", "CLAUDE.md")
REPO_DIR: Final = "config"  # proposed/<name>/config: the repo itself
_COMPONENT: Final = re.compile(r"[a-z][a-z0-9-]{0,62}")


@attrs.frozen
class RepoPaths:
    """The layout above. Nothing here touches the disk except `ensure`."""

    root: Path

    @property
    def proposed_root(self) -> Path:
        return self.root / "proposed"

    @property
    def applied_root(self) -> Path:
        return self.root / "applied"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def git_home(self) -> Path:
        return self.root / "git-home"

    def proposed(self, name: str) -> Path:
        """The manager's working repo of ``name`` (its ``/agents/<name>/config``)."""
        return self.proposed_root / _component(name) / "config"

    def applied(self, name: str) -> Path:
        """The applied repo of ``name`` (the manager's ``/applied/<name>``)."""
        return self.applied_root / _component(name)

    def ensure(self) -> None:
        """Create the directories: the root, scratch and git home private to the daemon's
        user; ``proposed/`` and ``applied/`` walkable (they are bound into the manager)."""
        for path in (self.root, self.work, self.git_home):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in (self.proposed_root, self.applied_root):
            path.mkdir(parents=True, exist_ok=True, mode=0o755)


def template_files() -> dict[str, bytes]:
    """The files a new config repo starts with."""
    folder = importlib.resources.files("hyperhive.config_repo") / "template"
    return {name: (folder / name).read_bytes() for name in TEMPLATE_FILES}


async def seed_repos(git: Git, paths: RepoPaths, name: str, *, now: Callable[[], float]) -> str:
    """Create ``name``'s proposed and applied repos from the template; the seed commit's sha.

    Raises:
        Conflict: ``name`` already has a proposed repo (or something else is in its place).
        RepoError: git failed.
    """
    paths.ensure()
    if await trio.to_thread.run_sync(_taken, paths.proposed_root, _component(name)):
        raise Conflict(f"{name} already has a proposed config repo")
    applied = await _applied(git, paths, name, now)
    seed = await applied.main()
    build = Path(await trio.to_thread.run_sync(lambda: tempfile.mkdtemp(dir=paths.work)))
    try:
        tree = build / "repo"
        if seed is None:
            seed = await _first_commit(git, tree, name, now)
            await applied.git.run(
                applied.path, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                "--end-of-options", str(tree), "refs/heads/main",
            )  # fmt: skip
            await applied.set_initial_main(seed)
        else:
            await _clone_main(git, applied.path, tree, seed)
        await trio.to_thread.run_sync(_move_into, tree, paths.proposed_root, _component(name))
    finally:
        await trio.to_thread.run_sync(lambda: shutil.rmtree(build, ignore_errors=True))
    return seed


async def _applied(git: Git, paths: RepoPaths, name: str, now: Callable[[], float]) -> AppliedRepo:
    path = paths.applied(name)
    if await trio.to_thread.run_sync(os.path.isdir, path / "objects"):
        return AppliedRepo(git, path, work_dir=paths.work, now=now)
    await trio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))
    return await AppliedRepo.create(git, path, work_dir=paths.work, now=now)


async def _first_commit(git: Git, tree: Path, name: str, now: Callable[[], float]) -> str:
    await git.run(None, "init", "--quiet", "--template=", "--initial-branch=main", str(tree))
    for file, content in template_files().items():
        await trio.to_thread.run_sync((tree / file).write_bytes, content)
    git_dir, work_tree = tree / ".git", f"--work-tree={tree}"
    stamp = f"@{int(now())} +0000"
    await git.run(git_dir, work_tree, "add", "--all")
    await git.run(
        git_dir, work_tree, "commit", "--quiet", "--no-verify",
        "--message", f"seed the config of {name} from the template",
        env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
    )  # fmt: skip
    found = await git.run(git_dir, "rev-parse", "--verify", "refs/heads/main")
    return found.text.strip()


async def _clone_main(git: Git, applied: Path, tree: Path, seed: str) -> None:
    await git.run(None, "init", "--quiet", "--template=", "--initial-branch=main", str(tree))
    git_dir = tree / ".git"
    await git.run(
        git_dir, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
        "--end-of-options", str(applied), "refs/heads/main",
    )  # fmt: skip
    await git.run(git_dir, "update-ref", "refs/heads/main", seed)
    await git.run(git_dir, f"--work-tree={tree}", "reset", "--quiet", "--hard", "main")


_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _taken(root: Path, name: str) -> bool:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            inner = os.open(name, _DIR, dir_fd=fd)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # a symlink or a file where the agent's directory belongs
        try:
            os.stat(REPO_DIR, dir_fd=inner, follow_symlinks=False)
        except FileNotFoundError:
            return False
        finally:
            os.close(inner)
        return True
    finally:
        os.close(fd)


def _move_into(tree: Path, root: Path, name: str) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    inner = -1
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=fd)
        # Components relative to held descriptors, none followed if it is a symlink.
        # rename() replaces only an empty directory; anything else planted there refuses.
        inner = os.open(name, _DIR, dir_fd=fd)
        os.rename(tree, REPO_DIR, dst_dir_fd=inner)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR, errno.ELOOP):
            raise Conflict(f"{name} already has a proposed config repo") from exc
        raise RepoError(f"cannot put {name}'s proposed repo in place: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            if inner >= 0:
                os.close(inner)
            os.close(fd)


def _component(name: str) -> str:
    if not _COMPONENT.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid agent name for a config repo")
    return name
