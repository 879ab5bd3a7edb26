"""A scripted Anthropic Messages API on loopback, for running the real `claude` binary in tests.

Point Claude Code at it with ``ANTHROPIC_BASE_URL=model_api.base_url`` and any API key. Every
``POST /v1/messages`` is recorded (`ModelAPI.requests`) and answered by the first matching
rule; rules are added with `ModelAPI.on`. Without a matching rule the server plays a polite
model: a compaction request gets a summary, a request that ends with a tool result gets
"done.", anything else "ok.".

Replies:

- `Text` — an assistant message streamed as SSE (``stream: true``) or returned as JSON;
- `ToolCall` — a ``tool_use`` block (e.g. ``mcp__hive__send``); the next request of that
  conversation carries its result;
- `ApiError` — an HTTP error with the API's error body (`rate_limited`, `prompt_too_long`,
  `overloaded` build the common ones);
- `Hold` — do not answer until `release` is set (a turn that hangs, for kill tests).

Fault hooks a test needs are rules: ``api.on("RATE", rate_limited(), times=1)``.

A script that meets a request it has no step for raises `OffScript` (any exception does): the
request gets no answer and the exception ends `open_model_api`'s block at once, so a test
whose flow went wrong (a tool call that failed, say: `ApiRequest.tool_results`) fails saying
what the model was told, instead of waiting to its time limit for a step that cannot come.

`ModelAPI.answered` keeps the usage the server itself reported for each message it answered
(what Claude's turn stats must add up to), and every request carries the trio time it
arrived (`ApiRequest.received_at`), for latency measurements.

Resource handling: `open_model_api` binds 127.0.0.1 on a free port and closes it on exit; an
exception raised in its block comes out of it (inside an exception group, from its nursery). It
serves HTTP/1.1 with ``connection: close`` (one request per connection), which Claude accepts.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

if TYPE_CHECKING:
    import socket

__all__ = [
    "Answered",
    "ApiError",
    "ApiRequest",
    "Hold",
    "ModelAPI",
    "OffScript",
    "Reply",
    "Text",
    "ToolCall",
    "ToolResult",
    "open_model_api",
    "overloaded",
    "prompt_too_long",
    "rate_limited",
]

SUMMARY_TEXT: Final = (
    "<summary>The conversation so far, summarised by the scripted model.</summary>"
)
_MAX_HEAD: Final = 64 * 1024
_MAX_BODY: Final = 64 * 1024 * 1024


class OffScript(AssertionError):
    """Raised by a script for a request it has no step for (see the module docstring)."""


@attrs.frozen
class ToolResult:
    """A tool's result in the request's last user message, with the call it answers."""

    name: str  # the tool called ("" if its call is not in the conversation)
    input: Mapping[str, Any]
    text: str
    is_error: bool


@attrs.frozen
class ApiRequest:
    """One request Claude made, with the helpers tests match on."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    received_at: float = 0.0  # trio.current_time() when its body had been read

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def last_user_text(self) -> str:
        """The text of the last user message (tool results shown as ``[tool_result] ...``)."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return _text(users[-1].get("content")) if users else ""

    @property
    def all_text(self) -> str:
        return "\n".join(_text(m.get("content")) for m in self.messages)

    @property
    def system_text(self) -> str:
        system = self.body.get("system")
        if isinstance(system, str):
            return system
        if isinstance(system, list):
            return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
        return ""

    @property
    def ends_with_tool_result(self) -> bool:
        users = [m for m in self.messages if m.get("role") == "user"]
        content = users[-1].get("content") if users else None
        return isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        )

    @property
    def tool_results(self) -> list[ToolResult]:
        """The tool results the last user message carries, in order."""
        users = [m for m in self.messages if m.get("role") == "user"]
        content = users[-1].get("content") if users else None
        calls = {
            block.get("id"): block
            for message in self.messages
            if message.get("role") == "assistant" and isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_use"
        }
        results = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            call = calls.get(block.get("tool_use_id"), {})
            arguments = call.get("input")
            results.append(
                ToolResult(
                    str(call.get("name", "")),
                    arguments if isinstance(arguments, dict) else {},
                    _text(block.get("content")),
                    block.get("is_error") is True,
                )
            )
        return results

    @property
    def is_compaction(self) -> bool:
        """Claude asking for a summary of the conversation (manual or automatic compaction)."""
        text = self.last_user_text
        return "CRITICAL: Respond with TEXT ONLY" in text or (
            "summary" in text.lower() and "Do NOT call any tools" in text
        )

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools")
        return [str(t.get("name")) for t in tools if isinstance(t, dict)] if tools else []


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append("[tool_result] " + _text(block.get("content")))
    return "\n".join(parts)


@attrs.frozen
class Text:
    text: str
    input_tokens: int | None = None  # default: a rough count of the request


@attrs.frozen
class ToolCall:
    name: str
    input: Mapping[str, Any] = attrs.field(factory=dict)
    text: str = "Let me do that."


@attrs.frozen
class ApiError:
    status: int
    type: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen(eq=False)
class Hold:
    """Keep the request open until `release` is set, then answer with `then`."""

    release: trio.Event
    then: Text | ToolCall | ApiError = Text("released.")


Reply = Text | ToolCall | ApiError | Hold
Match = Callable[[ApiRequest], bool]


@attrs.frozen
class Answered:
    """A message the server answered, with the usage it reported for it."""

    request: ApiRequest
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int


def rate_limited(
    message: str = "Number of request tokens has exceeded your rate limit",
) -> ApiError:
    return ApiError(429, "rate_limit_error", message, (("retry-after", "1"),))


def prompt_too_long() -> ApiError:
    return ApiError(
        400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"
    )


def overloaded() -> ApiError:
    return ApiError(529, "overloaded_error", "Overloaded")


@attrs.define
class _Rule:
    match: Match
    reply: Reply | Callable[[ApiRequest], Reply]
    times: int | None


class ModelAPI:
    """The scripted server. Build with `open_model_api`; script it with `on`."""

    def __init__(self) -> None:
        self.requests: list[ApiRequest] = []
        self.answered: list[Answered] = []
        self._rules: list[_Rule] = []
        self._arrived = trio.Condition()
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def on(
        self,
        match: str | Match,
        reply: Reply | Callable[[ApiRequest], Reply],
        *,
        times: int | None = None,
    ) -> ModelAPI:
        """Answer requests matching `match` with `reply` (at most `times` times).

        A string matches when it occurs in the last user message's text. Rules are tried in
        the order they were added.
        """
        if isinstance(match, str):
            needle = match

            def match(request: ApiRequest) -> bool:
                return needle in request.last_user_text

        self._rules.append(_Rule(match, reply, times))
        return self

    def fail_on_tool_errors(self) -> ModelAPI:
        """Raise `OffScript` at the first request that carries a failed tool call (tried
        before every other rule): the block ends naming the tool and what it answered."""

        def failed(request: ApiRequest) -> bool:
            return any(result.is_error for result in request.tool_results)

        def stop(request: ApiRequest) -> Reply:
            errors = [r for r in request.tool_results if r.is_error]
            raise OffScript("; ".join(f"{r.name or 'a tool'} failed: {r.text}" for r in errors))

        self._rules.insert(0, _Rule(failed, stop, None))
        return self

    async def wait_for(self, match: Match, *, count: int = 1) -> ApiRequest:
        """Wait until `count` recorded requests match; returns the last of them."""
        async with self._arrived:
            while True:
                hits = [r for r in self.requests if match(r)]
                if len(hits) >= count:
                    return hits[count - 1]
                await self._arrived.wait()

    def _choose(self, request: ApiRequest) -> Reply:
        for rule in self._rules:
            if rule.times == 0 or not rule.match(request):
                continue
            if rule.times is not None:
                rule.times -= 1
            return rule.reply(request) if callable(rule.reply) else rule.reply
        if request.is_compaction:
            return Text(SUMMARY_TEXT)
        if request.ends_with_tool_result:
            return Text("done.")
        return Text("ok.")

    async def serve(self, listener: trio.SocketListener) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                stream = await listener.accept()
                nursery.start_soon(self._handle, stream)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                parsed = await _read_request(stream)
                if parsed is None:
                    return
                method, path, headers, raw = parsed
                await self._respond(stream, method, path, headers, raw)

    async def _respond(
        self, stream: trio.SocketStream, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> None:
        if method != "POST" or not path.startswith("/v1/messages"):
            await _send_json(
                stream,
                404,
                {"type": "error", "error": {"type": "not_found_error", "message": path}},
            )
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        if path.startswith("/v1/messages/count_tokens"):
            await _send_json(stream, 200, {"input_tokens": 100 + len(raw) // 4})
            return
        request = ApiRequest(
            method, path, headers, body if isinstance(body, dict) else {}, trio.current_time()
        )
        self.requests.append(request)
        async with self._arrived:
            self._arrived.notify_all()
        reply = self._choose(request)
        if isinstance(reply, Hold):
            await reply.release.wait()
            reply = reply.then
        if isinstance(reply, ApiError):
            error = {
                "type": "error",
                "error": {"type": reply.type, "message": reply.message},
                "request_id": "req_scripted",
            }
            await _send_json(stream, reply.status, error, reply.headers)
            return
        usage = _usage(request, reply)
        self.answered.append(
            Answered(
                request,
                usage["input_tokens"],
                usage["output_tokens"],
                usage["cache_read_input_tokens"],
                usage["cache_creation_input_tokens"],
            )
        )
        await _send_message(stream, request, reply, usage)


def _usage(request: ApiRequest, reply: Text | ToolCall) -> dict[str, int]:
    tokens = reply.input_tokens if isinstance(reply, Text) else None
    if tokens is None:
        tokens = 100 + len(json.dumps(request.body.get("messages", []))) // 4
    # Small, distinct cache figures, so a test can tell every count apart.
    return {
        "input_tokens": tokens,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 5,
        "output_tokens": 12,
    }


def _blocks(reply: Text | ToolCall) -> tuple[list[dict[str, Any]], str]:
    if isinstance(reply, Text):
        return [{"type": "text", "text": reply.text}], "end_turn"
    tool = {
        "type": "tool_use",
        "id": "toolu_" + uuid.uuid4().hex[:20],
        "name": reply.name,
        "input": dict(reply.input),
    }
    return [{"type": "text", "text": reply.text}, tool], "tool_use"


async def _send_message(
    stream: trio.SocketStream, request: ApiRequest, reply: Text | ToolCall, usage: dict[str, int]
) -> None:
    blocks, stop = _blocks(reply)
    message_id = "msg_" + uuid.uuid4().hex[:24]
    model = str(request.body.get("model") or "claude-scripted")
    if not request.body.get("stream"):
        await _send_json(
            stream,
            200,
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            },
        )
        return
    start = {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        },
    }
    events: list[tuple[str, dict[str, Any]]] = [("message_start", start)]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            empty: dict[str, Any] = {"type": "text", "text": ""}
            delta: dict[str, Any] = {"type": "text_delta", "text": block["text"]}
        else:
            empty = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 12},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    payload = b"".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events
    )
    head = _head(
        200,
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("request-id", "req_scripted"),
        ],
    )
    await stream.send_all(head + payload)


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        *(f"{k}: {v}" for k, v in headers),
        "connection: close",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    529: "Overloaded",
}


async def _send_json(
    stream: trio.SocketStream,
    status: int,
    body: Mapping[str, Any],
    extra: tuple[tuple[str, str], ...] = (),
) -> None:
    data = json.dumps(body).encode()
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(data))),
        ("request-id", "req_scripted"),
        *extra,
    ]
    await stream.send_all(_head(status, headers) + data)


async def _read_request(
    stream: trio.SocketStream,
) -> tuple[str, str, dict[str, str], bytes] | None:
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk or len(buffer) > _MAX_HEAD:
            return None
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = [*request_line.split(" ", 2), "", ""][:3]
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    body = bytearray(rest)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return method, path, headers, await _read_chunked(stream, body)
    length = min(int(headers.get("content-length") or 0), _MAX_BODY)
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        body += chunk
    return method, path, headers, bytes(body[:length])


async def _read_chunked(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    body = bytearray()
    while True:
        while b"\r\n" not in buffer:
            buffer += await stream.receive_some(65536)
        size_line, _, rest = bytes(buffer).partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        buffer = bytearray(rest)
        while len(buffer) < size + 2:
            buffer += await stream.receive_some(65536)
        body += buffer[:size]
        buffer = buffer[size + 2 :]
        if size == 0 or len(body) > _MAX_BODY:
            return bytes(body)


@contextlib.asynccontextmanager
async def open_model_api(listening: socket.socket | None = None) -> AsyncIterator[ModelAPI]:
    """Serve a `ModelAPI` on 127.0.0.1 (a free port) for the duration of the block.

    `listening`: serve on this listening socket instead, say one bound inside a network
    namespace (`hyperhive.testing.netns`), which a sandboxed agent reaches where it cannot
    reach the host's loopback.
    """
    api = ModelAPI()
    if listening is None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    else:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(listening))]
    api.host, api.port = listeners[0].socket.getsockname()[:2]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(api.serve, listeners[0])
            try:
                yield api
            finally:
                nursery.cancel_scope.cancel()
    finally:
        # Closed without a checkpoint: an await here could raise Cancelled (from a scope
        # around the block that has expired) and that would replace the block's exception.
        for listener in listeners:
            listener.socket.close()
