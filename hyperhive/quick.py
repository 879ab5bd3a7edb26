"""The `hyperhive` command's quick path: read commands answered before the CLI framework loads.

The console script enters here. ``hyperhive status`` and ``hyperhive agents`` (with
``--state-dir`` and ``--json``) are answered with the standard library alone: one blocking
connection to the admin socket, one request line, one answer line, decoded as plain JSON and
drawn as plain text. Importing typer, trio and the wire types (cattrs builds a converter for
every command), or even rich, costs several times what the answer does, and these are the
commands scripts and status bars run in a loop (docs/performance.md, "The CLI"). Anything
else, any option this module does not know, and ``--help`` go to the full CLI
(`hyperhive.cli`), which parses and reports errors the one way it always does.

The daemon is the operator's own, and what it sends is shown literally (`hyperhive.literal`):
nothing in an answer is markup, and control characters are made visible.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from rich.table import Table

__all__ = ["call", "main", "plain_table", "status_rows", "status_table"]

_TIMEOUT = 30.0  # seconds for one request: a daemon that accepts and never answers
_MAX_ANSWER = 64 << 20
_ENVELOPE = ("version", "ok", "error")


class QuickError(Exception):
    """What the operator is told, on stderr, with exit status 1."""


def call(socket_path: str, request: dict[str, Any]) -> dict[str, Any]:
    """One request on a connection of its own; the answer without its envelope.

    Raises:
        QuickError: no daemon listens there, it answered ``ok:false`` (its sentence), or it
            closed the connection or sent something that is not an answer.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_TIMEOUT)
            try:
                conn.connect(socket_path)
            except (FileNotFoundError, ConnectionRefusedError):
                raise QuickError(
                    f"no hyperhive daemon is listening on {socket_path}; start one with "
                    "`hyperhive serve` (same --state-dir / HYPERHIVE_STATE_DIR)"
                ) from None
            conn.sendall(json.dumps(request).encode() + b"\n")
            line = _read_line(conn)
    except OSError as exc:
        raise QuickError(f"talking to the daemon on {socket_path} failed: {exc}") from None
    try:
        answer = json.loads(line)
    except ValueError:
        raise QuickError("the daemon sent a line that is not JSON") from None
    if not isinstance(answer, dict):
        raise QuickError("the daemon sent a line that is not an answer")
    if not answer.get("ok"):
        raise QuickError(str(answer.get("error") or "the daemon refused the request"))
    return {key: value for key, value in answer.items() if key not in _ENVELOPE}


def _read_line(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            raise QuickError("the daemon closed the connection without answering")
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > _MAX_ANSWER:
            raise QuickError("the daemon's answer is too large")


# -- rendering --------------------------------------------------------------------------------

_STATE_STYLE = {
    "running": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "stopping": "yellow",
    "stopped": "dim",
    "failed": "bold red",
}
_HEADERS = (
    "actor",
    "kind",
    "state",
    "restarts",
    "queue",
    "last activity",
    "counters",
    "last error",
)
_RIGHT = frozenset({3, 4, 5})  # the numeric columns
Cell: TypeAlias = tuple[str, str]  # text, style


def status_rows(status: dict[str, Any]) -> tuple[str, list[list[Cell]]]:
    """The actor tree (``status``'s answer, as JSON) as a title and one row of cells per actor,
    indented under its supervisor; drawn as plain text here and as a rich table by top."""
    up = _duration(float(status.get("uptime_seconds", 0)))
    title = f"hyperhive · pid {status.get('pid')} · up {up} · {status.get('state_dir', '')}"
    at = float(status.get("at") or 0.0)
    rows = []
    for depth, node in _walk(status.get("tree") or {}, 0):
        state = str(node.get("state", ""))
        counters = node.get("counters") or {}
        rows.append(
            [
                ("  " * depth + str(node.get("id", "")), ""),
                (str(node.get("strategy") or node.get("kind", "")), ""),
                (state, _STATE_STYLE.get(state, "")),
                (str(node.get("restarts", 0)), ""),
                (_queue(node), ""),
                (_ago(at, node), ""),
                (" ".join(f"{k}={v}" for k, v in sorted(counters.items())), ""),
                (str(node.get("last_error") or ""), "red"),
            ]
        )
    return title, rows


def status_table(status: dict[str, Any]) -> Table:
    """`status_rows` as a rich table (for top, which draws with rich anyway)."""
    from rich.table import Table
    from rich.text import Text

    from hyperhive.literal import literal

    title, rows = status_rows(status)
    table = Table(title=Text(title))
    for index, header in enumerate(_HEADERS):
        fold = index >= len(_HEADERS) - 2
        table.add_column(
            header,
            justify="right" if index in _RIGHT else "left",
            no_wrap=not fold,
            overflow="fold" if fold else "ellipsis",
        )
    for row in rows:
        table.add_row(*(literal(text, style) for text, style in row))
    return table


_ANSI = {"green": "32", "yellow": "33", "dim": "2", "red": "31", "bold red": "1;31"}


def plain_table(title: str, rows: list[list[Cell]], *, color: bool) -> str:
    """Rows as aligned text columns (no rich: it would cost more than the whole answer), text
    from the daemon shown literally, styles as ANSI colours when `color`."""
    from hyperhive.literal import visible

    cells = [[(visible(text), style) for text, style in row] for row in rows]
    widths = [len(h) for h in _HEADERS]
    for row in cells:
        for index, (text, _) in enumerate(row):
            widths[index] = max(widths[index], len(text))

    def line(row: list[Cell]) -> str:
        parts = []
        for index, (text, style) in enumerate(row):
            padded = text.rjust(widths[index]) if index in _RIGHT else text.ljust(widths[index])
            if color and style and text:
                padded = f"\x1b[{_ANSI[style]}m{padded}\x1b[0m"
            parts.append(padded)
        return "  ".join(parts).rstrip()

    bold = ("\x1b[1m", "\x1b[0m") if color else ("", "")
    header = line([(h, "") for h in _HEADERS])
    return "\n".join([f"{bold[0]}{visible(title)}{bold[1]}", header, *map(line, cells)]) + "\n"


def _queue(node: dict[str, Any]) -> str:
    depth = node.get("queue_depth")
    if depth is None:
        return ""
    capacity = node.get("queue_capacity")
    return f"{depth}/{'∞' if capacity is None else capacity}"


def _ago(now: float, node: dict[str, Any]) -> str:
    """When the actor last took a message, as "3s ago"; "-" before its first."""
    if node.get("kind") == "supervisor":
        return ""
    last = node.get("last_message_at")
    if last is None:
        return "-"
    seconds = max(0.0, now - float(last))
    if seconds < 1:
        return "now"
    return f"{_duration(seconds)} ago" if seconds >= 60 else f"{int(seconds)}s ago"


def _walk(node: dict[str, Any], depth: int) -> Iterator[tuple[int, dict[str, Any]]]:
    yield depth, node
    for child in node.get("children") or ():
        yield from _walk(child, depth + 1)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


# -- the commands --------------------------------------------------------------------------------


def _status(socket_path: str, as_json: bool) -> None:
    reply = call(socket_path, {"cmd": "status"})
    if as_json:
        print(json.dumps(reply, indent=2))
        return
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    sys.stdout.write(plain_table(*status_rows(reply), color=color))


def _agents(socket_path: str, as_json: bool) -> None:
    from hyperhive.literal import visible

    reply = call(socket_path, {"cmd": "list"})  # the manager too
    if as_json:
        print(json.dumps(reply, indent=2))
        return
    for name in reply.get("agents") or ():
        print(visible(str(name)))


QUICK: dict[str, Callable[[str, bool], None]] = {"status": _status, "agents": _agents}


def _parse(args: list[str]) -> tuple[str | None, bool] | None:
    """``--state-dir DIR`` / ``--state-dir=DIR`` and ``--json``; None for anything else."""
    state_dir: str | None = None
    as_json = False
    rest = iter(args)
    for arg in rest:
        if arg == "--json":
            as_json = True
        elif arg == "--state-dir":
            state_dir = next(rest, None)
            if not state_dir:
                return None
        elif arg.startswith("--state-dir=") and len(arg) > len("--state-dir="):
            state_dir = arg.removeprefix("--state-dir=")
        else:
            return None
    return state_dir, as_json


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the quick path when it applies, else the full CLI."""
    args = sys.argv[1:] if argv is None else argv
    command = QUICK.get(args[0]) if args else None
    parsed = _parse(args[1:]) if command is not None else None
    if command is None or parsed is None:
        from hyperhive.cli import main as full

        full()
        return
    from hyperhive.config import StatePaths, resolve_state_dir

    state_dir, as_json = parsed
    socket_path = os.fspath(StatePaths(resolve_state_dir(state_dir)).admin_socket)
    try:
        command(socket_path, as_json)
    except QuickError as exc:
        _complain(str(exc))
        sys.exit(1)
    except BrokenPipeError:  # `hyperhive agents | head -1`
        sys.stderr.close()
        sys.exit(0)


def _complain(text: str) -> None:
    from hyperhive.literal import visible

    label = "\x1b[1;31merror:\x1b[0m" if sys.stderr.isatty() else "error:"
    print(f"{label} {visible(text)}", file=sys.stderr)
