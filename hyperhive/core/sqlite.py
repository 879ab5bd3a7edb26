"""The sqlite plumbing every hyperhive store shares: one way to open, migrate, write and fail.

The broker, question and reminder stores each own one sqlite file and one connection, driven by
one caller at a time (often from a worker thread). They differ in schema and SQL only; this
module is the rest:

- `connect`: WAL journal, ``synchronous=FULL``, a ``busy_timeout`` of `BUSY_TIMEOUT_MS`, no
  implicit transactions, usable from whichever one thread calls it; the file (and so its -wal
  and -shm) mode 0600, tightened if an older file was looser.
- `migrate`: ``PRAGMA user_version`` counts applied steps of an append-only migration list; a
  newer file than this hyperhive understands is refused, never downgraded.
- `transaction`: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.
- `translate`: ``sqlite3.Error`` (and text sqlite cannot encode) leaves as ``StoreError`` with
  a sentence that says what to check.

No trio here: the stores are plain synchronous code.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING, Any

from hyperhive.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

__all__ = ["BUSY_TIMEOUT_MS", "connect", "migrate", "transaction", "translate"]

# How long a write waits for another writer's lock before sqlite says "database is locked".
# Read at each `connect`, so a test can lower it.
BUSY_TIMEOUT_MS = 5000


def connect(path: Path) -> sqlite3.Connection:
    """A WAL connection with FULL sync, no implicit transactions, usable from any one thread.

    Raises ``StoreError`` if sqlite will not use write-ahead logging there; ``sqlite3.Error``
    otherwise (call it inside `translate`).
    """
    try:
        _make_private(path)
    except OSError as exc:
        # As sqlite would have failed to open it, so callers translate one kind of error.
        raise sqlite3.OperationalError(f"unable to open database file: {exc.strerror}") from exc
    # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE itself.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    with contextlib.ExitStack() as on_failure:
        on_failure.callback(conn.close)
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode != "wal":
            raise StoreError(
                f"{path}: sqlite refused write-ahead logging (journal mode {mode!r}); "
                "put the state directory on a local filesystem"
            )
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        on_failure.pop_all()
    return conn


def _make_private(path: Path) -> None:
    """Create the file 0600 if missing, and make it (and its -wal, -shm) 0600 if it is not.

    sqlite creates the -wal and -shm files with the main file's mode, so a private main file
    keeps them private too; an older, looser file is tightened on the next open.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            side = os.open(f"{path}{suffix}", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(side, 0o600)
            finally:
                os.close(side)


def migrate(
    conn: sqlite3.Connection, path: Path, migrations: Sequence[Sequence[str]], what: str
) -> None:
    """Bring the schema to version ``len(migrations)``, refusing a newer one.

    ``migrations[n]`` holds the statements that take the schema from version n to n + 1;
    ``what`` names the schema in the error ("message", "question"). Run it inside a
    `transaction` so a half-applied step is rolled back.
    """
    target = len(migrations)
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > target:
        raise StoreError(
            f"{path} has {what} schema version {version}, newer than this hyperhive understands "
            f"({target}); upgrade hyperhive or point it at another state directory"
        )
    if version == target:
        return
    for statements in migrations[version:]:
        for statement in statements:
            conn.execute(statement)
    # PRAGMA takes no bound parameters; the version is our own integer.
    conn.execute(f"PRAGMA user_version = {target}")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            # The original error is the one worth reporting; a failed rollback adds nothing.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")


@contextlib.contextmanager
def translate(path: Path, action: str) -> Iterator[None]:
    """Turn sqlite's errors inside the block into ``StoreError`` sentences about ``action``."""
    try:
        yield
    except UnicodeEncodeError as exc:
        raise StoreError(
            f"could not {action}: the text is not valid unicode (it holds "
            f"{_describe(exc.object, exc.start)}), which sqlite cannot store as UTF-8; "
            "reject such text before it reaches the store"
        ) from exc
    except sqlite3.Error as exc:
        raise StoreError(
            f"could not {action} in {path}: {exc}. Check that the disk has space and the file "
            "is writable; if sqlite calls it corrupt, move it aside and restart"
        ) from exc


def _describe(text: Any, index: int) -> str:
    if isinstance(text, str) and 0 <= index < len(text):
        return f"the unpaired surrogate U+{ord(text[index]):04X} at position {index}"
    return "a character UTF-8 cannot encode"
