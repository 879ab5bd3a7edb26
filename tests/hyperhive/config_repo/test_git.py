"""The git runner: a clean environment, hooks off, bounded output, a timeout, readable errors."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive.config_repo.git import Git, clean_env
from hyperhive.errors import RepoError

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import ManagerGit


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_the_environment_is_built_from_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GIT_DIR", "/somewhere/else")
    monkeypatch.setenv("GIT_SSH_COMMAND", "touch /tmp/pwned")
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    env = clean_env(tmp_path / "home", "/usr/bin/git")
    assert "GIT_DIR" not in env
    assert "GIT_SSH_COMMAND" not in env
    assert "SECRET_TOKEN" not in env
    assert env["HOME"] == str(tmp_path / "home")
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"


async def test_no_inherited_global_or_system_config_reaches_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    leaky = tmp_path / "leaky.gitconfig"
    leaky.write_text("[user]\n\tname = leaked\n[alias]\n\tst = status\n")
    home = tmp_path / "daemon-home"
    home.mkdir()
    (home / ".gitconfig").write_text(leaky.read_text())
    # Everything the daemon's own environment could carry to point git at foreign config.
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(leaky))
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(leaky))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.email")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "leaked@example.com")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'user.signingkey'='leaked'")
    git = Git(tmp_path / "git-home")
    repo = tmp_path / "repo.git"
    with trio.fail_after(30):
        await git.run(None, "init", "--quiet", "--bare", "--template=", str(repo))
        listed = await git.run(repo, "config", "--list", "--show-origin")
    origins = {line.split("\t", 1)[0] for line in listed.text.splitlines()}
    assert origins <= {"command line:", f"file:{repo}/config"}
    assert "leaked" not in listed.text
    assert "alias.st" not in listed.text
    assert "core.hookspath=/dev/null" in listed.text.lower()


async def test_hooks_of_a_repo_never_run(tmp_path: Path, manager: ManagerGit):
    marker = tmp_path / "hook-ran"
    work = tmp_path / "work"
    manager.init(work)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("pre-commit", "commit-msg", "post-commit", "reference-transaction"):
        _script(work / ".git" / "hooks" / hook, f"touch {marker}")
        _script(hooks / hook, f"touch {marker}")
    (work / "f").write_text("x")
    git = Git(tmp_path / "git-home")
    with trio.fail_after(30):
        for hooks_path in (None, str(hooks)):
            if hooks_path:
                manager(work, "config", "core.hooksPath", hooks_path)
            await git.run(work / ".git", f"--work-tree={work}", "add", "f")
            await git.run(
                work / ".git", f"--work-tree={work}", "commit", "--quiet", "-m", "x",
                "--allow-empty",
            )  # fmt: skip
    assert not marker.exists()
    # The trap is live for an ordinary git, so the check above could fail.
    manager(work, "commit", "--quiet", "--allow-empty", "-m", "y")
    assert marker.exists()


async def test_a_failure_says_what_git_said(tmp_path: Path):
    git = Git(tmp_path / "git-home")
    repo = tmp_path / "repo.git"
    with trio.fail_after(30):
        await git.run(None, "init", "--quiet", "--bare", "--template=", str(repo))
        with pytest.raises(
            RepoError, match=r"git rev-parse failed \(exit 128\): .*Needed a single"
        ):
            await git.run(repo, "rev-parse", "--verify", "nothing-here")
        done = await git.run(repo, "rev-parse", "--verify", "--quiet", "x", ok_codes=(0, 1))
    assert done.returncode == 1


async def test_output_past_the_cap_stops_git(tmp_path: Path):
    git = Git(tmp_path / "git-home")
    repo = tmp_path / "repo.git"
    blob = os.urandom(300_000)
    with trio.fail_after(30):
        await git.run(None, "init", "--quiet", "--bare", "--template=", str(repo))
        written = await git.run(repo, "hash-object", "-w", "--stdin", input=blob)
        oid = written.text.strip()
        with pytest.raises(RepoError, match="printed more than 1000 bytes"):
            await git.run(repo, "cat-file", "blob", oid, max_output=1000)
        cut = await git.run(repo, "cat-file", "blob", oid, max_output=1000, truncate=True)
        whole = await git.run(repo, "cat-file", "blob", oid)
    assert cut.truncated
    assert cut.stdout == blob[:1000]
    assert whole.stdout == blob
    assert not whole.truncated


async def test_a_hung_git_is_killed_at_the_timeout(tmp_path: Path):
    # A stand-in for a git that never returns (real time: a process test).
    hang = _script(tmp_path / "fake-git", "exec sleep 30")
    git = Git(tmp_path / "git-home", executable=str(hang), timeout=0.5)
    with trio.fail_after(10), pytest.raises(RepoError, match=r"longer than 0\.5 s"):
        await git.run(None, "status")


def test_a_missing_git_is_a_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from hyperhive.errors import ConfigError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="install git"):
        Git(tmp_path / "git-home")
