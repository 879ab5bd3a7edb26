"""The applied repo against real git: the tag walk, main, reading commits, diffs, exports."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive.config_repo.agent_toml import AgentConfig
from hyperhive.config_repo.tags import Stage
from hyperhive.errors import ConfigError, Conflict, RepoError

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.config_repo.applied import AppliedRepo
    from hyperhive.config_repo.seed import RepoPaths

    from .conftest import Clock, ManagerGit


@pytest.fixture
def proposed(paths: RepoPaths, manager: ManagerGit) -> Path:
    repo = paths.proposed("alice")
    manager.init(repo)
    return repo


async def _propose(applied: AppliedRepo, paths: RepoPaths, sha: str, id: int) -> str:
    with trio.fail_after(60):
        return await applied.import_proposal(paths.proposed_root, "alice", sha, id)


async def _tags_at(applied: AppliedRepo, commit: str) -> set[str]:
    listed = await applied.git.run(applied.path, "tag", "--points-at", commit)
    return set(listed.text.split())


async def test_the_happy_walk_ends_with_main_on_the_commit(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit, clock: Clock
):
    sha = manager.commit(proposed, {"agent.toml": 'model = "opus"\n'})
    assert await _propose(applied, paths, sha, 7) == sha
    for stage in (Stage.APPROVED, Stage.BUILDING):
        clock.now += 60
        await applied.advance(7, stage)
        assert await applied.main() is None  # main moves only on deployed/
    clock.now += 60
    deployed = await applied.advance(7, Stage.DEPLOYED)

    assert await applied.main() == sha
    assert deployed.commit == sha
    assert await _tags_at(applied, sha) == {
        "proposal/7", "approved/7", "building/7", "deployed/7"
    }  # fmt: skip
    stages = await applied.stages(7)
    assert [stages[s].at for s in (Stage.PROPOSAL, Stage.APPROVED, Stage.DEPLOYED)] == [
        1_700_000_000.0, 1_700_000_060.0, 1_700_000_180.0,
    ]  # fmt: skip
    assert stages[Stage.APPROVED].message == "approved by the operator"
    kind = await applied.git.run(applied.path, "cat-file", "-t", "refs/tags/approved/7")
    assert kind.text.strip() == "tag"


async def test_denied_and_failed_carry_their_reason(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit
):
    one = manager.commit(proposed, {"agent.toml": ""}, "one")
    two = manager.commit(proposed, {"agent.toml": "# two\n"}, "two")
    await _propose(applied, paths, one, 1)
    await _propose(applied, paths, two, 2)
    await applied.advance(1, Stage.DENIED, "no network for this one,\nplease\x1b[31m")
    await applied.advance(2, Stage.APPROVED)
    await applied.advance(2, Stage.BUILDING)
    await applied.advance(2, Stage.FAILED, "build: pip exited 1")

    shown = await applied.git.run(
        applied.path, "for-each-ref", "--format=%(contents)", "refs/tags/denied/1"
    )
    assert shown.text.strip() == "no network for this one,\nplease?[31m"
    history = await applied.history()
    assert [(t.id, t.stage) for t in history] == [
        (1, Stage.PROPOSAL), (1, Stage.DENIED),
        (2, Stage.PROPOSAL), (2, Stage.APPROVED), (2, Stage.BUILDING), (2, Stage.FAILED),
    ]  # fmt: skip
    assert history[-1].message == "build: pip exited 1"
    assert await applied.main() is None


@pytest.mark.parametrize(
    ("walk", "illegal"),
    [
        ((), Stage.BUILDING),
        ((), Stage.DEPLOYED),
        ((Stage.APPROVED,), Stage.DENIED),
        ((Stage.APPROVED,), Stage.APPROVED),
        ((Stage.APPROVED,), Stage.DEPLOYED),
        ((Stage.DENIED,), Stage.APPROVED),
        ((), Stage.FAILED),
    ],
)
async def test_an_illegal_step_is_refused_and_changes_nothing(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit,
    walk: tuple[Stage, ...], illegal: Stage,
):  # fmt: skip
    sha = manager.commit(proposed, {"agent.toml": ""})
    await _propose(applied, paths, sha, 3)
    for stage in walk:
        await applied.advance(3, stage, "reason")
    before = await applied.history()
    with pytest.raises(Conflict, match=f"cannot tag {illegal.value}/3"):
        await applied.advance(3, illegal, "reason")
    assert await applied.history() == before
    assert await applied.main() is None


async def test_an_id_is_proposed_once(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit
):
    sha = manager.commit(proposed, {"agent.toml": ""})
    await _propose(applied, paths, sha, 1)
    other = manager.commit(proposed, {"agent.toml": "# other\n"})
    with pytest.raises(Conflict, match="proposal/1"):
        await _propose(applied, paths, other, 1)
    assert (await applied.stages(1))[Stage.PROPOSAL].commit == sha


async def _deploy(applied: AppliedRepo, id: int) -> None:
    for stage in (Stage.APPROVED, Stage.BUILDING, Stage.DEPLOYED):
        await applied.advance(id, stage)


async def test_main_only_fast_forwards_and_rolls_back_to_a_deployed_commit(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit
):
    base = manager.commit(proposed, {"agent.toml": ""}, "base")
    await _propose(applied, paths, base, 1)
    await _deploy(applied, 1)
    left = manager.commit(proposed, {"agent.toml": "# left\n"}, "left")
    manager(proposed, "checkout", "--quiet", "-b", "side", base)
    right = manager.commit(proposed, {"agent.toml": "# right\n"}, "right")
    await _propose(applied, paths, left, 2)
    await _propose(applied, paths, right, 3)
    await _deploy(applied, 2)
    assert await applied.main() == left

    await applied.advance(3, Stage.APPROVED)
    await applied.advance(3, Stage.BUILDING)
    assert not await applied.is_fast_forward(right)
    with pytest.raises(Conflict, match="does not build on the deployed config"):
        await applied.advance(3, Stage.DEPLOYED)
    assert await applied.main() == left
    assert Stage.DEPLOYED not in await applied.stages(3)

    # A crash loop after deploy 2: back to deploy 1, and 2 is marked failed.
    assert await applied.rewind_main(1) == base
    await applied.advance(2, Stage.FAILED, "rolled back: crash loop")
    assert await applied.main() == base
    stages = await applied.stages(2)
    assert Stage.DEPLOYED in stages
    assert stages[Stage.FAILED].message == "rolled back: crash loop"
    with pytest.raises(Conflict, match="never deployed"):
        await applied.rewind_main(3)


async def test_agent_config_reads_the_commit_not_a_checkout(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit
):
    good = manager.commit(proposed, {"agent.toml": 'model = "opus"\n[env]\nA = "1"\n'})
    bad = manager.commit(proposed, {"agent.toml": "[network]\nallow = ['nope']\n"})
    (proposed / "agent.toml").unlink()
    (proposed / "agent.toml").symlink_to("/etc/passwd")
    linked = manager.commit(proposed, {})
    manager(proposed, "rm", "--quiet", "agent.toml")
    missing = manager.commit(proposed, {"README": "x"})
    for id, sha in enumerate((good, bad, linked, missing), start=1):
        await _propose(applied, paths, sha, id)

    config = await applied.agent_config(good)
    assert config == AgentConfig(model="opus", env={"A": "1"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^agent.toml: network.allow\[0\]: 'nope' is not HOST"):
        await applied.agent_config(bad)
    with pytest.raises(ConfigError, match="not a regular file"):
        await applied.agent_config(linked)
    with pytest.raises(ConfigError, match="missing at the root"):
        await applied.agent_config(missing)
    assert await applied.read_file(missing, "agent.toml") is None


async def test_the_diff_is_unified_and_bounded(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit
):
    one = manager.commit(proposed, {"agent.toml": 'model = "opus"\n'}, "one")
    two = manager.commit(
        proposed, {"agent.toml": 'model = "sonnet"\n', "big.md": "line\n" * 20000}, "two"
    )
    await _propose(applied, paths, one, 1)
    await _propose(applied, paths, two, 2)

    small = await applied.diff(one, two, max_bytes=1_000_000)
    assert not small.truncated
    assert '-model = "opus"\n+model = "sonnet"\n' in small.text
    assert "diff --git a/big.md b/big.md" in small.text
    cut = await applied.diff(one, two, max_bytes=2000)
    assert cut.truncated
    assert cut.text.endswith("[diff cut at 1 KiB]\n")
    assert len(cut.text) < 2100
    spawn = await applied.diff(None, one)
    assert '+model = "opus"' in spawn.text
    assert "new file mode 100644" in spawn.text


async def test_export_writes_plain_files_only(
    applied: AppliedRepo, paths: RepoPaths, proposed: Path, manager: ManagerGit, tmp_path: Path
):
    (proposed / "skills").mkdir()
    (proposed / "skills" / "link").symlink_to("/etc/shadow")
    (proposed / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (proposed / "run.sh").chmod(0o755)
    sha = manager.commit(proposed, {"agent.toml": "", "skills/a/SKILL.md": "# a\n", "e": ""})
    await _propose(applied, paths, sha, 1)
    dest = tmp_path / "deploy"
    dest.mkdir()

    with trio.fail_after(30):
        skipped = await applied.export_tree(sha, dest)

    assert skipped == ["skills/link"]
    assert (dest / "skills" / "a" / "SKILL.md").read_text() == "# a\n"
    assert (dest / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "agent.toml").stat().st_mode & 0o777 == 0o644
    assert (dest / "e").read_bytes() == b""
    assert not (dest / "skills" / "link").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["agent.toml", "e", "run.sh", "skills"]
    with pytest.raises(RepoError, match="more than 2 files"):
        await applied.export_tree(sha, tmp_path / "other", max_files=2)
