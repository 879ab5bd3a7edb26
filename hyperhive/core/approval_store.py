"""The approval store: one sqlite file, one writer (the approvals actor), no trio.

One row of ``approvals`` per request, in the original's shape (`Approval`). A transition is
one conditional UPDATE (``WHERE status IN (<the legal sources>)``, `SOURCES`), so an approve
and a deny racing for the same row cannot both win, and a row never leaves a final status.
Who may make a transition is the caller's check (`hyperhive.core.approvals`); the store only
keeps the states straight.

Opening, migrating, transactions and error translation come from `hyperhive.core.sqlite`.
Every ``sqlite3.Error`` leaves this module as ``StoreError``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

from hyperhive.core.approvals import SOURCES, Approval, Kind, Status
from hyperhive.core.sqlite import connect, migrate, transaction, translate

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["ApprovalStore"]

# _MIGRATIONS[n] takes the database from schema version n to n + 1. Append; never edit.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE approvals (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            agent        TEXT    NOT NULL,
            kind         TEXT    NOT NULL,
            requested_at REAL    NOT NULL,
            status       TEXT    NOT NULL,
            description  TEXT    NOT NULL,
            commit_ref   TEXT    NOT NULL,
            fetched_sha  TEXT,
            resolved_at  REAL,
            note         TEXT
        )
        """,
        "CREATE INDEX approvals_pending ON approvals (agent, id) WHERE status = 'pending'",
        "CREATE INDEX approvals_agent ON approvals (agent, id)",
    ),
)

_COLUMNS: Final = (
    "id, agent, kind, requested_at, status, description, commit_ref, fetched_sha, resolved_at, note"
)
_INSERT: Final = f"""
    INSERT INTO approvals (agent, kind, requested_at, status, description, commit_ref)
    VALUES (?, ?, ?, 'pending', ?, ?) RETURNING {_COLUMNS}
"""
_GET: Final = f"SELECT {_COLUMNS} FROM approvals WHERE id = ?"
_FETCHED: Final = f"""
    UPDATE approvals SET fetched_sha = ? WHERE id = ? AND status = 'pending'
    RETURNING {_COLUMNS}
"""
_PENDING: Final = f"SELECT {_COLUMNS} FROM approvals WHERE status = 'pending' ORDER BY id"
_PENDING_FOR: Final = f"""
    SELECT {_COLUMNS} FROM approvals WHERE status = 'pending' AND agent = ? ORDER BY id
"""
_FOR_AGENT: Final = f"""
    SELECT {_COLUMNS} FROM approvals WHERE agent = ? ORDER BY id DESC LIMIT ?
"""
_RECENT: Final = f"SELECT {_COLUMNS} FROM approvals ORDER BY id DESC LIMIT ?"
_VACUUM: Final = """
    DELETE FROM approvals WHERE status IN ('denied', 'failed', 'cancelled')
    AND resolved_at IS NOT NULL AND resolved_at < ?
"""


def _transition_sql(to: Status) -> str:
    sources = ", ".join(f"'{status.value}'" for status in sorted(SOURCES[to], key=_order))
    return f"""
        UPDATE approvals SET status = ?, resolved_at = ?, note = COALESCE(?, note)
        WHERE id = ? AND status IN ({sources}) RETURNING {_COLUMNS}
    """


def _order(status: Status) -> int:
    return list(Status).index(status)


_TRANSITIONS: Final = {to: _transition_sql(to) for to in SOURCES}


class ApprovalStore:
    """Durable approvals.

    Resource handling: owns one sqlite connection until ``close``. Not thread-safe; one caller
    at a time, from any thread.

    Raises (every method): ``StoreError`` when sqlite fails, with a sentence saying what to
    check.
    """

    def __init__(self, path: Path, *, now: Callable[[], float]) -> None:
        self._path = path
        self._now = now
        with contextlib.ExitStack() as on_failure:
            with translate(path, "open the approval store"):
                self._conn = connect(path)
            on_failure.callback(self._conn.close)
            with self._write("create or migrate the approval schema") as conn:
                migrate(conn, path, _MIGRATIONS, "approval")
            on_failure.pop_all()

    def close(self) -> None:
        """Close the connection; closing twice is harmless."""
        with translate(self._path, "close the approval store"):
            self._conn.close()

    def add(self, *, agent: str, kind: Kind, commit_ref: str, description: str) -> Approval:
        """Store a new pending approval (validated by the caller) and return it with its id."""
        row = (agent, kind.value, self._now(), description, commit_ref)
        with self._write("store an approval") as conn:
            return _approval(conn.execute(_INSERT, row).fetchone())

    def get(self, id: int) -> Approval | None:
        """Approval ``id`` in any status; None if there is no such row."""
        with translate(self._path, f"read approval {id}"):
            row = self._conn.execute(_GET, (id,)).fetchone()
        return None if row is None else _approval(row)

    def set_fetched(self, id: int, sha: str) -> Approval | None:
        """Record the full sha the proposal was fetched as; None unless ``id`` is pending."""
        with self._write(f"record the fetched commit of approval {id}") as conn:
            row = conn.execute(_FETCHED, (sha, id)).fetchone()
        return None if row is None else _approval(row)

    def transition(self, id: int, to: Status, note: str | None = None) -> Approval | None:
        """Move ``id`` to ``to`` if it stands where that is legal; None if it does not (or
        does not exist). ``note`` replaces the note when given; ``resolved_at`` is stamped."""
        if to not in _TRANSITIONS:
            raise ValueError(f"nothing moves an approval to {to.value}")
        with self._write(f"mark approval {id} {to.value}") as conn:
            args = (to.value, self._now(), note, id)
            row = conn.execute(_TRANSITIONS[to], args).fetchone()
        return None if row is None else _approval(row)

    def pending(self, agent: str | None = None) -> list[Approval]:
        """Pending approvals, oldest first: all, or ``agent``'s."""
        with translate(self._path, "list pending approvals"):
            if agent is None:
                rows = self._conn.execute(_PENDING).fetchall()
            else:
                rows = self._conn.execute(_PENDING_FOR, (agent,)).fetchall()
        return [_approval(row) for row in rows]

    def recent(self, limit: int, agent: str | None = None) -> list[Approval]:
        """The newest ``limit`` approvals in any status (of ``agent`` if given), newest first."""
        with translate(self._path, "list approvals"):
            if agent is None:
                rows = self._conn.execute(_RECENT, (max(0, limit),)).fetchall()
            else:
                rows = self._conn.execute(_FOR_AGENT, (agent, max(0, limit))).fetchall()
        return [_approval(row) for row in rows]

    def vacuum(self, older_than: float) -> int:
        """Delete denied, failed and cancelled rows resolved more than ``older_than`` s ago.

        Approved rows stay: they are the deploy history the applied repo's tags point into.
        """
        with self._write("delete old resolved approvals") as conn:
            count: int = conn.execute(_VACUUM, (self._now() - older_than,)).rowcount
        return count

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        with translate(self._path, action), transaction(self._conn):
            yield self._conn


def _approval(row: Any) -> Approval:
    id, agent, kind, requested_at, status, description, commit_ref, sha, resolved, note = row
    return Approval(
        id, agent, Kind(kind), requested_at, Status(status), description, commit_ref, sha,
        resolved, note,
    )  # fmt: skip
