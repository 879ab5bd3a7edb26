"""The per-agent page's routes over real TCP, against a real harness's page socket.

The daemon (fake containers) serves the dashboard; alice's harness runs in-process with a
scripted runtime and serves its page socket in alice's socket directory, exactly where the
daemon looks for it. Real unix sockets and the real clock: each test has a hard timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from typing import TYPE_CHECKING, Any

import trio

from hyperhive.agent.page_server import PageServer, page_socket_path
from hyperhive.agent.serve import open_harness
from hyperhive.clock import SystemClock
from hyperhive.testing.agent import agent_settings
from hyperhive.testing.offload import inline
from hyperhive.testing.turn_runner import ScriptedRunner

from .conftest import Web, open_web

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hyperhive.agent.harness import Harness

TOKEN = "sk-ant-oat01-" + "x" * 40


@contextlib.asynccontextmanager
async def open_page_harness(
    web: Web, name: str, state: Path, runner: ScriptedRunner
) -> AsyncIterator[tuple[Harness, PageServer]]:
    """`name`'s harness with its page socket, in-process, until the block ends."""
    state.mkdir(parents=True, exist_ok=True)
    settings = agent_settings(web.hive, state, name)
    wired = open_harness(settings, runner, SystemClock(), offload=inline, history_thread=False)
    async with wired as (harness, bus):
        page = PageServer(
            harness,
            bus,
            socket_path=page_socket_path(settings.socket),
            stats=harness.stats,
            clock=harness.clock,
            offload=inline,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(page.run)
            await nursery.start(harness.run)
            yield harness, page
            nursery.cancel_scope.cancel()


async def _until(check: Any, what: str, timeout: float = 10.0) -> Any:
    with trio.fail_after(timeout):
        while not (found := await check()):
            await trio.sleep(0.05)
    return found


async def _history(web: Web, name: str = "alice") -> list[dict[str, Any]]:
    reply = await web.get(f"/agent/{name}/events/history?limit=2000")
    assert reply.status == 200, reply.body
    events: list[dict[str, Any]] = reply.json()["events"]
    return events


async def _event(web: Web, kind: str, **match: Any) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        for event in await _history(web):
            if event["kind"] == kind and all(event["data"].get(k) == v for k, v in match.items()):
                return event
        return None

    event: dict[str, Any] = await _until(found, kind)
    return event


async def test_the_page_shows_a_real_harness_and_steers_it(short_tmp: Path) -> None:
    runner = ScriptedRunner()
    with trio.fail_after(60):
        async with open_web(short_tmp / "hive", agents=("alice",)) as web:
            page = await web.get("/agent/alice/")
            assert page.status == 200
            assert b'id="term-live"' in page.body
            assert b"<script src=" in page.body
            assert b"alice" not in page.body
            async with open_page_harness(web, "alice", short_tmp / "alice", runner) as (h, _):
                await web.post("/op-send", {"to": "alice", "body": "hello alice"})
                await _event(web, "acked")
                state = (await web.get("/agent/alice/api/state")).json()
                harness = state["harness"]
                assert harness["report"]["state"] == "idle"
                assert (state["semantic"], state["reason"]) == ("idle", "waiting for mail")
                assert (harness["model"], harness["ctx"]) == ("scripted-model", 1000)
                assert harness["runtime"] == "scripted"
                assert state["harness_error"] is None
                assert state["container"]["name"] == "alice"

                # Steering: each answers 200 and the change arrives as an event.
                reply = await web.post("/agent/alice/api/model", {"model": "claude-haiku-4-5"})
                assert reply.status == 200, reply.body
                await _event(web, "model", model="claude-haiku-4-5")
                assert (short_tmp / "alice" / "hyperhive-model").read_text() == "claude-haiku-4-5\n"
                for control, note in (
                    ("cancel", "cancel requested, but no turn runs"),
                    ("compact", "compaction requested"),
                    ("new-session", "next turn starts a new session"),
                ):
                    assert (await web.post(f"/agent/alice/api/{control}")).status == 200
                    await _event(web, "note", text=note)
                assert (await web.post("/agent/alice/api/reboot")).status == 404
                bad = await web.post("/agent/alice/api/model", {"model": "two words"})
                assert bad.status == 400

                await web.post("/op-send", {"to": "alice", "body": "second"})
                turn = await _event(web, "turn_started", model="claude-haiku-4-5")
                assert turn["data"]["fresh_session"]
                assert turn["data"]["compact_first"]
                await _until(lambda: _acked(web, 2), "second ack")

                stats = (await web.get("/agent/alice/stats.json?bucket=hour")).json()["stats"]
                assert sum(b["turns"] for b in stats["buckets"]) >= 2
                assert stats["models"] == {"scripted-model": 2}  # what the runtime ran
                assert stats["results"] == {"ok": 2}
                chart = await web.get("/agent/alice/stats/turns.svg?bucket=day")
                assert chart.status == 200
                assert chart.headers["content-type"].startswith("image/svg")
                assert b"<svg" in chart.body
                assert b"<script" not in chart.body
                assert (await web.get("/agent/alice/stats")).status == 200
                assert (await web.get("/agent/alice/stats.json?bucket=week")).status == 400
            assert h.turns >= 2


async def _acked(web: Web, count: int) -> bool:
    return sum(e["kind"] == "acked" for e in await _history(web)) >= count


async def test_a_pasted_setup_token_is_stored_for_the_agent_alone(short_tmp: Path) -> None:
    runner = ScriptedRunner()
    state = short_tmp / "alice"
    with trio.fail_after(60):
        async with (
            open_web(short_tmp / "hive", agents=("alice",)) as web,
            open_page_harness(web, "alice", state, runner),
        ):
            pasted = f"Your OAuth token (valid for 1 year):\n\n{TOKEN}\n\nStore it safely."
            reply = await web.post("/agent/alice/login/token", {"value": pasted})
            assert reply.status == 200, reply.body
            credentials = state / "hyperhive-credentials.json"
            assert json.loads(credentials.read_text()) == {
                "kind": "oauth_token",
                "value": TOKEN,
            }
            assert stat.S_IMODE(os.stat(credentials).st_mode) == 0o600
            await _event(web, "note", text="a credential (oauth token) was stored from the page")
            assert TOKEN not in json.dumps(await _history(web))
            refused = await web.post("/agent/alice/login/token", {"value": "no token here"})
            assert refused.status == 400
            assert "no token found" in refused.json()["error"]
            key = "sk-ant-api03-" + "k" * 40
            reply = await web.post("/agent/alice/login/api-key", {"value": f"  {key}\n"})
            assert reply.status == 200, reply.body
            assert json.loads(credentials.read_text()) == {"kind": "api_key", "value": key}
            await _event(web, "note", text="a credential (api key) was stored from the page")
            assert key not in json.dumps(await _history(web))
            spaced = await web.post("/agent/alice/login/api-key", {"value": "two words"})
            assert spaced.status == 400
            flow = await web.post("/agent/alice/login/start")
            assert flow.status == 400  # the scripted runtime has no claude to drive
    assert (
        TOKEN not in (web.hive.paths.root / "agents" / "alice").joinpath("agent.json").read_text()
    )


async def test_the_stream_resumes_after_the_last_seq_and_inbox_comes_from_the_broker(
    short_tmp: Path,
) -> None:
    runner = ScriptedRunner()
    with trio.fail_after(60):
        async with open_web(short_tmp / "hive", agents=("alice", "bob")) as web:
            await web.post("/op-send", {"to": "bob", "body": "for bob, waiting"})
            inbox = (await web.get("/agent/bob/inbox")).json()
            assert [m["body"] for m in inbox["pending"]] == ["for bob, waiting"]
            assert inbox["inflight"] == []
            loose = (await web.get("/agent/bob/loose-ends")).json()["loose_ends"]
            assert loose["questions"] == []
            assert loose["reminders"] == []
            async with open_page_harness(web, "alice", short_tmp / "alice", runner):
                await web.post("/op-send", {"to": "alice", "body": "one"})
                acked = await _event(web, "acked")
                frames = await sse_frames(web, "/agent/alice/events/stream", after=acked["seq"] - 3)
                hello, up, *events = frames
                assert hello == {"kind": "hello", "after": acked["seq"] - 3, "resumed": True}
                assert up == {"kind": "harness_up"}
                assert [e["seq"] for e in events] == list(range(acked["seq"] - 2, acked["seq"] + 1))
            down = await sse_frames(web, "/agent/alice/events/stream", count=2)
            assert down[1]["kind"] == "harness_down"
            assert "not serving its page" in down[1]["error"]
            state = (await web.get("/agent/alice/api/state")).json()
            assert state["harness"] is None
            assert "cannot be reached" in state["harness_error"]
            assert (await web.get("/agent/nobody/")).status == 404
            assert (await web.get("/agent/nobody/api/state")).status == 404


async def sse_frames(
    web: Web, path: str, *, after: int | None = None, count: int = 5
) -> list[dict[str, Any]]:
    """The first `count` data frames of an SSE response."""
    stream = await trio.open_tcp_stream("127.0.0.1", web.port)
    async with stream:
        head = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{web.port}"]
        if after is not None:
            head.append(f"Last-Event-ID: {after}")
        await stream.send_all(("\r\n".join([*head, "", ""])).encode())
        raw = b""
        frames: list[dict[str, Any]] = []
        with trio.fail_after(10):
            while len(frames) < count:
                chunk = await stream.receive_some(65536)
                assert chunk, "the stream ended"
                raw += chunk
                frames = [
                    json.loads(line[6:])
                    for line in raw.split(b"\n")[:-1]
                    if line.startswith(b"data: ")
                ]
        return frames[:count]
