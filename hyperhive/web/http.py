"""The JSON shapes every dashboard route answers with, and the request-body checks.

``{"ok": true, ...}`` or ``{"ok": false, "error": "<sentence>"}``; request bodies are JSON
objects sent as ``application/json`` (so no HTML form anywhere can post to the dashboard).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import orjson
from quart import Response, request

from hyperhive import wire
from hyperhive.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["error", "json_body", "json_response", "ok", "text_field"]


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status=status, content_type="application/json")


def ok(**fields: Any) -> Response:
    return json_response({"ok": True, **{k: wire.to_json(v) for k, v in fields.items()}})


def error(status: int, message: str) -> Response:
    return json_response({"ok": False, "error": message}, status)


async def json_body() -> Mapping[str, Any]:
    """The request's JSON object (the page always sends JSON), refused if it is anything else."""
    if request.mimetype != "application/json":
        raise BadRequest("send the request body as application/json")
    raw = await request.get_data(as_text=False)
    try:
        obj = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest("the body must be a JSON object")
    return obj


def text_field(body: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = body.get(key, "" if not required else None)
    if not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string")
    if required and not value.strip():
        raise BadRequest(f"{key!r} must not be empty")
    return value
