"""The question store: one sqlite file, one writer (the questions actor), no trio.

A question is one row of ``questions``::

    open ──answer / watchdog / cancel──▶ answered ──asker told──▶ notified ──30 days──▶ (deleted)

It is *open* while ``answered_at`` is NULL. Answering is one conditional UPDATE (``WHERE
answered_at IS NULL``), so two answers racing for the same question cannot both win. The asker
is told in a second step (a helper event through the broker); ``notified_at`` records that it
was, so an answer committed just before a crash is still delivered on the next start.
``notify_error`` records why it never could be (the asker was removed meanwhile).

Opening, migrating, transactions and error translation come from `hyperhive.core.sqlite`.

Every ``sqlite3.Error`` leaves this module as ``StoreError``.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, Final

from hyperhive.core.sqlite import connect, migrate, transaction, translate
from hyperhive.wire import Question

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

__all__ = ["QuestionStore"]

# _MIGRATIONS[n] takes the database from schema version n to n + 1. Append; never edit.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE questions (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            asker        TEXT    NOT NULL,
            target       TEXT    NOT NULL,
            question     TEXT    NOT NULL,
            options      TEXT    NOT NULL,
            multi        INTEGER NOT NULL,
            asked_at     REAL    NOT NULL,
            expires_at   REAL,
            answer       TEXT,
            answerer     TEXT,
            answered_at  REAL,
            notified_at  REAL,
            notify_error TEXT
        )
        """,
        "CREATE INDEX questions_open ON questions (target, id) WHERE answered_at IS NULL",
        """
        CREATE INDEX questions_unnotified ON questions (id)
        WHERE answered_at IS NOT NULL AND notified_at IS NULL AND notify_error IS NULL
        """,
        "CREATE INDEX questions_answered ON questions (answered_at) WHERE answered_at IS NOT NULL",
    ),
    # 2: counting one agent's open questions (the open_questions limit) without a scan.
    ("CREATE INDEX questions_open_asker ON questions (asker) WHERE answered_at IS NULL",),
)

_COLUMNS: Final = (
    "id, asker, target, question, options, multi, asked_at, expires_at, answer, answerer, "
    "answered_at"
)
_INSERT: Final = """
    INSERT INTO questions (asker, target, question, options, multi, asked_at, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id
"""
_GET: Final = f"SELECT {_COLUMNS} FROM questions WHERE id = ?"
_RESOLVE: Final = f"""
    UPDATE questions SET answer = ?, answerer = ?, answered_at = ?
    WHERE id = ? AND answered_at IS NULL RETURNING {_COLUMNS}
"""
_OPEN: Final = f"SELECT {_COLUMNS} FROM questions WHERE answered_at IS NULL ORDER BY id"
_OPEN_TO: Final = f"""
    SELECT {_COLUMNS} FROM questions WHERE target = ? AND answered_at IS NULL ORDER BY id
"""
_OPEN_INVOLVING: Final = f"""
    SELECT {_COLUMNS} FROM questions
    WHERE answered_at IS NULL AND (asker = ? OR target = ?) ORDER BY id
"""
_OPEN_COUNT: Final = """
    SELECT count(*) FROM questions INDEXED BY questions_open_asker
    WHERE asker = ? AND answered_at IS NULL
"""
_ANSWERED_TO: Final = f"""
    SELECT {_COLUMNS} FROM questions WHERE target = ? AND answered_at IS NOT NULL
    ORDER BY answered_at DESC, id DESC LIMIT ?
"""
_UNNOTIFIED: Final = f"""
    SELECT {_COLUMNS} FROM questions
    WHERE answered_at IS NOT NULL AND notified_at IS NULL AND notify_error IS NULL ORDER BY id
"""
_MARK_NOTIFIED: Final = "UPDATE questions SET notified_at = ?, notify_error = ? WHERE id = ?"
_DELETE: Final = "DELETE FROM questions WHERE id = ?"
_VACUUM: Final = """
    DELETE FROM questions WHERE answered_at IS NOT NULL AND answered_at < ?
    AND (notified_at IS NOT NULL OR notify_error IS NOT NULL)
"""


class QuestionStore:
    """Durable questions and their answers.

    Resource handling: owns one sqlite connection until ``close``. Not thread-safe; one caller
    at a time, from any thread.

    Raises (every method): ``StoreError`` when sqlite fails, with a sentence saying what to
    check.
    """

    def __init__(self, path: Path, *, now: Callable[[], float]) -> None:
        self._path = path
        self._now = now
        with contextlib.ExitStack() as on_failure:
            with translate(path, "open the question store"):
                self._conn = connect(path)
            on_failure.callback(self._conn.close)
            with self._write("create or migrate the question schema") as conn:
                migrate(conn, path, _MIGRATIONS, "question")
            on_failure.pop_all()

    def close(self) -> None:
        """Close the connection; closing twice is harmless."""
        with translate(self._path, "close the question store"):
            self._conn.close()

    def add(
        self,
        *,
        asker: str,
        target: str,
        question: str,
        options: Sequence[str] = (),
        multi: bool = False,
        expires_at: float | None = None,
    ) -> Question:
        """Store a new open question and return it with its id."""
        at = self._now()
        row = (asker, target, question, json.dumps(list(options)), int(multi), at, expires_at)
        with self._write("store a question") as conn:
            (id,) = conn.execute(_INSERT, row).fetchone()
        return Question(id, asker, target, question, tuple(options), multi, at, expires_at)

    def get(self, id: int) -> Question | None:
        """Question ``id``, open or answered; None if there is no such row."""
        with translate(self._path, f"read question {id}"):
            row = self._conn.execute(_GET, (id,)).fetchone()
        return None if row is None else _question(row)

    def resolve(self, id: int, answer: str, answerer: str) -> Question | None:
        """Answer question ``id`` if it is still open; None if it is not (or does not exist)."""
        with self._write(f"answer question {id}") as conn:
            row = conn.execute(_RESOLVE, (answer, answerer, self._now(), id)).fetchone()
        return None if row is None else _question(row)

    def delete(self, id: int) -> None:
        """Remove question ``id`` entirely (an ask whose target vanished before it was told)."""
        with self._write(f"delete question {id}") as conn:
            conn.execute(_DELETE, (id,))

    def open_questions(
        self, *, target: str | None = None, involving: str | None = None
    ) -> list[Question]:
        """Open questions, oldest first: all, those to ``target``, or those ``involving`` a name
        (asked by it or to it)."""
        with translate(self._path, "list open questions"):
            if involving is not None:
                rows = self._conn.execute(_OPEN_INVOLVING, (involving, involving)).fetchall()
            elif target is not None:
                rows = self._conn.execute(_OPEN_TO, (target,)).fetchall()
            else:
                rows = self._conn.execute(_OPEN).fetchall()
        return [_question(row) for row in rows]

    def open_count(self, asker: str) -> int:
        """How many of ``asker``'s questions are still open."""
        with translate(self._path, "count open questions"):
            (count,) = self._conn.execute(_OPEN_COUNT, (asker,)).fetchone()
        return int(count)

    def answered(self, target: str, limit: int) -> list[Question]:
        """The newest ``limit`` answered questions to ``target``, newest first."""
        with translate(self._path, "list answered questions"):
            rows = self._conn.execute(_ANSWERED_TO, (target, max(0, limit))).fetchall()
        return [_question(row) for row in rows]

    def unnotified(self) -> list[Question]:
        """Answered questions whose asker has not been told yet, oldest first."""
        with translate(self._path, "list undelivered answers"):
            rows = self._conn.execute(_UNNOTIFIED).fetchall()
        return [_question(row) for row in rows]

    def mark_notified(self, id: int, *, error: str | None = None) -> None:
        """Record that the asker was told (or, with ``error``, why it never can be)."""
        with self._write(f"mark question {id} delivered") as conn:
            conn.execute(_MARK_NOTIFIED, (None if error else self._now(), error, id))

    def vacuum(self, older_than: float) -> int:
        """Delete settled questions answered more than ``older_than`` seconds ago."""
        with self._write("delete old answered questions") as conn:
            count: int = conn.execute(_VACUUM, (self._now() - older_than,)).rowcount
        return count

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        with translate(self._path, action), transaction(self._conn):
            yield self._conn


def _question(row: Any) -> Question:
    id, asker, target, question, options, multi, asked_at, expires_at, *answer = row
    return Question(
        id, asker, target, question, tuple(json.loads(options)), bool(multi), asked_at,
        expires_at, *answer,
    )  # fmt: skip
