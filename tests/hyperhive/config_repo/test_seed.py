"""Seeding an agent's pair of config repos from the template, against real git."""

from __future__ import annotations

import os
import re
import shutil
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive.config_repo.agent_toml import AgentConfig, parse_agent_toml
from hyperhive.config_repo.applied import AppliedRepo
from hyperhive.config_repo.seed import seed_repos, template_files
from hyperhive.errors import Conflict

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.config_repo.git import Git
    from hyperhive.config_repo.seed import RepoPaths

    from .conftest import Clock, ManagerGit


async def _seed(git: Git, paths: RepoPaths, clock: Clock, name: str = "alice") -> str:
    with trio.fail_after(60):
        return await seed_repos(git, paths, name, now=clock)


def test_the_template_documents_exactly_the_defaults() -> None:
    files = template_files()
    assert set(files) == {"agent.toml", "CLAUDE.md"}
    assert parse_agent_toml(files["agent.toml"].decode()) == AgentConfig()
    # Uncommenting every example setting gives a valid config, so the examples stay honest.
    setting = re.compile(r"# (\[\[?[a-z_.]+\]\]?|[A-Za-z_]+ = .*)")
    lines = files["agent.toml"].decode().splitlines()
    uncommented = "\n".join(line[2:] if setting.fullmatch(line) else line for line in lines)
    example = parse_agent_toml(uncommented)
    assert example.model == "claude-sonnet-4-5"
    assert example.secrets["GITHUB_TOKEN"].target == "HIVE_GITHUB_TOKEN"
    assert example.mcp_servers["notes"].args == ("--dir", "/state/notes")
    assert example.binds[0].target == "/data"
    assert example.limits.memory == 2 << 30


async def test_both_repos_start_from_one_seed_commit(
    git: Git, paths: RepoPaths, clock: Clock, manager: ManagerGit
):
    sha = await _seed(git, paths, clock)

    applied = AppliedRepo(git, paths.applied("alice"), work_dir=paths.work, now=clock)
    assert await applied.main() == sha
    assert await applied.history() == []
    proposed = paths.proposed("alice")
    assert manager(proposed, "rev-parse", "HEAD") == sha
    assert manager(proposed, "status", "--porcelain") == ""
    for name, content in template_files().items():
        assert (proposed / name).read_bytes() == content
        assert await applied.read_file(sha, name) == content
    assert await applied.agent_config(sha) == AgentConfig()
    assert os.listdir(paths.work) == []
    # Nothing of the daemon's filesystem is recorded in the repo the manager gets.
    assert str(paths.applied_root) not in (proposed / ".git" / "config").read_text()
    assert not (proposed / ".git" / "hooks").exists()

    # The manager works there with an ordinary git, and the daemon takes its commit in.
    (proposed / "agent.toml").write_text('model = "opus"\n')
    change = manager.commit(proposed, {}, "use opus")
    with trio.fail_after(60):
        assert await applied.import_proposal(paths.proposed_root, "alice", change, 1) == change
    assert await applied.is_fast_forward(change)


async def test_a_second_seed_is_refused(git: Git, paths: RepoPaths, clock: Clock):
    await _seed(git, paths, clock)
    with pytest.raises(Conflict, match="already has a proposed config repo"):
        await _seed(git, paths, clock)


async def test_something_planted_in_its_place_is_left_alone(
    git: Git, paths: RepoPaths, clock: Clock, tmp_path: Path
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("mine")
    paths.proposed("alice").parent.mkdir()
    paths.proposed("alice").symlink_to(elsewhere)
    with pytest.raises(Conflict, match="already has a proposed config repo"):
        await _seed(git, paths, clock)
    assert sorted(os.listdir(elsewhere)) == ["keep"]
    assert paths.proposed("alice").is_symlink()


async def test_a_retry_after_a_crash_reuses_the_applied_main(
    git: Git, paths: RepoPaths, clock: Clock, manager: ManagerGit
):
    sha = await _seed(git, paths, clock)
    shutil.rmtree(paths.proposed("alice"))  # the crash: applied made, proposed not moved in
    clock.now += 3600

    assert await _seed(git, paths, clock) == sha
    assert manager(paths.proposed("alice"), "rev-parse", "HEAD") == sha
    assert (paths.proposed("alice") / "agent.toml").read_bytes() == template_files()["agent.toml"]


async def test_each_agent_gets_its_own_pair(git: Git, paths: RepoPaths, clock: Clock):
    alice = await _seed(git, paths, clock, "alice")
    clock.now += 1
    bob = await _seed(git, paths, clock, "bob")
    assert alice != bob  # the name is in the seed's message
    assert sorted(os.listdir(paths.proposed_root)) == ["alice", "bob"]
    assert sorted(os.listdir(paths.applied_root)) == ["alice", "bob"]
    assert os.listdir(paths.proposed_root / "alice") == ["config"]


def test_names_that_could_leave_the_directory_are_refused(paths: RepoPaths) -> None:
    for name in ("../x", "a/b", "", ".git", "A"):
        with pytest.raises(ValueError, match="not a valid agent name"):
            paths.proposed(name)
