"""An agent's harness is hostile: whatever it answers on its page socket, the daemon stays up,
answers in time, and hands the browser only JSON (or escaped SVG), never markup to run.

Real unix sockets, real TCP, the real clock; each test has a hard timeout.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive.testing.hostile_harness import serve_hostile
from hyperhive.web.harness_link import CONNECT_TIMEOUT, READ_TIMEOUT

from .conftest import Web, open_web
from .test_agent_page import sse_frames

if TYPE_CHECKING:
    from pathlib import Path


def _page_socket(web: Web, name: str = "alice") -> Path:
    return web.hive.paths.agent_socket_dir(name) / "page" / "page.sock"


async def _still_serving(web: Web) -> None:
    reply = await web.get("/api/state")
    assert reply.status == 200
    assert reply.json()["ok"] is True


async def test_a_harness_answering_markup_everywhere_reaches_the_browser_only_as_json(
    short_tmp: Path,
) -> None:
    with trio.fail_after(60):
        async with open_web(short_tmp / "hive", agents=("alice",)) as web, trio.open_nursery() as n:
            await n.start(serve_hostile, _page_socket(web), "markup")
            state = await web.get("/agent/alice/api/state")
            assert state.status == 200
            assert state.headers["content-type"] == "application/json"
            assert state.headers["x-content-type-options"] == "nosniff"
            harness = state.json()["harness"]
            assert "<script>" in harness["report"]["detail"]  # data, shown as text by the page
            history = await web.get("/agent/alice/events/history")
            assert history.status == 200
            kinds = [e["kind"] for e in history.json()["events"]]
            assert "invalid" in kinds  # a turn_ended of the wrong shape is flagged, not passed on
            assert "stream" in kinds
            chart = await web.get("/agent/alice/stats/tokens.svg")
            assert chart.status == 200
            assert b"<script" not in chart.body
            assert b"onerror" not in chart.body or b"&lt;img" in chart.body
            stats = (await web.get("/agent/alice/stats.json")).json()["stats"]
            assert stats["models"]
            frames = await sse_frames(web, "/agent/alice/events/stream", after=100, count=4)
            assert [f.get("kind") for f in frames[:2]] == ["hello", "harness_up"]
            assert all(isinstance(f["seq"], int) for f in frames[2:])  # raw HTML lines skipped
            for control in ("cancel", "compact", "new-session"):
                reply = await web.post(f"/agent/alice/api/{control}")
                assert reply.headers["content-type"] == "application/json"
            await _still_serving(web)
            n.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("raw", "malformed"),
        ("deep", "malformed"),
        ("huge", "too big"),
        ("silent", "no answer within"),
    ],
)
async def test_a_harness_that_does_not_answer_properly_costs_its_own_page_only(
    short_tmp: Path, mode: str, why: str
) -> None:
    with trio.fail_after(60):
        async with open_web(short_tmp / "hive", agents=("alice",)) as web, trio.open_nursery() as n:
            await n.start(serve_hostile, _page_socket(web), mode)
            started = time.monotonic()
            async with trio.open_nursery() as requests:
                requests.start_soon(_still_serving, web)  # the dashboard answers meanwhile
                state = await web.get("/agent/alice/api/state")
            assert time.monotonic() - started < CONNECT_TIMEOUT + READ_TIMEOUT + 2
            body = state.json()
            assert state.status == 200
            assert body["harness"] is None
            assert why in body["harness_error"]
            history = await web.get("/agent/alice/events/history")
            assert history.status == 503
            assert why in history.json()["error"]
            await _still_serving(web)
            n.cancel_scope.cancel()


async def test_a_page_socket_that_is_a_link_or_not_a_socket_is_never_followed(
    short_tmp: Path,
) -> None:
    with trio.fail_after(60):
        async with open_web(short_tmp / "hive", agents=("alice",)) as web:
            page = _page_socket(web)
            page.parent.mkdir(parents=True, exist_ok=True)
            admin = web.hive.paths.admin_socket
            attempts = [
                (lambda: page.symlink_to(admin), "not a socket"),
                (lambda: os.mkfifo(page), "not a socket"),
                (lambda: page.write_text("{}"), "not a socket"),
                (lambda: os.link(admin, page), "one of the daemon's own sockets"),
            ]
            for plant, why in attempts:
                plant()
                reply = await web.post("/agent/alice/api/cancel")
                assert reply.status == 503
                assert why in reply.json()["error"]
                page.unlink()
            page.parent.rmdir()
            page.parent.symlink_to(web.hive.paths.root)  # the whole directory, linked away
            reply = await web.get("/agent/alice/api/state")
            assert reply.json()["harness"] is None
            await _still_serving(web)


async def test_the_canned_stand_in_answers_like_a_harness(short_tmp: Path) -> None:
    with trio.fail_after(60):
        async with open_web(short_tmp / "hive", agents=("alice",)) as web, trio.open_nursery() as n:
            await n.start(serve_hostile, _page_socket(web), "canned")
            history = await web.get("/agent/alice/events/history?limit=500")
            assert history.status == 200, history.body
            events = history.json()["events"]
            assert len(events) == 500
            assert [e["kind"] for e in events if e["kind"] == "invalid"] == []
            older = await web.get(f"/agent/alice/events/history?before_seq={events[0]['seq']}")
            assert older.json()["events"][0]["seq"] == 1
            answer = (await web.get("/agent/alice/api/state")).json()
            assert answer["harness"]["report"]["retry"]["attempt"] == 2
            assert answer["semantic"] == "retrying"
            n.cancel_scope.cancel()
