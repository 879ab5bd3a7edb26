"""A stand-in for an agent's harness on its page socket: canned answers, or attacks.

``canned`` answers well: a stored history of `CANNED_FILLER` output lines and then one turn
with a row of every kind docs/terminal-rendering.md lists (`canned_events`), the badges of an
agent whose Claude retries the API, and a feed that adds an output line every 0.2 s; history
requests are answered by seq as the real harness answers them.

The daemon must treat whatever an agent's harness says as hostile (docs/web-ui.md, "The agent
page"); the other modes serve the page socket the way a model that took over its sandbox could:

- ``markup``: every answer has the expected shape, and every string in it is HTML and script
  (state, detail, model, event kinds and data, tool names, stats keys, a ``javascript:``
  login URL), and the feed streams such events forever;
- ``raw``: every answer is an HTML document, not JSON;
- ``huge``: an answer that never ends (no newline, megabytes);
- ``silent``: accepts and never answers;
- ``deep``: JSON nested far past any bound.

``python -m hyperhive.testing.hostile_harness --socket PATH --mode MODE`` serves until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Final

import trio

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["CANNED_FILLER", "MODES", "PAYLOAD", "answer_for", "canned_events", "serve_hostile"]

PAYLOAD: Final = (
    '<script>window.__pwned="harness"</script><img src=x onerror="window.__pwned=\'img\'">'
    "<a href=\"javascript:window.__pwned='link'\">click</a>"
)
MODES: Final = ("canned", "markup", "raw", "huge", "silent", "deep")
CANNED_FILLER: Final = 520  # output lines before the turn: more than one history page
_RAW: Final = (
    b"<!doctype html><html><body><script>window.__pwned='raw'</script>"
    b"<img src=x onerror=alert(1)></body></html>\n"
)


def _report() -> dict[str, Any]:
    return {
        "state": PAYLOAD[:32],
        "since": time.time(),
        "detail": PAYLOAD[:300],
        "tool": PAYLOAD[:200],
    }


def _event(seq: int) -> dict[str, Any]:
    kinds = ("stream", "note", "turn_ended", PAYLOAD[:40], "stderr")
    kind = kinds[seq % len(kinds)]
    block = {"type": "tool_use", "id": PAYLOAD, "name": PAYLOAD, "input": {PAYLOAD: PAYLOAD}}
    shapes: dict[str, dict[str, Any]] = {
        "stream": {
            "type": "assistant",
            "message": {"content": [{"type": "text", "text": PAYLOAD}, block]},
        },
        "note": {"text": PAYLOAD},
        "turn_ended": {"outcome": PAYLOAD, "detail": PAYLOAD},  # the wrong shape
        "stderr": {"line": PAYLOAD},
    }
    data = shapes.get(kind, {PAYLOAD: PAYLOAD})
    return {"seq": seq, "at": time.time(), "kind": kind, "data": data}


def _stream(seq: int, line: dict[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "at": 1_796_000_000.0 + seq, "kind": "stream", "data": line}


def _assistant(*blocks: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {"type": "assistant", "message": {"content": list(blocks)}, "parent_tool_use_id": parent}


def _results(*blocks: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {"type": "user", "message": {"content": list(blocks)}, "parent_tool_use_id": parent}


def _use(id: str, name: str, **input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def _result(id: str, content: Any, *, error: bool = False) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id, "content": content, "is_error": error}


def canned_events() -> list[dict[str, Any]]:
    """The ``canned`` history: filler output lines, then one turn of every row kind."""
    events = [
        {"seq": n, "at": 1_796_000_000.0 + n, "kind": "output", "data": {"line": f"filler {n}"}}
        for n in range(1, CANNED_FILLER + 1)
    ]
    harness = {
        "turn_started": {
            "wake_from": "inbox",
            "messages": 1,
            "model": "claude-sonnet-4-5",
            "fresh_session": False,
            "compact_first": False,
        },
        "stderr": {"line": "warning: a line on stderr"},
        "note": {"text": "compaction requested"},
    }
    lines: list[dict[str, Any]] = [
        {"type": "system", "subtype": "init", "session_id": "s-1", "model": "m", "tools": []},
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": 2,
            "max_retries": 10,
            "error": "overloaded",
            "error_status": 529,
        },
        _assistant({"type": "thinking", "thinking": "secret plan"}),
        _assistant(_use("t1", "Task", description="survey the notes", prompt="read *all*")),
        _assistant({"type": "text", "text": "sub-agent says hi"}, parent="t1"),
        _assistant(_use("t2", "Read", file_path="/state/notes/a.md"), parent="t1"),
        _results(_result("t2", "contents of a"), parent="t1"),
        _results(_result("t1", "survey done")),
        _assistant(
            _use(
                "t3",
                "MultiEdit",
                file_path="/state/b.md",
                edits=[
                    {"old_string": "one", "new_string": "uno"},
                    {"old_string": "two", "new_string": "dos"},
                ],
            )
        ),
        _assistant(_use("t4", "mcp__notes__search", query="colour", limit=3)),
        _results(_result("t4", [{"type": "text", "text": "found 3"}])),
        _assistant(_use("t5", "mcp__hive__recv", wait_seconds=30)),
        _results(_result("t5", "from: bob\n\n**hello** alice")),
        _assistant(_use("t6", "mcp__hive__ask", question="which *colour*?", options=["a", "b"])),
        _results(_result("t6", "no such agent", error=True)),
        {"type": "fancy_new_type", "what": "claude grew a new line type"},
        {"type": "result", "subtype": "success", "duration_ms": 4200, "is_error": False},
    ]
    seq = CANNED_FILLER
    for kind, data in harness.items():
        seq += 1
        events.append({"seq": seq, "at": 1_796_000_000.0 + seq, "kind": kind, "data": data})
    for line in lines:
        seq += 1
        events.append(_stream(seq, line))
    ended = {
        "outcome": "ok",
        "detail": "",
        "duration_ms": 4300,
        "ctx": 12400,
        "cost_usd": 0.0123,
        "tool_calls": {"Task": 1, "MultiEdit": 1, "mcp__hive__recv": 1},
        "model": "claude-sonnet-4-5",
        "warm": True,
    }
    events.append(
        {"seq": seq + 1, "at": 1_796_000_000.0 + seq + 1, "kind": "turn_ended", "data": ended}
    )
    events.append(
        {"seq": seq + 2, "at": 1_796_000_000.0 + seq + 2, "kind": "fancy_event", "data": {"x": 1}}
    )
    return events


def _canned_answer(request: dict[str, Any]) -> dict[str, Any]:
    cmd = request.get("cmd")
    if cmd == "history":
        after, before = int(request.get("after_seq") or 0), request.get("before_seq")
        limit = int(request.get("limit") or 500)
        events = canned_events()
        chosen = [e for e in events if e["seq"] > after and (before is None or e["seq"] < before)]
        return {"ok": True, "events": chosen[-limit:], "last_seq": events[-1]["seq"]}
    if cmd == "state":
        report = {
            "state": "running",
            "since": time.time(),
            "retry": {"attempt": 2, "max_retries": 10, "error": "overloaded", "status": 529},
        }
        return {
            "ok": True,
            "report": report,
            "model": "claude-sonnet-4-5",
            "ctx": 12400,
            "context_window": 200000,
            "cost_usd": 0.0123,
            "logged_in": True,
            "runtime": "claude",
        }
    if cmd == "stats":
        return {
            "ok": True,
            "bucket": "hour",
            "buckets": [],
            "models": {},
            "tools": {},
            "results": {},
        }
    return {"ok": True}


def answer_for(cmd: str) -> dict[str, Any]:
    """The ``markup`` answer to one command: the right shape, HTML and script in every string."""
    bucket = {
        "start": time.time() // 3600 * 3600,
        **dict.fromkeys(
            ("turns", "ok", "duration_ms", "input_tokens", "output_tokens", "tool_calls"), 1
        ),
        "cache_read_tokens": 0,
        "cache_creation_tokens": 0,
        "cost_usd": 0.5,
    }
    flow = {"status": PAYLOAD[:20], "url": f"javascript:{PAYLOAD}", "detail": PAYLOAD}
    answers: dict[str, dict[str, Any]] = {
        "state": {
            "report": _report(),
            "model": PAYLOAD[:100],
            "ctx": 5,
            "cost_usd": 0.1,
            "logged_in": False,
            "login": flow,
            "runtime": PAYLOAD[:40],
        },
        "history": {"events": [_event(n) for n in range(1, 30)], "last_seq": 29},
        "stats": {
            "bucket": "hour",
            "buckets": [bucket],
            "models": {PAYLOAD: 1},
            "tools": {PAYLOAD: 2},
            "results": {PAYLOAD: 1},
            "recent": [{"model": PAYLOAD, "wake_from": PAYLOAD, "result_kind": PAYLOAD}],
        },
        "login_start": flow,
        "login_code": flow,
    }
    return {"ok": True, **answers.get(cmd, {"error": PAYLOAD})}


async def _handle(stream: trio.SocketStream, mode: str) -> None:
    async with stream:
        line = b""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while b"\n" not in line and len(line) < 65536:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                line += chunk
            try:
                request = json.loads(line.split(b"\n")[0])
                cmd = str(request.get("cmd"))
            except (ValueError, AttributeError):
                request, cmd = {}, "?"
            if mode == "canned" and cmd == "subscribe":
                await stream.send_all(b'{"ok":true}\n')
                seq = int(request.get("after_seq") or 0)
                seq = max(seq, canned_events()[-1]["seq"])
                while True:
                    seq += 1
                    line_data = {"line": f"live {seq}"}
                    event = {"seq": seq, "at": time.time(), "kind": "output", "data": line_data}
                    await stream.send_all(json.dumps(event).encode() + b"\n")
                    await trio.sleep(0.2)
            if mode == "canned":
                await stream.send_all(json.dumps(_canned_answer(request)).encode() + b"\n")
                return
            if mode == "silent":
                await trio.sleep_forever()
            if mode == "raw":
                await stream.send_all(_RAW)
            elif mode == "huge":
                while True:
                    await stream.send_all(b"<b>" * 65536)
            elif mode == "deep":
                await stream.send_all(b'{"ok":true,"report":' + b"[" * 5000 + b"]" * 5000 + b"}\n")
            elif cmd == "subscribe":
                await stream.send_all(b'{"ok":true}\n')
                seq = 100
                while True:
                    seq += 1
                    await stream.send_all(json.dumps(_event(seq)).encode() + b"\n")
                    await stream.send_all(_RAW)  # not an event: skipped
                    await trio.sleep(0.2)
            else:
                await stream.send_all(json.dumps(answer_for(cmd)).encode() + b"\n")


async def serve_hostile(
    path: Path, mode: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve `mode` on a unix socket at `path` (its directory is created) until cancelled."""
    os.makedirs(path.parent, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    task_status.started()
    try:

        async def handle(stream: trio.SocketStream) -> None:
            await _handle(stream, mode)

        await trio.serve_listeners(handle, [listener])
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hyperhive.testing.hostile_harness")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--mode", choices=MODES, default="markup")
    args = parser.parse_args()
    from pathlib import Path

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve_hostile, Path(args.socket), args.mode)


if __name__ == "__main__":
    main()
