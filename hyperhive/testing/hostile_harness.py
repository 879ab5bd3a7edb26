"""A hostile stand-in for an agent's harness on its page socket: every answer is an attack.

The daemon must treat whatever an agent's harness says as hostile (docs/web-ui.md, "The agent
page"); this serves the page socket the way a model that took over its sandbox could:

- ``markup``: every answer has the expected shape, and every string in it is HTML and script
  (activity, detail, model, event kinds and data, tool names, stats keys, a ``javascript:``
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

__all__ = ["MODES", "PAYLOAD", "answer_for", "serve_hostile"]

PAYLOAD: Final = (
    '<script>window.__pwned="harness"</script><img src=x onerror="window.__pwned=\'img\'">'
    "<a href=\"javascript:window.__pwned='link'\">click</a>"
)
MODES: Final = ("markup", "raw", "huge", "silent", "deep")
_RAW: Final = (
    b"<!doctype html><html><body><script>window.__pwned='raw'</script>"
    b"<img src=x onerror=alert(1)></body></html>\n"
)


def _report() -> dict[str, Any]:
    return {"activity": PAYLOAD[:40], "since": time.time(), "detail": PAYLOAD, "tool": PAYLOAD}


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
                cmd = str(json.loads(line.split(b"\n")[0]).get("cmd"))
            except (ValueError, AttributeError):
                cmd = "?"
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
