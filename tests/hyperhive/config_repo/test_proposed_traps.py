"""A hostile proposed repo: every trap the manager can plant, armed, and none of them sprung.

Each test arms a trap in a real proposed repo, shows that an ordinary git run there springs it
(so the assertion that follows can fail), then imports a commit the daemon's way and checks that
nothing ran and nothing outside the repo was read.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive.config_repo.tags import Stage
from hyperhive.errors import RepoError

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.config_repo.applied import AppliedRepo
    from hyperhive.config_repo.seed import RepoPaths

    from .conftest import ManagerGit

TOML = 'model = "opus"\n'


def _script(path: Path, marker: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\ntouch {marker}\ncat\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def proposed(paths: RepoPaths, manager: ManagerGit) -> Path:
    repo = paths.proposed("alice")
    manager.init(repo)
    manager.commit(repo, {"agent.toml": TOML, "CLAUDE.md": "# hi\n"}, "seed")
    return repo


async def _import(applied: AppliedRepo, paths: RepoPaths, ref: str, id: int = 1) -> str:
    with trio.fail_after(60):
        return await applied.import_proposal(paths.proposed_root, "alice", ref, id)


def _sprung(markers: Path) -> list[str]:
    found = sorted(os.listdir(markers))
    for name in found:
        (markers / name).unlink()
    return found


async def test_hooks_fsmonitor_filters_and_textconv_never_run(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit, markers: Path,
    tmp_path: Path,
):  # fmt: skip
    hooks = proposed / ".git" / "hooks"
    for hook in ("pre-commit", "post-commit", "post-checkout", "reference-transaction",
                 "pre-auto-gc", "post-index-change", "fsmonitor-watchman"):  # fmt: skip
        _script(hooks / hook, markers / f"hook-{hook}")
    fsmonitor = _script(tmp_path / "fsmonitor", markers / "fsmonitor")
    clean = _script(tmp_path / "clean", markers / "filter")
    textconv = _script(tmp_path / "textconv", markers / "textconv")
    manager(proposed, "config", "core.fsmonitor", fsmonitor)
    manager(proposed, "config", "filter.evil.clean", clean)
    manager(proposed, "config", "filter.evil.smudge", clean)
    manager(proposed, "config", "filter.evil.required", "true")
    manager(proposed, "config", "diff.evil.textconv", textconv)
    manager(proposed, "config", "core.sshCommand", _script(tmp_path / "ssh", markers / "ssh"))
    manager(proposed, "config", "uploadpack.packObjectsHook",
            _script(tmp_path / "pack", markers / "pack-objects-hook"))  # fmt: skip
    (proposed / ".git" / "info").mkdir(exist_ok=True)
    (proposed / ".git" / "info" / "attributes").write_text("* filter=evil diff=evil\n")
    sha = manager.commit(proposed, {"agent.toml": TOML + "# two\n"}, "two")
    manager(proposed, "status")
    manager(proposed, "diff", "HEAD~1", "HEAD")
    armed = _sprung(markers)
    assert {"fsmonitor", "filter", "textconv", "hook-pre-commit", "hook-post-commit"} <= set(armed)

    fetched = await _import(applied, paths, sha[:10])

    assert fetched == sha
    assert _sprung(markers) == []
    assert (await applied.stages(1))[Stage.PROPOSAL].commit == sha
    assert await applied.read_file(sha, "agent.toml") == (TOML + "# two\n").encode()


async def test_a_symlinked_config_is_never_read(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit, markers: Path,
    tmp_path: Path,
):  # fmt: skip
    sha = manager(proposed, "rev-parse", "HEAD")
    elsewhere = tmp_path / "elsewhere.gitconfig"
    config = proposed / ".git" / "config"
    fsmonitor = _script(tmp_path / "fsmonitor", markers / "fsmonitor")
    elsewhere.write_text(config.read_text() + f"[core]\n\tfsmonitor = {fsmonitor}\n")
    config.unlink()
    config.symlink_to(elsewhere)
    manager(proposed, "status")
    assert _sprung(markers) == ["fsmonitor"]

    assert await _import(applied, paths, sha) == sha
    assert _sprung(markers) == []


async def test_alternates_are_never_followed(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit, tmp_path: Path
):
    # A repo the manager cannot read itself (say another agent's applied repo), whose objects
    # it would like the daemon to copy into a repo it can read.
    other = tmp_path / "other"
    manager.init(other)
    secret = manager.commit(other, {"secret.txt": "the other agent's data\n"}, "private")
    alternates = proposed / ".git" / "objects" / "info" / "alternates"
    alternates.write_text(f"{other / '.git' / 'objects'}\n")
    manager(proposed, "cat-file", "-e", secret)  # an ordinary git finds it through alternates

    with pytest.raises(RepoError, match=f"no commit {secret[:12]}"):
        await _import(applied, paths, secret[:12])
    done = await applied.git.run(applied.path, "cat-file", "-e", secret, ok_codes=(0, 1, 128))
    assert done.returncode != 0
    assert await applied.stages(1) == {}


async def test_a_symlinked_objects_dir_is_refused(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit, tmp_path: Path
):
    sha = manager(proposed, "rev-parse", "HEAD")
    objects = proposed / ".git" / "objects"
    shutil.move(objects, tmp_path / "moved-objects")
    objects.symlink_to(tmp_path / "moved-objects")
    manager(proposed, "cat-file", "-e", sha)

    with pytest.raises(RepoError, match=r"\.git/objects is a symlink or not a directory"):
        await _import(applied, paths, sha)


async def test_a_symlinked_git_dir_or_repo_or_gitfile_is_refused(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit, tmp_path: Path
):
    sha = manager(proposed, "rev-parse", "HEAD")
    real = tmp_path / "real-repo"
    shutil.move(proposed, real)
    proposed.symlink_to(real)
    manager(proposed, "cat-file", "-e", sha)
    with pytest.raises(RepoError, match="proposed repo 'alice' is a symlink"):
        await _import(applied, paths, sha)

    proposed.unlink()
    proposed.mkdir()
    (proposed / ".git").symlink_to(real / ".git")
    with pytest.raises(RepoError, match=r"alice: \.git is a symlink"):
        await _import(applied, paths, sha)

    (proposed / ".git").unlink()
    (proposed / ".git").write_text(f"gitdir: {real / '.git'}\n")
    manager(proposed, "cat-file", "-e", sha)
    with pytest.raises(RepoError, match=r"alice: \.git is a symlink or not a directory"):
        await _import(applied, paths, sha)


async def test_symlinked_and_special_object_files_are_skipped(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit, tmp_path: Path
):
    sha = manager(proposed, "rev-parse", "HEAD")
    loose = proposed / ".git" / "objects" / sha[:2] / sha[2:]
    assert loose.is_file()
    target = tmp_path / "commit-object"
    shutil.move(loose, target)
    loose.symlink_to(target)
    manager(proposed, "cat-file", "-e", sha)
    fifo_dir = proposed / ".git" / "objects" / "ff"
    fifo_dir.mkdir(exist_ok=True)
    os.mkfifo(fifo_dir / ("f" * 38))  # opening it for reading would block a naive reader

    with pytest.raises(RepoError, match=f"no commit {sha[:12]}"):
        await _import(applied, paths, sha)


async def test_packed_and_loose_objects_both_come_in(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit
):
    manager.commit(proposed, {"notes/a.md": "a\n"}, "a")
    manager(proposed, "gc", "--quiet")
    assert list((proposed / ".git" / "objects" / "pack").glob("*.pack"))
    sha = manager.commit(proposed, {"notes/b.md": "b\n"}, "b")

    assert await _import(applied, paths, sha[:7]) == sha
    assert await applied.read_file(sha, "notes/a.md") == b"a\n"
    assert await applied.read_file(sha, "notes/b.md") == b"b\n"
    log = await applied.git.run(applied.path, "rev-list", "--count", sha)
    assert log.text.strip() == "3"


@pytest.mark.parametrize("ref", ["main", "HEAD", "v1.0", "abc12", "x" * 40, "a" * 41, "HEAD~1"])
async def test_a_ref_that_is_not_a_sha_is_refused(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, ref: str
):
    from hyperhive.errors import BadRequest

    with pytest.raises(BadRequest, match="7 to 40 hex digits"):
        await _import(applied, paths, ref)
    assert await applied.history() == []


async def test_an_unknown_sha_and_a_missing_repo_are_sentences(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path
):
    with pytest.raises(RepoError, match="no commit deadbeef in alice's proposed repo"):
        await _import(applied, paths, "deadbeef")
    with pytest.raises(RepoError, match="proposed repo 'bob' does not exist"):
        with trio.fail_after(30):
            await applied.import_proposal(paths.proposed_root, "bob", "deadbeef", 1)


async def test_a_blob_over_the_limit_is_refused(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit,
    monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    import hyperhive.config_repo.applied as applied_module

    monkeypatch.setattr(applied_module, "MAX_BLOB", 1000)
    sha = manager.commit(proposed, {"big.bin": "x" * 5000}, "big")
    with pytest.raises(RepoError, match="holds a file larger than"):
        await _import(applied, paths, sha)
    assert await applied.stages(1) == {}


async def test_too_many_object_files_are_refused(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit
):
    from hyperhive.config_repo.objects import Limits

    sha = manager.commit(proposed, {f"f{i}": str(i) for i in range(10)}, "many")
    with trio.fail_after(30), pytest.raises(RepoError, match="more than 5 object files"):
        await applied.import_proposal(
            paths.proposed_root, "alice", sha, 1, limits=Limits(max_files=5)
        )
    with trio.fail_after(30), pytest.raises(RepoError, match="more than 100 bytes of objects"):
        await applied.import_proposal(
            paths.proposed_root, "alice", sha, 1, limits=Limits(max_bytes=100)
        )


async def test_scratch_repos_are_cleaned_up(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit
):
    sha = manager(proposed, "rev-parse", "HEAD")
    await _import(applied, paths, sha, 1)
    with pytest.raises(RepoError):
        await _import(applied, paths, "deadbeef", 2)
    assert os.listdir(paths.work) == []


async def test_a_directory_stuffed_with_symlinks_is_refused_early(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, tmp_path: Path
):
    from hyperhive.config_repo.objects import Limits

    fanout = proposed / ".git" / "objects" / "ab"
    fanout.mkdir(exist_ok=True)
    for index in range(600):
        (fanout / f"{index:038x}").symlink_to(tmp_path)
    sha = "ab" + "0" * 38
    with trio.fail_after(30), pytest.raises(RepoError, match="more than 532 entries"):
        await applied.import_proposal(
            paths.proposed_root, "alice", sha, 1, limits=Limits(max_files=10)
        )
