"""Fixtures for the config repo tests: real git, real repos under tmp_path.

`ManagerGit` is git as the manager would run it in its own repo: an ordinary git with its own
HOME, none of the daemon's precautions. Tests use it to build proposed repos and to arm traps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from hyperhive.config_repo.applied import AppliedRepo
from hyperhive.config_repo.git import Git
from hyperhive.config_repo.seed import RepoPaths

if TYPE_CHECKING:
    from pathlib import Path

GIT = shutil.which("git") or "git"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class ManagerGit:
    """Plain git with a HOME of its own, run synchronously (test set-up only)."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "manager",
            "GIT_AUTHOR_EMAIL": "manager@hive",
            "GIT_COMMITTER_NAME": "manager",
            "GIT_COMMITTER_EMAIL": "manager@hive",
        }

    def __call__(self, repo: Path, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [GIT, "-C", str(repo), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def init(self, repo: Path) -> None:
        repo.mkdir(parents=True, exist_ok=True)
        self(repo, "init", "--quiet", "--initial-branch=main")

    def commit(self, repo: Path, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self(repo, "add", "--all")
        self(repo, "commit", "--quiet", "--allow-empty", "-m", message)
        return self(repo, "rev-parse", "HEAD")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def paths(tmp_path: Path) -> RepoPaths:
    paths = RepoPaths(tmp_path / "configs")
    paths.ensure()
    return paths


@pytest.fixture
def git(paths: RepoPaths) -> Git:
    return Git(paths.git_home, timeout=60)


@pytest.fixture
def manager(tmp_path: Path) -> ManagerGit:
    return ManagerGit(tmp_path / "manager-home")


@pytest.fixture
async def applied(git: Git, paths: RepoPaths, clock: Clock) -> AppliedRepo:
    return await AppliedRepo.create(git, paths.applied("alice"), work_dir=paths.work, now=clock)
