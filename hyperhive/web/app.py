"""The dashboard app: `create_app(ops, settings)` builds the quart-trio app.

Routes parse and validate a request, call one `DashboardOps` method and render its answer as
JSON; every rule lives behind the handle (docs/web-ui.md lists the endpoints). Every request
goes through `_guard` first (Host, token, same-origin: `hyperhive.web.security`) and every
response gets the security headers. Errors are one JSON shape, ``{"ok": false, "error": ...}``,
with a status that says what kind: 400 bad input, 403 refused, 404 unknown, 409 conflict,
503 unavailable, 500 a bug (logged, the sentence stays generic).

Assets are read once from `hyperhive/web/assets/` into memory; only those files are served.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import attrs
from quart import Response, request
from quart_trio import QuartTrio

from hyperhive import wire
from hyperhive.errors import (
    BadRequest,
    Conflict,
    ContainerError,
    HyperhiveError,
    InvalidName,
    NotAllowed,
    NotFound,
    UnknownAgent,
)
from hyperhive.web import agent_page, security
from hyperhive.web.http import error as _error
from hyperhive.web.http import json_body as _body
from hyperhive.web.http import json_response as _json_response
from hyperhive.web.http import ok as _ok
from hyperhive.web.http import text_field as _text
from hyperhive.web.logs import follow_logs
from hyperhive.web.ops import LIFECYCLE_ACTIONS
from hyperhive.web.sse import FrameCache, concerns, event_stream

if TYPE_CHECKING:
    from collections.abc import Callable

    from hyperhive.web.ops import DashboardOps

__all__ = ["WebSettings", "create_app"]

LOGGER = logging.getLogger("hyperhive.web")
MAX_BODY: Final = 2 * 1024 * 1024
MAX_STREAMS: Final = 256
_MIMETYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@attrs.frozen
class WebSettings:
    """How the app checks requests: the bind it answers for, the operator token if any."""

    bind: security.Bind
    token: str | None = None
    host_names: tuple[str, ...] = ()


def _load_assets() -> dict[str, tuple[bytes, str]]:
    assets: dict[str, tuple[bytes, str]] = {}
    root = resources.files("hyperhive.web") / "assets"

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
            elif (suffix := "." + child.name.rpartition(".")[2]) in _MIMETYPES:
                assets[name] = (child.read_bytes(), _MIMETYPES[suffix])

    walk(root, "")
    return assets


_STATUS: Final[tuple[tuple[type[HyperhiveError], int], ...]] = (
    (NotFound, 404),
    (UnknownAgent, 404),
    (NotAllowed, 403),
    (Conflict, 409),
    (InvalidName, 400),
    (BadRequest, 400),
    (ContainerError, 503),
)


def _status_of(exc: HyperhiveError) -> int:
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 400)


def create_app(ops: DashboardOps, settings: WebSettings) -> QuartTrio:
    """The dashboard app over `ops` (see the module docstring).

    No work is started in the app's nursery: every request is answered by calls into the
    hive's handles, and streams end with their connection.
    """
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    assets = _load_assets()
    cache = FrameCache(ops.boot)
    streams = {"open": 0}

    @app.before_request
    async def _guard() -> Response | None:
        ops.stats.began()
        host = request.headers.get("host")
        if not security.host_allowed(host, settings.bind, settings.host_names):
            return _error(403, "unexpected Host header; open the dashboard by its own address")
        headers = {k.lower(): v for k, v in request.headers.items()}
        refusal = security.same_origin_refusal(request.method, headers, host or "")
        if refusal is not None:
            return _error(403, refusal)
        if request.path in ("/login", "/assets/login.js", "/assets/base.css"):
            return None
        offered = request.cookies.get(security.COOKIE)
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        if not security.token_matches(settings.token, offered):
            page = request.path == "/" or (
                request.path.startswith("/agent/") and request.path.endswith(("/", "/stats"))
            )
            if request.method == "GET" and page:
                return Response(status=303, headers={"Location": "/login"})
            return _error(401, "log in first: open /login and enter the operator token")
        return None

    @app.after_request
    async def _headers(response: Response) -> Response:
        ops.stats.ended()
        for key, value in security.SECURITY_HEADERS.items():
            response.headers[key] = value
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HyperhiveError)
    async def _hyperhive_error(exc: HyperhiveError) -> Response:
        return _error(_status_of(exc), str(exc))

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        status = getattr(exc, "code", None)
        if isinstance(status, int) and 400 <= status < 500:
            return _error(status, getattr(exc, "description", None) or "bad request")
        LOGGER.exception("dashboard request %s %s failed", request.method, request.path)
        return _error(500, f"internal error ({type(exc).__name__}); see the daemon's log")

    # -- pages and assets ---------------------------------------------------------------------

    def _asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            return _error(404, f"no asset {name!r}")
        data, mimetype = found
        response = Response(data, content_type=mimetype)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/")
    async def index() -> Response:
        return _asset("index.html")

    @app.get("/login")
    async def login_page() -> Response:
        return _asset("login.html")

    @app.post("/login")
    async def login() -> Response:
        offered = _text(await _body(), "token")
        if settings.token is None or not security.token_matches(settings.token, offered):
            return _error(403, "that is not the operator token")
        response = _ok()
        response.set_cookie(
            security.COOKIE, offered, httponly=True, samesite="Strict", path="/", secure=False
        )
        return response

    @app.get("/assets/<path:name>")
    async def asset(name: str) -> Response:
        return _asset(name)

    agent_page.install(app, ops, _asset)

    # -- reads --------------------------------------------------------------------------------

    @app.get("/api/state")
    async def state() -> Response:
        return _ok(state=await ops.snapshot())

    @app.get("/dashboard/history")
    async def history() -> Response:
        limit = max(0, min(request.args.get("limit", 500, type=int) or 0, 1000))
        reply = await ops.history(limit)
        messages = await ops.recent_messages()
        return _json_response(
            {
                "ok": True,
                "boot": ops.boot,
                "seq": reply.seq,
                "events": [wire.to_json(event) for event in reply.events],
                "messages": [wire.to_json(m) for m in reversed(messages)],
            }
        )

    def hub_stream(keep: Callable[[wire.Event], bool] | None) -> Response:
        if streams["open"] >= MAX_STREAMS:
            return _error(503, f"too many open streams (at most {MAX_STREAMS})")
        last = request.headers.get("last-event-id") or request.args.get("last_event_id")

        async def body() -> Any:
            streams["open"] += 1
            try:
                async for chunk in event_stream(ops, last, cache, keep):
                    yield chunk
            finally:
                streams["open"] -= 1

        response = Response(body(), content_type="text/event-stream")
        response.timeout = None
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"
        return response

    @app.get("/dashboard/stream")
    async def stream() -> Response:
        return hub_stream(None)

    @app.get("/agent/<name>/inbox/stream")
    async def agent_inbox_stream(name: str) -> Response:
        ops.harness_link(name)  # an unknown agent is a 404
        return hub_stream(lambda event: concerns(name, event.payload))

    @app.get("/api/file")
    async def file_preview() -> Response:
        agent, path = request.args.get("agent", ""), request.args.get("path", "")
        shown, data = await ops.read_file(agent, path)
        text = data.decode("utf-8", errors="replace")
        return _ok(agent=agent, path=shown, size=len(data), text=text)

    @app.get("/logs/<name>")
    async def logs(name: str) -> Response:
        lines = max(1, min(request.args.get("lines", 200, type=int) or 200, 5000))
        return _ok(name=name, text=await ops.logs(name, lines))

    @app.get("/logs/<name>/stream")
    async def logs_stream(name: str) -> Response:
        await ops.logs(name, 1)  # an unknown agent is a 404 now, not a broken stream
        response = Response(follow_logs(ops, name), content_type="text/event-stream")
        response.timeout = None
        return response

    # -- actions ------------------------------------------------------------------------------

    @app.post("/op-send")
    async def op_send() -> Response:
        body = await _body()
        message = await ops.send(_text(body, "to").strip(), _text(body, "body"))
        return _ok(message=message)

    @app.post("/answer-question/<int:id>")
    async def answer_question(id: int) -> Response:
        question = await ops.answer_question(id, _text(await _body(), "answer"))
        return _ok(question=question)

    @app.post("/cancel-question/<int:id>")
    async def cancel_question(id: int) -> Response:
        await ops.cancel_question(id)
        return _ok()

    @app.get("/api/approvals/<int:id>")
    async def approval(id: int) -> Response:
        return _ok(approval=await ops.approval(id))

    @app.post("/approve/<int:id>")
    async def approve(id: int) -> Response:
        return _ok(approval=await ops.approve(id))

    @app.post("/deny/<int:id>")
    async def deny(id: int) -> Response:
        reason = _text(await _body(), "reason")
        return _ok(approval=await ops.deny(id, reason.strip()))

    @app.post("/<action>/<name>")
    async def lifecycle(action: str, name: str) -> Response:
        if action == "purge-tombstone":
            await ops.purge_tombstone(name)
            return _ok()
        if action in ("pause", "resume"):
            return _ok(container=await ops.set_paused(name, action == "pause"))
        if action not in LIFECYCLE_ACTIONS:
            return _error(404, f"no action {action!r}")
        return _ok(container=await ops.lifecycle(action, name))

    @app.post("/dead-letter/<int:id>/<verb>")
    async def dead_letter(id: int, verb: str) -> Response:
        if verb == "replay":
            return _ok(message=await ops.replay_dead(id))
        if verb == "drop":
            await ops.drop_dead(id)
            return _ok()
        return _error(404, f"dead letters can be replayed or dropped, not {verb!r}")

    return app
