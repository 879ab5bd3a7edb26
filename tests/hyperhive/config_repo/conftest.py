"""Fixtures for the config repo tests: real git, real repos under tmp_path.

`ManagerGit` (`hyperhive.testing.manager_git`) is git as the manager would run it in its own
repo: an ordinary git with its own HOME, none of the daemon's precautions. Tests use it to build
proposed repos and to arm traps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hyperhive.config_repo.applied import AppliedRepo
from hyperhive.config_repo.git import Git
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.testing.manager_git import ManagerGit

if TYPE_CHECKING:
    from pathlib import Path


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


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
