"""The reminder store: one sqlite file, one writer (the reminder scheduler), no trio.

A reminder is one row of ``reminders``::

    pending ──delivered──▶ delivered ──30 days──▶ (deleted)
       │  └──cannot be──▶ failed (``failure`` says why) ──cancel──▶ (deleted)
       └──cancel──▶ (deleted)

``due_at`` is a wall-clock stamp, so a reminder keeps its meaning across daemon restarts: one
that came due while the daemon was down is simply already due when it starts again.

Every ``sqlite3.Error`` leaves this module as ``StoreError``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

from hyperhive.core.sqlite import connect, migrate, transaction, translate
from hyperhive.wire import Reminder

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["ReminderStore"]

_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE reminders (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            owner      TEXT    NOT NULL,
            message    TEXT    NOT NULL,
            file_path  TEXT,
            created_at REAL    NOT NULL,
            due_at     REAL    NOT NULL,
            state      TEXT    NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'delivered', 'failed')),
            fired_at   REAL,
            failure    TEXT
        )
        """,
        "CREATE INDEX reminders_pending ON reminders (due_at, id) WHERE state = 'pending'",
        "CREATE INDEX reminders_owner ON reminders (owner, id)",
        "CREATE INDEX reminders_fired ON reminders (fired_at) WHERE state = 'delivered'",
    ),
)

_COLUMNS: Final = "id, owner, message, created_at, due_at, state, file_path, fired_at, failure"
_INSERT: Final = f"""
    INSERT INTO reminders (owner, message, file_path, created_at, due_at) VALUES (?, ?, ?, ?, ?)
    RETURNING {_COLUMNS}
"""
_GET: Final = f"SELECT {_COLUMNS} FROM reminders WHERE id = ?"
_PENDING: Final = f"SELECT {_COLUMNS} FROM reminders WHERE state = 'pending' ORDER BY due_at, id"
_SETTLE: Final = f"""
    UPDATE reminders SET state = ?, fired_at = ?, failure = ? WHERE id = ? AND state = 'pending'
    RETURNING {_COLUMNS}
"""
_DELETE_UNDELIVERED: Final = f"""
    DELETE FROM reminders WHERE id = ? AND state != 'delivered' RETURNING {_COLUMNS}
"""
_OWNER_PENDING: Final = "SELECT count(*) FROM reminders WHERE owner = ? AND state = 'pending'"
_COUNTS: Final = "SELECT owner, count(*) FROM reminders WHERE state = 'pending' GROUP BY owner"
_VACUUM: Final = "DELETE FROM reminders WHERE state = 'delivered' AND fired_at < ?"


class ReminderStore:
    """Durable reminders with their delivery outcome.

    Resource handling: owns one sqlite connection until ``close``. Not thread-safe; one caller
    at a time, from any thread.

    Raises (every method): ``StoreError`` when sqlite fails.
    """

    def __init__(self, path: Path, *, now: Callable[[], float]) -> None:
        self._path = path
        self._now = now
        with contextlib.ExitStack() as on_failure:
            with translate(path, "open the reminder store"):
                self._conn = connect(path)
            on_failure.callback(self._conn.close)
            with self._write("create or migrate the reminder schema") as conn:
                migrate(conn, path, _MIGRATIONS, "reminder")
            on_failure.pop_all()

    def close(self) -> None:
        """Close the connection; closing twice is harmless."""
        with translate(self._path, "close the reminder store"):
            self._conn.close()

    def add(self, owner: str, message: str, due_at: float, file_path: str | None) -> Reminder:
        """Store a pending reminder and return it with its id."""
        row = (owner, message, file_path, self._now(), due_at)
        with self._write("store a reminder") as conn:
            return _reminder(conn.execute(_INSERT, row).fetchone())

    def get(self, id: int) -> Reminder | None:
        """Reminder ``id`` in whatever state, or None."""
        with translate(self._path, f"read reminder {id}"):
            row = self._conn.execute(_GET, (id,)).fetchone()
        return None if row is None else _reminder(row)

    def pending(self) -> list[Reminder]:
        """Every pending reminder, soonest first."""
        with translate(self._path, "list pending reminders"):
            return [_reminder(row) for row in self._conn.execute(_PENDING).fetchall()]

    def listing(
        self, *, owner: str | None = None, delivered: bool = False, limit: int = 200
    ) -> list[Reminder]:
        """Pending and failed reminders (and, with ``delivered``, delivered ones), by id.

        For one owner or everyone; at most ``limit`` rows, the newest ones when there are more.
        """
        states = ("pending", "failed", "delivered") if delivered else ("pending", "failed")
        where = f"state IN ({', '.join('?' * len(states))})"
        params: list[Any] = list(states)
        if owner is not None:
            where += " AND owner = ?"
            params.append(owner)
        query = f"SELECT {_COLUMNS} FROM reminders WHERE {where} ORDER BY id DESC LIMIT ?"
        with translate(self._path, "list reminders"):
            rows = self._conn.execute(query, (*params, max(0, limit))).fetchall()
        return [_reminder(row) for row in reversed(rows)]

    def mark_delivered(self, id: int) -> Reminder | None:
        """Settle a pending reminder as delivered; None if it was not pending."""
        return self._settle(id, "delivered", None)

    def mark_failed(self, id: int, failure: str) -> Reminder | None:
        """Settle a pending reminder as failed with its reason; None if it was not pending."""
        return self._settle(id, "failed", failure)

    def delete_undelivered(self, id: int) -> Reminder | None:
        """Delete a pending or failed reminder and return it; None if none such exists."""
        with self._write(f"delete reminder {id}") as conn:
            row = conn.execute(_DELETE_UNDELIVERED, (id,)).fetchone()
        return None if row is None else _reminder(row)

    def pending_count(self, owner: str) -> int:
        """How many of ``owner``'s reminders are pending."""
        with translate(self._path, "count pending reminders"):
            (count,) = self._conn.execute(_OWNER_PENDING, (owner,)).fetchone()
        return int(count)

    def pending_counts(self) -> dict[str, int]:
        """Pending reminders per owner; owners with none are absent."""
        with translate(self._path, "count pending reminders"):
            return dict(self._conn.execute(_COUNTS).fetchall())

    def vacuum(self, older_than: float) -> int:
        """Delete reminders delivered more than ``older_than`` seconds ago. Failed ones stay
        until someone cancels them, so a failure is never dropped unseen."""
        with self._write("delete old delivered reminders") as conn:
            count: int = conn.execute(_VACUUM, (self._now() - older_than,)).rowcount
        return count

    def _settle(self, id: int, state: str, failure: str | None) -> Reminder | None:
        with self._write(f"settle reminder {id}") as conn:
            row = conn.execute(_SETTLE, (state, self._now(), failure, id)).fetchone()
        return None if row is None else _reminder(row)

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        with translate(self._path, action), transaction(self._conn):
            yield self._conn


def _reminder(row: Any) -> Reminder:
    return Reminder(*row)
