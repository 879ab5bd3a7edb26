"""Running the git CLI for the config repos: a clean environment, bounded output, a timeout.

Every git the daemon runs goes through `Git.run`. It starts from an empty environment, not the
daemon's: no inherited ``GIT_*`` variable can redirect it to another repository, object store or
config; ``GIT_CONFIG_NOSYSTEM`` and ``GIT_CONFIG_GLOBAL=/dev/null`` drop the system and user
config; ``HOME`` and ``XDG_CONFIG_HOME`` point at an empty directory the daemon owns. On top,
`SAFE_CONFIG` is passed as ``-c`` options, which outrank a repository's own config: hooks go to
``/dev/null``, ``core.fsmonitor`` is off, only the local ``file`` transport is allowed, and
received objects are checked (``transfer.fsckObjects``).

That still lets git read the config of the repository it is pointed at, which is why git is
never pointed at a proposed repo: `hyperhive.config_repo.objects` copies its objects out as
plain files, and git runs only on repositories the daemon made (see docs/approvals.md).

The CLI rather than a binding: git is already a dependency of every host, its environment knobs
are the documented way to ignore system and user config, ``transfer.fsckObjects`` checks what
comes in, a hung git can be killed on a timeout (a binding's blocking call in a thread cannot),
and what the daemon does is what an operator can repeat by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Final

import attrs
import trio

from hyperhive.errors import ConfigError, RepoError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

__all__ = ["DEFAULT_TIMEOUT", "IDENTITY", "SAFE_CONFIG", "Git", "Output", "clean_env"]

DEFAULT_TIMEOUT: Final = 120.0
DEFAULT_MAX_OUTPUT: Final = 4 * 1024 * 1024
_STDERR_TAIL: Final = 4096
_CHUNK: Final = 65536
IDENTITY: Final = ("hyperhive", "hyperhive@localhost")

# Passed as -c to every git; command-line config wins over a repository's own.
SAFE_CONFIG: Final[tuple[tuple[str, str], ...]] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),
    ("core.sshCommand", "false"),
    ("core.gitProxy", ""),
    ("protocol.allow", "never"),
    ("protocol.file.allow", "always"),
    ("transfer.fsckObjects", "true"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("init.defaultBranch", "main"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("advice.detachedHead", "false"),
)


def clean_env(home: Path, git: str) -> dict[str, str]:
    """The whole environment git runs with: nothing of the daemon's is inherited."""
    name, email = IDENTITY
    return {
        "PATH": os.pathsep.join(dict.fromkeys([os.path.dirname(git), "/usr/bin", "/bin"])),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "LC_ALL": "C",
        "TZ": "UTC",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


@attrs.frozen
class Output:
    """What one git run printed: stdout (at most the cap), whether it was cut, its exit code."""

    stdout: bytes
    returncode: int
    truncated: bool = False
    stderr: str = ""

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


class Git:
    """The git CLI with a clean environment (module docstring).

    ``home`` must be an empty directory the daemon owns (it is created if missing).

    Raises:
        ConfigError: no git binary was found.
    """

    def __init__(
        self, home: Path, *, executable: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        found = executable or shutil.which("git")
        if found is None:
            raise ConfigError("no git binary on PATH: install git (apt-get install git)")
        self.executable = found
        self.timeout = timeout
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._env = clean_env(home, found)

    def argv(
        self, git_dir: Path | None, args: Sequence[str], config: Mapping[str, str] | None = None
    ) -> list[str]:
        """The full command line for ``args`` on ``git_dir`` (pure)."""
        argv = [self.executable]
        for key, value in (*SAFE_CONFIG, *(config or {}).items()):
            argv += ["-c", f"{key}={value}"]
        if git_dir is not None:
            argv.append(f"--git-dir={git_dir}")
        return argv + list(args)

    async def run(
        self,
        git_dir: Path | None,
        *args: str,
        input: bytes = b"",
        max_output: int = DEFAULT_MAX_OUTPUT,
        truncate: bool = False,
        ok_codes: Sequence[int] = (0,),
        env: Mapping[str, str] | None = None,
        config: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Output:
        """Run ``git args`` on ``git_dir`` and return its output.

        Output past ``max_output`` bytes stops the process: with ``truncate`` the first
        ``max_output`` bytes come back marked truncated, otherwise it is an error. ``env`` adds
        to the clean environment, ``config`` to `SAFE_CONFIG` (both are the daemon's own
        values, never a repo's).

        Raises:
            RepoError: git exited with a code outside ``ok_codes``, printed too much, or ran
                past the timeout; the text carries the tail of its stderr.

        Cancellation: the git process is killed and waited for.
        """
        argv = self.argv(git_dir, args, config)
        what = f"git {args[0]}" if args else "git"
        stdout = bytearray()
        stderr = bytearray()
        cut = False
        failed: OSError | None = None
        with trio.move_on_after(self.timeout) as timer:
            async with trio.open_nursery() as nursery:
                try:
                    process: trio.Process = await nursery.start(
                        _run, argv, {**self._env, **(env or {})}, input, cwd
                    )
                except OSError as exc:
                    failed = exc  # raised below: inside the nursery it would be a group
                else:
                    assert process.stdout is not None
                    assert process.stderr is not None
                    nursery.start_soon(_tail, process.stderr, stderr)
                    cut = await _read(process.stdout, stdout, max_output)
                    if cut:
                        process.kill()
        if failed is not None:
            raise RepoError(f"cannot run git ({self.executable}): {failed.strerror}") from failed
        if timer.cancelled_caught:
            raise RepoError(f"{what} took longer than {self.timeout:g} s and was stopped")
        if cut and not truncate:
            raise RepoError(f"{what} printed more than {max_output} bytes and was stopped")
        code = process.returncode
        assert code is not None
        if not cut and code not in ok_codes:
            raise RepoError(f"{what} failed (exit {code}): {_last_words(stderr)}")
        return Output(bytes(stdout[:max_output]), code, cut, _last_words(stderr))


async def _run(
    argv: list[str],
    env: dict[str, str],
    input: bytes,
    cwd: Path | None,
    *,
    task_status: trio.TaskStatus[trio.Process],
) -> None:
    await trio.run_process(
        argv,
        stdin=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
        env=env,
        cwd=cwd,
        task_status=task_status,
    )


async def _read(stream: trio.abc.ReceiveStream, into: bytearray, cap: int) -> bool:
    """Read ``stream`` to its end into ``into``; True as soon as it passes ``cap`` bytes."""
    while chunk := await stream.receive_some(_CHUNK):
        into += chunk
        if len(into) > cap:
            return True
    return False


async def _tail(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    while chunk := await stream.receive_some(_CHUNK):
        into += chunk
        del into[: max(0, len(into) - _STDERR_TAIL)]


def _last_words(stderr: bytes | bytearray) -> str:
    text = bytes(stderr).decode("utf-8", errors="replace").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-3:]) or "no message"
