"""An agent's applied repo: the daemon-owned record of what was proposed, decided and deployed.

A bare repository only the daemon writes (it may be bound read-only into the manager). Its
refs are ``main`` (the deployed config) and the approval tags of
`hyperhive.config_repo.tags`; every tag is annotated, so the tagger date says when each step
happened, and ``denied/`` and ``failed/`` carry the reason.

`import_proposal` is the only way anything of a proposed repo gets in: its object files are
copied out without following links (`hyperhive.config_repo.objects`), the pack indexes are
rebuilt, the commit is resolved and its blobs' sizes checked in a scratch repository the daemon
made, and the commit is fetched from there with ``transfer.fsckObjects``. No git command runs
on the proposed repo itself.

One writer: the approvals actor. Nothing here locks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import trio

from hyperhive.config_repo.agent_toml import AgentConfig, parse_agent_toml
from hyperhive.config_repo.objects import Limits, copy_objects
from hyperhive.config_repo.tags import (
    ANNOTATED,
    Stage,
    annotation,
    current_stage,
    parse_tag,
    tag_name,
    transition_refusal,
    validate_commit_ref,
)
from hyperhive.errors import ConfigError, Conflict, RepoError

if TYPE_CHECKING:
    from collections.abc import Callable

    from hyperhive.config_repo.git import Git

__all__ = [
    "AGENT_TOML",
    "MAX_BLOB",
    "MAX_DIFF",
    "AppliedRepo",
    "BoundedDiff",
    "TagInfo",
]

AGENT_TOML: Final = "agent.toml"
MAX_BLOB: Final = 16 * 1024 * 1024
MAX_DIFF: Final = 256 * 1024
MAX_AGENT_TOML: Final = 256 * 1024
MAX_EXPORT: Final = 64 * 1024 * 1024
_NEW_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_STAGES: Final = tuple(Stage)
_DEFAULT_MESSAGES: Final = {
    Stage.PROPOSAL: "proposed by the manager",
    Stage.APPROVED: "approved by the operator",
    Stage.BUILDING: "build started",
    Stage.DEPLOYED: "deployed",
}
_FILE_MODES: Final = ("100644", "100755")
_LIMITS: Final = Limits()


@attrs.frozen
class TagInfo:
    """One approval tag: which step of which approval, on which commit, when, and why."""

    stage: Stage
    id: int
    commit: str
    at: float
    message: str


@attrs.frozen
class BoundedDiff:
    """A unified diff, cut at a size limit (``truncated`` says so)."""

    text: str
    truncated: bool


class AppliedRepo:
    """The applied repo at ``path`` (module docstring).

    ``work_dir`` is a daemon-private directory for scratch repositories; ``now`` gives the
    wall-clock time stamped on tags.

    Raises (every method): ``RepoError`` when git fails or a proposed repo breaks the rules;
    ``Conflict`` when a tag is not the legal next step.
    """

    def __init__(self, git: Git, path: Path, *, work_dir: Path, now: Callable[[], float]) -> None:
        self.git = git
        self.path = path
        self.work_dir = work_dir
        self._now = now

    @classmethod
    async def create(
        cls, git: Git, path: Path, *, work_dir: Path, now: Callable[[], float]
    ) -> AppliedRepo:
        """Make a new, empty bare repo at ``path`` (which must not exist yet)."""
        if await trio.to_thread.run_sync(os.path.lexists, path):
            raise Conflict(f"{path} already exists")
        await git.run(None, "init", "--quiet", "--bare", "--template=", str(path))
        return cls(git, path, work_dir=work_dir, now=now)

    # ----------------------------------------------------------------------------------------
    # Getting a proposal in

    async def import_proposal(
        self, proposed_root: Path, name: str, commit_ref: str, id: int, *, limits: Limits = _LIMITS
    ) -> str:
        """Bring commit ``commit_ref`` of proposed repo ``proposed_root/name`` in as
        ``proposal/<id>``; return its full sha.

        Raises:
            BadRequest: ``commit_ref`` is not 7 to 40 hex digits.
            RepoError: the proposed repo is unreadable, breaks the rules, or lacks the commit.
            Conflict: ``id`` already has tags.
        """
        ref = validate_commit_ref(commit_ref)
        await self._check_next(id, Stage.PROPOSAL)
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        scratch = Path(
            await trio.to_thread.run_sync(
                lambda: tempfile.mkdtemp(prefix="import-", dir=self.work_dir)
            )
        )
        try:
            await self.git.run(None, "init", "--quiet", "--bare", "--template=", str(scratch))
            sha = await self._stage_objects(scratch, proposed_root, name, ref, limits)
            await self.git.run(
                self.path, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                "--end-of-options", str(scratch), sha,
                config={"uploadpack.allowAnySHA1InWant": "true"},
            )  # fmt: skip
        finally:
            await trio.to_thread.run_sync(lambda: shutil.rmtree(scratch, ignore_errors=True))
        await self._tag(Stage.PROPOSAL, id, sha, _DEFAULT_MESSAGES[Stage.PROPOSAL])
        return sha

    async def _stage_objects(
        self, scratch_dir: Path, proposed_root: Path, name: str, ref: str, limits: Limits
    ) -> str:
        objects = scratch_dir / "objects"
        stats = await trio.to_thread.run_sync(copy_objects, proposed_root, name, objects, limits)
        for pack in stats.packs:
            await self.git.run(scratch_dir, "index-pack", str(objects / "pack" / pack))
        found = await self.git.run(
            scratch_dir, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}",
            ok_codes=(0, 1, 128),
        )  # fmt: skip
        if found.returncode != 0:
            if "ambiguous" in found.stderr:
                raise RepoError(f"{ref} names more than one object in {name}'s proposed repo; "
                                "give more hex digits")  # fmt: skip
            raise RepoError(
                f"no commit {ref} in {name}'s proposed repo; commit there first and give "
                "that sha (git rev-parse HEAD)"
            )
        sha = found.text.strip()
        listed = await self.git.run(
            scratch_dir, "rev-list", "--objects", f"--filter=blob:limit={MAX_BLOB}",
            "--filter-print-omitted", "--end-of-options", sha,
        )  # fmt: skip
        big = [line[1:].split()[0] for line in listed.text.splitlines() if line.startswith("~")]
        if big:
            raise RepoError(
                f"commit {sha[:12]} holds a file larger than {MAX_BLOB // (1024 * 1024)} MiB "
                f"(blob {big[0][:12]}); keep large files out of config repos"
            )
        return sha

    # ----------------------------------------------------------------------------------------
    # Tags and main

    async def stages(self, id: int) -> dict[Stage, TagInfo]:
        """The tags approval ``id`` carries, by stage."""
        names = [f"refs/tags/{tag_name(stage, id)}" for stage in _STAGES]
        return {info.stage: info for info in await self._tags(*names)}

    async def history(self) -> list[TagInfo]:
        """Every approval tag, ordered by id and then by the order of the steps."""
        tags = await self._tags("refs/tags/")
        return sorted(tags, key=lambda info: (info.id, _STAGES.index(info.stage)))

    async def advance(self, id: int, stage: Stage, message: str | None = None) -> TagInfo:
        """Tag approval ``id``'s commit ``stage`` (not ``proposal``: see `import_proposal`).

        ``failed`` and ``denied`` need a ``message`` (the error, the operator's reason).
        ``deployed`` also moves ``main`` to the commit, which must be a fast-forward.

        Raises:
            Conflict: the step is not legal from where ``id`` stands, or ``main`` would not
                fast-forward (nothing is tagged then).
        """
        if stage is Stage.PROPOSAL:
            raise ValueError("proposal/ tags are set by import_proposal")
        if stage in ANNOTATED and not (message and message.strip()):
            raise ValueError(f"{stage.value}/ tags need a message")
        have = await self._check_next(id, stage)
        commit = have[Stage.PROPOSAL].commit
        main = await self.main()
        if stage is Stage.DEPLOYED and not await self.is_fast_forward(commit):
            raise Conflict(
                f"cannot deploy approval {id}: commit {commit[:12]} does not build on the "
                f"deployed config (main is {main[:12] if main else 'unset'}); the manager has "
                "to rebase its change onto main and propose it again"
            )
        info = await self._tag(stage, id, commit, message or _DEFAULT_MESSAGES[stage])
        if stage is Stage.DEPLOYED:
            await self._move_main(commit, main)
        return info

    async def rewind_main(self, to_id: int) -> str:
        """Point ``main`` back at the commit of ``deployed/<to_id>`` (a rollback); its sha.

        Raises:
            Conflict: ``to_id`` was never deployed.
        """
        have = await self.stages(to_id)
        if Stage.DEPLOYED not in have:
            raise Conflict(f"approval {to_id} was never deployed; cannot roll back to it")
        commit = have[Stage.DEPLOYED].commit
        await self._move_main(commit, await self.main())
        return commit

    async def main(self) -> str | None:
        """The sha ``main`` points at, or None before the first commit."""
        found = await self.git.run(
            self.path, "rev-parse", "--verify", "--quiet", "refs/heads/main", ok_codes=(0, 1)
        )
        if found.returncode != 0:
            return None
        return found.text.strip() or None

    async def set_initial_main(self, commit: str) -> None:
        """Point a fresh repo's ``main`` at ``commit`` (the seed); refused if it is set."""
        await self.git.run(self.path, "update-ref", "refs/heads/main", commit, "")

    async def is_fast_forward(self, commit: str) -> bool:
        """Whether moving ``main`` to ``commit`` only adds history (true when main is unset)."""
        main = await self.main()
        if main is None:
            return True
        done = await self.git.run(
            self.path, "merge-base", "--is-ancestor", main, commit, ok_codes=(0, 1)
        )
        return done.returncode == 0

    # ----------------------------------------------------------------------------------------
    # Reading commits

    async def read_file(self, commit: str, path: str, *, max_bytes: int = MAX_BLOB) -> bytes | None:
        """The content of regular file ``path`` at ``commit``; None if there is none.

        Raises:
            RepoError: ``path`` is a symlink, a directory or a submodule there, or it is larger
                than ``max_bytes``.
        """
        listed = await self.git.run(
            self.path, "ls-tree", "-z", "--full-tree", "--end-of-options", commit, "--", path
        )
        entry = listed.stdout.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        if not entry:
            return None
        mode, kind, oid = entry.split("\t", 1)[0].split()
        if kind != "blob" or mode not in _FILE_MODES:
            raise RepoError(f"{path} at {commit[:12]} is not a regular file (mode {mode})")
        blob = await self.git.run(self.path, "cat-file", "blob", oid, max_output=max_bytes)
        return blob.stdout

    async def agent_config(self, commit: str) -> AgentConfig:
        """The validated ``agent.toml`` at ``commit``.

        Raises:
            ConfigError: missing, not UTF-8, too large or invalid; the text names the field.
        """
        try:
            raw = await self.read_file(commit, AGENT_TOML, max_bytes=MAX_AGENT_TOML)
        except RepoError as exc:
            raise ConfigError(f"{AGENT_TOML}: {exc}") from None
        if raw is None:
            raise ConfigError(f"{AGENT_TOML}: missing at the root of commit {commit[:12]}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{AGENT_TOML}: not UTF-8 (byte {exc.start})") from None
        return parse_agent_toml(text)

    async def diff(self, old: str | None, new: str, *, max_bytes: int = MAX_DIFF) -> BoundedDiff:
        """The unified diff from ``old`` (None: nothing) to ``new``, cut at ``max_bytes``."""
        if old is None:
            empty = await self.git.run(self.path, "hash-object", "-t", "tree", "--stdin")
            old = empty.text.strip()
        done = await self.git.run(
            self.path, "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--find-renames",
            "--end-of-options", old, new, "--",
            max_output=max_bytes, truncate=True,
        )  # fmt: skip
        text = done.text
        if done.truncated:
            text += f"\n[diff cut at {max_bytes // 1024} KiB]\n"
        return BoundedDiff(text, done.truncated)

    async def export_tree(
        self, commit: str, dest: Path, *, max_files: int = 2000, max_bytes: int = MAX_EXPORT
    ) -> list[str]:
        """Write the regular files of ``commit`` into ``dest``; return the paths left out.

        ``dest`` must be a new, empty, daemon-private directory (the deploy renames it into
        place). Symlinks and submodules are left out (and listed), never written: the daemon
        and the agent see plain files only.

        Raises:
            RepoError: more than ``max_files`` files or ``max_bytes`` bytes, or a path git
                itself would refuse to check out (``..``, ``.git``).
        """
        listed = await self.git.run(
            self.path, "ls-tree", "-r", "-z", "-l", "--full-tree", "--end-of-options", commit
        )
        files, skipped = _plan_export(listed.stdout, commit, max_files, max_bytes)
        if files:
            wanted = b"".join(oid + b"\n" for _, _, oid, _ in files)
            total = sum(size for _, _, _, size in files)
            batch = await self.git.run(
                self.path, "cat-file", "--batch", input=wanted,
                max_output=total + 128 * len(files),
            )  # fmt: skip
            contents = _split_batch(batch.stdout, [oid for _, _, oid, _ in files])
            plan = [
                (path, mode, data) for (path, mode, _, _), data in zip(files, contents, strict=True)
            ]
            await trio.to_thread.run_sync(_write_files, dest, plan)
        return skipped

    # ----------------------------------------------------------------------------------------

    async def _check_next(self, id: int, stage: Stage) -> dict[Stage, TagInfo]:
        have = await self.stages(id)
        refusal = transition_refusal(have.keys(), stage)
        if refusal is not None:
            where = current_stage(have.keys())
            raise Conflict(
                f"cannot tag {tag_name(stage, id)} in {self.path.name}: {refusal}"
                + (f" (it stands at {where.value}/)" if where else "")
            )
        return have

    async def _tag(self, stage: Stage, id: int, commit: str, message: str) -> TagInfo:
        at = self._now()
        text = annotation(message)
        await self.git.run(
            self.path, "tag", "--annotate", "--cleanup=verbatim", "--file=-",
            "--end-of-options", tag_name(stage, id), commit,
            input=text.encode() + b"\n", env={"GIT_COMMITTER_DATE": f"@{int(at)} +0000"},
        )  # fmt: skip
        return TagInfo(stage, id, commit, float(int(at)), text)

    async def _move_main(self, commit: str, old: str | None) -> None:
        await self.git.run(self.path, "update-ref", "refs/heads/main", commit, old or "")

    async def _tags(self, *patterns: str) -> list[TagInfo]:
        fields = "%(refname:strip=2)%00%(*objectname)%00%(creatordate:unix)%00%(contents)%00"
        listed = await self.git.run(
            self.path, "for-each-ref", f"--format={fields}", "--", *patterns
        )
        return _parse_tags(listed.text)


def _parse_tags(text: str) -> list[TagInfo]:
    parts = text.split("\0")
    found = []
    for index in range(0, len(parts) - 4, 4):
        name, commit, at, message = parts[index : index + 4]
        parsed = parse_tag(name.lstrip("\n"))
        if parsed is None or not commit:
            continue  # not one of ours, or a lightweight tag someone made by hand
        stage, id = parsed
        found.append(TagInfo(stage, id, commit, float(at or 0), message.rstrip("\n")))
    return found


def _plan_export(
    listing: bytes, commit: str, max_files: int, max_bytes: int
) -> tuple[list[tuple[list[bytes], str, bytes, int]], list[str]]:
    files: list[tuple[list[bytes], str, bytes, int]] = []
    skipped: list[str] = []
    total = 0
    for entry in filter(None, listing.split(b"\0")):
        meta, _, path = entry.partition(b"\t")
        mode, kind, oid, size = meta.split()
        shown = path.decode("utf-8", errors="replace")
        if kind != b"blob" or mode.decode() not in _FILE_MODES:
            skipped.append(shown)
            continue
        parts = path.split(b"/")
        if any(p in (b"", b".", b"..") or p.lower() == b".git" for p in parts):
            raise RepoError(f"commit {commit[:12]} has a path git would refuse: {shown!r}")
        total += int(size)
        files.append((parts, mode.decode(), oid, int(size)))
        if len(files) > max_files or total > max_bytes:
            raise RepoError(
                f"commit {commit[:12]} holds more than {max_files} files or "
                f"{max_bytes // (1024 * 1024)} MiB; keep config repos small"
            )
    return files, skipped


def _split_batch(output: bytes, oids: list[bytes]) -> list[bytes]:
    contents = []
    at = 0
    for oid in oids:
        end = output.index(b"\n", at)
        header = output[at:end].split()
        if len(header) != 3 or header[0] != oid or header[1] != b"blob":
            raise RepoError(f"git cat-file answered {output[at:end][:80]!r} for {oid.decode()}")
        size = int(header[2])
        contents.append(output[end + 1 : end + 1 + size])
        at = end + 1 + size + 1
    return contents


def _write_files(dest: Path, plan: list[tuple[list[bytes], str, bytes]]) -> None:
    root = os.open(dest, _DIR)
    try:
        for parts, mode, data in plan:
            folder = _enter(root, parts[:-1])
            try:
                perms = 0o755 if mode == "100755" else 0o644
                fd = os.open(parts[-1], _NEW_FILE, perms, dir_fd=folder)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            finally:
                if folder != root:
                    os.close(folder)
    finally:
        os.close(root)


def _enter(root: int, parts: list[bytes]) -> int:
    fd = root
    for part in parts:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o755, dir_fd=fd)
        next_fd = os.open(part, _DIR, dir_fd=fd)
        if fd != root:
            os.close(fd)
        fd = next_fd
    return fd
