"""One sqlite row per turn, in the agent's state directory (``hyperhive-turn-stats.sqlite``).

A row says what woke the turn, how it ended, how long it took, the full token usage (input,
output, cache reads, cache writes), cost, tool calls (count and a per-tool map), the context
size after the turn (the last inference's prompt) and the window it is measured against, and
how many loose ends the agent had open afterwards (NULL when the daemon cannot say yet).

The store is written by the harness only, one row at a time, from a worker thread. Writes are
best-effort at the call site: a full disk must not fail a turn whose messages were handled.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any, Final

from hyperhive.errors import StoreError
from hyperhive.value import value

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["BUCKETS", "TurnStatsRow", "TurnStatsStore"]

# Bucket sizes for `TurnStatsStore.summary`, in seconds (UTC hours and days).
BUCKETS: Final = {"hour": 3600, "day": 86400}

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS turns (
    id                    INTEGER PRIMARY KEY,
    runtime               TEXT NOT NULL,
    model                 TEXT,
    wake_from             TEXT NOT NULL,
    result_kind           TEXT NOT NULL,
    detail                TEXT,
    started_at            REAL NOT NULL,
    ended_at              REAL NOT NULL,
    duration_ms           INTEGER NOT NULL,
    messages              INTEGER NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cache_read_tokens     INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    cost_usd              REAL NOT NULL,
    tool_call_count       INTEGER NOT NULL,
    tool_calls            TEXT NOT NULL,
    ctx_tokens            INTEGER,
    context_window        INTEGER,
    compactions           INTEGER NOT NULL,
    session_id            TEXT,
    loose_ends            INTEGER
);
CREATE INDEX IF NOT EXISTS turns_started ON turns (started_at);
"""


@value
class TurnStatsRow:
    runtime: str
    model: str | None
    wake_from: str
    result_kind: str
    detail: str | None
    started_at: float
    ended_at: float
    messages: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float
    tool_calls: dict[str, int]
    ctx_tokens: int | None
    context_window: int | None
    compactions: int
    session_id: str | None
    loose_ends: int | None = None

    @property
    def duration_ms(self) -> int:
        return max(0, round((self.ended_at - self.started_at) * 1000))

    @property
    def tool_call_count(self) -> int:
        return sum(self.tool_calls.values())


_COLUMNS: Final = (
    "runtime, model, wake_from, result_kind, detail, started_at, ended_at, duration_ms, messages,"
    " input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, cost_usd,"
    " tool_call_count, tool_calls, ctx_tokens, context_window, compactions, session_id,"
    " loose_ends"
)


class TurnStatsStore:
    """The turn-stats database. Blocking: call it from `trio.to_thread.run_sync`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # As the events history: a power cut may lose the newest row, never the file.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open turn stats {path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def record(self, row: TurnStatsRow) -> int:
        """Append one row; returns its id."""
        values = (
            row.runtime,
            row.model,
            row.wake_from,
            row.result_kind,
            row.detail,
            row.started_at,
            row.ended_at,
            row.duration_ms,
            row.messages,
            row.input_tokens,
            row.output_tokens,
            row.cache_read_tokens,
            row.cache_creation_tokens,
            row.cost_usd,
            row.tool_call_count,
            json.dumps(row.tool_calls, sort_keys=True),
            row.ctx_tokens,
            row.context_window,
            row.compactions,
            row.session_id,
            row.loose_ends,
        )
        marks = ", ".join("?" * len(values))
        try:
            with self._conn:
                cursor = self._conn.execute(
                    f"INSERT INTO turns ({_COLUMNS}) VALUES ({marks})", values
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record a turn in {self.path}: {exc}") from exc
        return int(cursor.lastrowid or 0)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` rows, newest first, as dicts (``tool_calls`` decoded)."""
        cursor = self._conn.execute(
            f"SELECT id, {_COLUMNS} FROM turns ORDER BY id DESC LIMIT ?", (limit,)
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        for row in rows:
            row["tool_calls"] = json.loads(row["tool_calls"])
        return rows

    def summary(self, bucket: str, count: int, now: float) -> dict[str, Any]:
        """Turns of the newest `count` buckets (``hour`` or ``day``, UTC) up to `now`.

        Returns the `wire.PageStats` fields: ``buckets`` (oldest first, empty ones included),
        the model mix, tool use and results over those turns, and the newest 20 turns.
        """
        size = BUCKETS[bucket]
        last = int(now // size) * size
        first = last - (count - 1) * size
        rows = self._conn.execute(
            "SELECT started_at, result_kind, duration_ms, input_tokens, output_tokens,"
            " cache_read_tokens, cache_creation_tokens, cost_usd, tool_call_count, tool_calls,"
            " model FROM turns WHERE started_at >= ? ORDER BY started_at",
            (first,),
        ).fetchall()
        keys = (
            "turns",
            "ok",
            "duration_ms",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_creation_tokens",
            "cost_usd",
            "tool_calls",
        )
        buckets = {first + i * size: dict.fromkeys(keys, 0) for i in range(count)}
        models: dict[str, int] = {}
        tools: dict[str, int] = {}
        results: dict[str, int] = {}
        for started, result, duration, inp, out, cread, cmake, cost, ncalls, calls, model in rows:
            slot = buckets.get(int(started // size) * size)
            if slot is None:
                continue
            slot["turns"] += 1
            slot["ok"] += result == "ok"
            slot["duration_ms"] += duration
            slot["input_tokens"] += inp
            slot["output_tokens"] += out
            slot["cache_read_tokens"] += cread
            slot["cache_creation_tokens"] += cmake
            slot["cost_usd"] += cost
            slot["tool_calls"] += ncalls
            models[model or "default"] = models.get(model or "default", 0) + 1
            results[result] = results.get(result, 0) + 1
            for tool, n in json.loads(calls).items():
                tools[tool] = tools.get(tool, 0) + int(n)
        return {
            "bucket": bucket,
            "buckets": [{"start": float(start), **slot} for start, slot in buckets.items()],
            "models": models,
            "tools": tools,
            "results": results,
            "recent": self.recent(20),
        }
