"""Turn stats: one row per turn with the full usage breakdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperhive.agent.turn_stats import TurnStatsRow, TurnStatsStore

if TYPE_CHECKING:
    from pathlib import Path


def _row(**changes: object) -> TurnStatsRow:
    values: dict[str, object] = {
        "runtime": "claude",
        "model": "claude-opus-5-5",
        "wake_from": "inbox",
        "result_kind": "ok",
        "detail": None,
        "started_at": 100.0,
        "ended_at": 102.5,
        "messages": 2,
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_read_tokens": 30,
        "cache_creation_tokens": 40,
        "cost_usd": 0.5,
        "tool_calls": {"mcp__hive__send": 2, "Bash": 1},
        "ctx_tokens": 1234,
        "context_window": 200_000,
        "compactions": 0,
        "session_id": "s1",
        "loose_ends": None,
    }
    values.update(changes)
    return TurnStatsRow(**values)  # type: ignore[arg-type]


def test_rows_keep_everything_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "stats.sqlite"
    store = TurnStatsStore(path)
    store.record(_row())
    store.record(_row(result_kind="rate_limited", loose_ends=3, tool_calls={}))
    store.close()
    store = TurnStatsStore(path)
    newest, oldest = store.recent()
    store.close()
    assert oldest["duration_ms"] == 2500
    assert oldest["tool_call_count"] == 3
    assert oldest["tool_calls"] == {"Bash": 1, "mcp__hive__send": 2}
    assert (oldest["cache_read_tokens"], oldest["cache_creation_tokens"]) == (30, 40)
    assert oldest["loose_ends"] is None
    assert newest["result_kind"] == "rate_limited"
    assert newest["loose_ends"] == 3
    assert newest["tool_call_count"] == 0
