"""Resolving an agent's secrets by reference, for the one caller that builds its environment.

``agent.toml`` names secrets, never holds them: ``GITHUB_TOKEN = "env:HIVE_GITHUB_TOKEN"``
reads the daemon's own environment, ``DB_PASSWORD = "file:/run/credentials/hyperhive/db"``
reads a file on the host. `resolve_secrets` turns those references into values when the agent
starts; the values go into the agent's process environment (which the bwrap backend passes as
bwrap's own environment, never as arguments, so they stay out of ``ps``) and nowhere else:

- `Secrets` has a ``repr`` and ``str`` that show names only, so logging it leaks nothing;
- errors name the secret and its reference, never a value;
- ``file:`` references must lie under one of the roots the operator configured; every component
  below the root is opened with ``O_NOFOLLOW`` (a symlink is refused), the file must be a
  regular file of at most `MAX_SECRET` bytes, UTF-8, without NUL. One trailing newline is
  dropped (``echo token > file`` is the usual way to write one).

Synchronous file reads: call it from a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final

from hyperhive.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

    from hyperhive.config_repo.agent_toml import SecretRef

__all__ = ["MAX_SECRET", "Secrets", "resolve_secrets"]

MAX_SECRET: Final = 64 * 1024
_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Secrets:
    """Resolved secret values by variable name; shows only the names when printed."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def names(self) -> list[str]:
        return sorted(self._values)

    def as_env(self) -> dict[str, str]:
        """The values, for the agent's process environment and nothing else."""
        return dict(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Secrets({', '.join(f'{name}=<hidden>' for name in self.names())})"

    __str__ = __repr__


def resolve_secrets(
    refs: Mapping[str, SecretRef], *, environ: Mapping[str, str], file_roots: Sequence[Path]
) -> Secrets:
    """The value of every secret in ``refs``.

    ``environ`` is the daemon's environment (``env:`` references); ``file_roots`` are the
    directories ``file:`` references may point into (for example the daemon's systemd
    credentials directory).

    Raises:
        ConfigError: a reference that cannot be resolved; the text names the secret and what
            to do, never a value.
    """
    values = {}
    for name, ref in refs.items():
        if ref.source == "env":
            value = environ.get(ref.target)
            if value is None:
                raise ConfigError(
                    f"secret {name}: {ref} is not set in the daemon's environment; set it "
                    "where the daemon starts (its systemd unit) or change the reference"
                )
        else:
            value = _read_file(name, ref, file_roots)
        if "\0" in value:
            raise ConfigError(f"secret {name}: {ref} holds a NUL character, which no variable can")
        values[name] = value
    return Secrets(values)


def _read_file(name: str, ref: SecretRef, roots: Sequence[Path]) -> str:
    target = PurePosixPath(ref.target)
    for root in roots:
        if target.is_relative_to(root) and target != PurePosixPath(root):
            raw = _read_under(name, ref, root, target.relative_to(root).parts)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"secret {name}: {ref} is not UTF-8 text") from None
            return text[:-1] if text.endswith("\n") else text
    shown = ", ".join(str(root) for root in roots) or "none are configured"
    raise ConfigError(
        f"secret {name}: {ref} is outside the secret directories ({shown}); put the file there"
    )


def _read_under(name: str, ref: SecretRef, root: Path, parts: tuple[str, ...]) -> bytes:
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the operator's own
        try:
            for part in parts[:-1]:
                next_fd = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            file_fd = os.open(parts[-1], _FILE, dir_fd=fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(f"secret {name}: cannot open {ref}: {_reason(exc)}") from None
    try:
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"secret {name}: {ref} is not a regular file")
        if info.st_size > MAX_SECRET:
            raise ConfigError(f"secret {name}: {ref} is larger than {MAX_SECRET // 1024} KiB")
        chunks = []
        left = MAX_SECRET
        while left > 0 and (chunk := os.read(file_fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(file_fd)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return "a symlink or a non-directory is in the way (secrets are read without links)"
    return exc.strerror or str(exc)
