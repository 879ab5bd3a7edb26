"""The per-agent page's routes, under ``/agent/<name>/`` on the dashboard (docs/web-ui.md).

The daemon serves the page (static assets, the same as the dashboard's) and the harness only
answers data and control requests over its page socket (`hyperhive.web.harness_link`: every
answer is decoded into the wire types with their bounds, with deadlines and size caps). The
inbox and loose ends come from the daemon's own handles, never from the agent; a question the
agent asked the operator is answered through the operator's endpoint
(``/answer-question/<id>``), never the agent's socket.

    GET  /agent/<name>/                       the page
    GET  /agent/<name>/api/state              container row + the harness's badges, and what
                                              it is doing in a word and a sentence
    GET  /agent/<name>/events/history         stored events (after_seq, before_seq, limit)
    GET  /agent/<name>/events/stream          SSE, ``id: <seq>``, resumable (Last-Event-ID)
    POST /agent/<name>/api/cancel|compact|new-session|model
    GET  /agent/<name>/login/state            the login flow
    POST /agent/<name>/login/token|api-key|start|code|logout
    GET  /agent/<name>/stats                  the stats page; stats.json; stats/<metric>.svg
    GET  /agent/<name>/inbox                  pending and in-flight mail (the broker)
    GET  /agent/<name>/inbox/stream           the hub's events for its inbox (in app.py, which
                                              owns the hub streams: `sse.concerns`)
    GET  /agent/<name>/loose-ends             open questions and reminders (the daemon)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

import orjson
import trio
from quart import Response, request

from hyperhive import wire
from hyperhive.core.container_view import doing
from hyperhive.errors import BadRequest
from hyperhive.web.charts import bar_chart
from hyperhive.web.harness_link import HarnessUnreachable, checked_event
from hyperhive.web.http import json_body, json_response, ok, text_field
from hyperhive.web.sse import HEARTBEAT, RETRY_MS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from quart_trio import QuartTrio

    from hyperhive.web.harness_link import HarnessLink
    from hyperhive.web.ops import DashboardOps

__all__ = ["CONTROLS", "METRICS", "agent_stream", "install"]

# POST /agent/<name>/api/<control> -> the page request it sends.
CONTROLS: Final[dict[str, type[wire.PageCancel | wire.PageCompact | wire.PageNewSession]]] = {
    "cancel": wire.PageCancel,
    "compact": wire.PageCompact,
    "new-session": wire.PageNewSession,
}
# The stats charts: metric -> (title, unit, bucket field or fields summed).
METRICS: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "turns": ("turns", "", ("turns",)),
    "duration": ("time in turns (s)", "s", ("duration_ms",)),
    "tokens": ("input + output tokens", "", ("input_tokens", "output_tokens")),
    "cache": ("cache reads + writes", "", ("cache_read_tokens", "cache_creation_tokens")),
    "cost": ("cost (USD)", "$", ("cost_usd",)),
    "tools": ("tool calls", "", ("tool_calls",)),
}
_RECONNECT: Final = 2.0
_BUCKETS: Final = {"hour": 48, "day": 30}


def _seq_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"{name} must be a whole number")
    return int(raw)


def _frame(data: dict[str, Any], seq: int | None = None) -> bytes:
    head = b"id: %d\n" % seq if seq is not None else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


async def agent_stream(link: HarnessLink, after: int | None) -> AsyncIterator[bytes]:
    """The body of ``/agent/<name>/events/stream``.

    Frames: ``hello`` first (``after``: the seq it continues after, ``resumed``), then each
    event as ``{"seq", "at", "kind", "data"}`` with ``id: <seq>`` (the harness's seqs continue
    across its restarts, so a reconnecting browser's Last-Event-ID resumes exactly). When the
    harness cannot be reached a ``harness_down`` frame says why and the stream retries every
    2 s, resuming after the last event it sent; ``harness_up`` marks each (re)connection.
    """
    yield b"retry: %d\n\n" % RETRY_MS + _frame(
        {"kind": "hello", "after": after, "resumed": after is not None}
    )
    down = None
    while True:
        try:
            async with link.open_feed(after) as feed:
                down = None
                yield _frame({"kind": "harness_up"})
                while True:
                    event = None
                    with trio.move_on_after(HEARTBEAT):
                        event = await feed.next()
                    if event is None:
                        yield b": ping\n\n"
                        continue
                    if after is not None and event.seq <= after:
                        continue
                    after = event.seq
                    yield _frame(wire.to_json(event), event.seq)
        except HarnessUnreachable as exc:
            if str(exc) != down:
                down = str(exc)
                yield _frame({"kind": "harness_down", "error": down})
        await trio.sleep(_RECONNECT)


def _bucket_label(start: float, bucket: str) -> str:
    moment = time.gmtime(start)
    return time.strftime("%H:00" if bucket == "hour" else "%m-%d", moment)


def install(app: QuartTrio, ops: DashboardOps, asset: Callable[[str], Response]) -> None:
    """Add the per-agent routes to the dashboard `app` (see the module docstring)."""

    def link(name: str) -> HarnessLink:
        return ops.harness_link(name)

    @app.get("/agent/<name>")
    async def agent_bare(name: str) -> Response:
        return Response(status=308, headers={"Location": f"/agent/{name}/"})

    @app.get("/agent/<name>/")
    async def agent_index(name: str) -> Response:
        link(name)  # an unknown agent is a 404
        return asset("agent.html")

    @app.get("/agent/<name>/stats")
    async def agent_stats_page(name: str) -> Response:
        link(name)
        return asset("stats.html")

    @app.get("/agent/<name>/api/state")
    async def agent_state(name: str) -> Response:
        harness = link(name)
        view = await ops.agent_view(name)
        try:
            state: wire.PageState | None = await harness.call(wire.PageGetState(), wire.PageState)
            problem = None
        except HarnessUnreachable as exc:
            state, problem = None, str(exc)
        # In words: the live report's, read as the daemon reads its rows; else the row's own.
        if state is not None:
            paused, waiting = (view.paused, view.pending_messages) if view else (False, 0)
            word, reason = doing(
                state.report, time.time(), paused=paused, pending_messages=waiting, name=name
            )
        else:
            word, reason = (view.semantic, view.reason) if view is not None else ("", "")
        return ok(
            agent=name,
            container=view,
            harness=state,
            harness_error=problem,
            semantic=word,
            reason=reason,
        )

    @app.get("/agent/<name>/events/history")
    async def agent_history(name: str) -> Response:
        limit = max(1, min(request.args.get("limit", 500, type=int) or 500, 2000))
        asked = wire.PageHistory(
            after_seq=_seq_arg("after_seq") or 0, limit=limit, before_seq=_seq_arg("before_seq")
        )
        reply = await link(name).call(asked, wire.PageEvents)
        events = [wire.to_json(checked_event(e)) for e in reply.events]
        return json_response({"ok": True, "events": events, "last_seq": reply.last_seq})

    @app.get("/agent/<name>/events/stream")
    async def agent_events(name: str) -> Response:
        harness = link(name)
        raw = request.headers.get("last-event-id") or request.args.get("last_event_id") or ""
        after = int(raw) if raw.isdigit() and len(raw) <= 18 else None
        response = Response(agent_stream(harness, after), content_type="text/event-stream")
        response.timeout = None
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"
        return response

    @app.post("/agent/<name>/api/<control>")
    async def agent_control(name: str, control: str) -> Response:
        harness = link(name)
        if control == "model":
            body = await json_body()
            model = text_field(body, "model", required=False).strip()
            if len(model) > 100 or any(c.isspace() for c in model):
                raise BadRequest("a model name is one word of at most 100 characters")
            await harness.command(wire.PageSetModel(model or None))
            return ok(model=model or None)
        if control not in CONTROLS:
            return json_response({"ok": False, "error": f"no control {control!r}"}, 404)
        await harness.command(CONTROLS[control]())
        return ok()

    @app.get("/agent/<name>/login/state")
    async def agent_login_state(name: str) -> Response:
        state = await link(name).call(wire.PageGetState(), wire.PageState)
        return ok(logged_in=state.logged_in, login=state.login, report=state.report)

    @app.post("/agent/<name>/login/<step>")
    async def agent_login(name: str, step: str) -> Response:
        harness = link(name)  # an unknown agent is a 404
        if step in ("token", "api-key"):
            value = text_field(await json_body(), "value")
            kind = "oauth_token" if step == "token" else "api_key"
            # The credential goes to the harness only: never logged, never in an event.
            await harness.command(wire.PageLogin(kind, value))
            return ok()
        if step == "start":
            return ok(login=await harness.call(wire.PageLoginStart(), wire.LoginFlow))
        if step == "code":
            code = text_field(await json_body(), "code")
            return ok(login=await harness.call(wire.PageLoginCode(code), wire.LoginFlow))
        if step == "logout":
            # The daemon's own work (its credential store, the agent's files), not the harness's.
            removed, restarted = await ops.logout(name)
            return ok(removed=removed, restarted=restarted)
        return json_response({"ok": False, "error": f"no login step {step!r}"}, 404)

    async def stats_of(name: str) -> wire.PageStats:
        bucket = request.args.get("bucket", "hour")
        if bucket not in _BUCKETS:
            raise BadRequest("bucket must be hour or day")
        asked = wire.PageGetStats(bucket=bucket, buckets=_BUCKETS[bucket])
        return await link(name).call(asked, wire.PageStats)

    @app.get("/agent/<name>/stats.json")
    async def agent_stats(name: str) -> Response:
        return ok(stats=await stats_of(name))

    @app.get("/agent/<name>/stats/<metric>.svg")
    async def agent_chart(name: str, metric: str) -> Response:
        if metric not in METRICS:
            return json_response({"ok": False, "error": f"no chart {metric!r}"}, 404)
        stats = await stats_of(name)
        title, unit, fields = METRICS[metric]
        values = [sum(float(getattr(b, f)) for f in fields) for b in stats.buckets]
        if metric == "duration":
            values = [v / 1000 for v in values]
        labels = [_bucket_label(b.start, stats.bucket) for b in stats.buckets]
        colour = list(METRICS).index(metric)
        svg = bar_chart(
            f"{title}, per {stats.bucket} (UTC)", labels, values, unit=unit, colour=colour
        )
        return Response(svg, content_type="image/svg+xml")

    @app.get("/agent/<name>/inbox")
    async def agent_inbox(name: str) -> Response:
        link(name)
        pending, inflight = await ops.agent_inbox(name)
        return ok(pending=pending, inflight=inflight)

    @app.get("/agent/<name>/loose-ends")
    async def agent_loose_ends(name: str) -> Response:
        link(name)
        return ok(loose_ends=await ops.agent_loose_ends(name))
