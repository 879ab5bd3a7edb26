"""The approval queue as `top` sees it: the original's host-socket verbs, one per connection.

``{"cmd":"pending"}`` answers ``approvals``: rows with ``id``, ``agent``, ``kind``,
``requested_at`` (RFC 3339), ``status``, ``description``, ``commit_ref``, ``fetched_sha``,
``resolved_at``, ``note`` (the `hyperhive.core.approvals.Approval` row at the wire);
``{"cmd":"approve","id":I}`` and ``{"cmd":"deny","id":I,"note":"..."}`` decide one. A daemon
without the approval flow answers ``ok: false`` to ``pending``, which `pending` turns into
None and the sentence the daemon gave, so the pane says so instead of pretending the queue is
empty.

``{"cmd":"approval_diff","id":I}`` answers the capability diff and the unified diff, which
`diff` turns into one text: the capability lines (``+`` grants, ``-`` revokes, ``~``
changes), then the diff.

The rows carry text the manager wrote (descriptions, notes, diffs): every field is
type-checked and clipped here, and rendered literally later.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import attrs
import trio

from hyperhive import wire
from hyperhive.errors import LineTooLong, NotRunning, RemoteError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ApprovalDesk", "HostSocketDesk", "diff_text", "parse_rows"]

_MAX_ROWS: Final = 200
_MAX_TEXT: Final = 4000  # core.approvals.MAX_DESCRIPTION
_MAX_FIELD: Final = 200
_LONG_TEXT: Final = {"description": _MAX_TEXT, "note": _MAX_TEXT}
_MAX_DIFF: Final = 256 * 1024  # config_repo's diff cap
_TIMEOUT: Final = 10.0


def _text(obj: dict[str, Any], key: str, limit: int = _MAX_FIELD) -> str | None:
    value = obj.get(key)
    return value[:limit] if isinstance(value, str) else None


def parse_rows(obj: object) -> list[wire.Approval]:
    """The well-formed rows of a ``pending`` reply's ``approvals`` (others are skipped)."""
    rows = obj.get("approvals") if isinstance(obj, dict) else None
    if not isinstance(rows, list):
        return []
    parsed = (_row(raw) for raw in rows[:_MAX_ROWS] if isinstance(raw, dict))
    return [row for row in parsed if row is not None]


def _row(raw: dict[str, Any]) -> wire.Approval | None:
    """`raw` as the wire's row, or None if malformed. The fields come from `wire.Approval`
    itself: ``id`` an integer, every other one text, type-checked and clipped (the manager
    wrote the description); a field without a default must be there."""
    values: dict[str, Any] = {}
    for field in attrs.fields(wire.Approval):
        if field.name == "id":
            value: Any = raw.get("id")
            if not isinstance(value, int) or isinstance(value, bool):
                return None
        else:
            value = _text(raw, field.name, _LONG_TEXT.get(field.name, _MAX_FIELD))
            if value is None and field.default is attrs.NOTHING:
                return None
        values[field.name] = value
    return wire.Approval(**values)


def diff_text(reply: dict[str, Any]) -> str:
    """An ``approval_diff`` reply as one text: the capability diff, then the unified diff."""
    lines = ["capabilities:"]
    error = _text(reply, "capability_error", _MAX_TEXT)
    changes = reply.get("capabilities")
    if error is not None:
        lines.append(f"  (none: {error})")
    elif isinstance(changes, list) and changes:
        lines.extend("  " + _capability(change) for change in changes[:_MAX_ROWS])
    else:
        lines.append("  no change to what the agent may do")
    diff = _text(reply, "diff", _MAX_DIFF) or ""
    truncated = " (cut short)" if reply.get("diff_truncated") is True else ""
    return "\n".join([*lines, f"diff from {_text(reply, 'base') or 'nothing'}{truncated}:", diff])


def _capability(change: object) -> str:
    """One capability line as `hyperhive diff` prints it (`config_repo.capabilities`)."""
    from hyperhive.config_repo.capabilities import Change, render_text

    if not isinstance(change, dict):
        return "~ ?"
    given = change.get("effect")
    effect: Literal["grants", "revokes", "changes"] = (
        "grants" if given == "grants" else "revokes" if given == "revokes" else "changes"
    )
    area, subject = _text(change, "area") or "?", _text(change, "subject") or ""
    row = Change(area, effect, subject, _text(change, "before"), _text(change, "after"))
    return render_text([row])


class ApprovalDesk(Protocol):
    """What `top` needs from the approval flow."""

    async def pending(self) -> tuple[list[wire.Approval] | None, str]: ...

    async def diff(self, id: int) -> str | None: ...

    async def approve(self, id: int) -> None: ...

    async def deny(self, id: int, note: str) -> None: ...


class HostSocketDesk:
    """The verbs over the admin socket, one request per connection (see the module docstring)."""

    def __init__(self, socket: Path) -> None:
        self._socket = socket

    async def pending(self) -> tuple[list[wire.Approval] | None, str]:
        try:
            reply = await self._ask({"cmd": "pending"})
        except RemoteError as exc:
            return None, str(exc)
        return parse_rows(reply), ""

    async def diff(self, id: int) -> str | None:
        try:
            reply = await self._ask({"cmd": "approval_diff", "id": id})
        except RemoteError:
            return None
        return diff_text(reply)

    async def approve(self, id: int) -> None:
        await self._ask({"cmd": "approve", "id": id})

    async def deny(self, id: int, note: str) -> None:
        await self._ask({"cmd": "deny", "id": id, "note": note})

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request on a connection of its own; the reply's payload.

        Raises:
            RemoteError: ``ok: false`` (its sentence), a closed connection, or no answer.
            NotRunning: no daemon listens.
        """
        try:
            stream = await trio.open_unix_socket(os.fspath(self._socket))
        except OSError as exc:
            raise NotRunning(f"no hyperhive daemon is listening on {self._socket}") from exc
        line = None
        async with stream:
            with trio.move_on_after(_TIMEOUT):
                try:
                    await stream.send_all(json.dumps(request).encode() + b"\n")
                    line = await wire.LineReader(stream).read_line()
                except (trio.BrokenResourceError, LineTooLong) as exc:
                    raise RemoteError(f"the daemon's answer was unusable: {exc}") from exc
        if line is None:
            raise RemoteError("the daemon did not answer")
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise RemoteError("the daemon's answer was not JSON") from exc
        if not isinstance(reply, dict):
            raise RemoteError("the daemon's answer was not an object")
        if not reply.get("ok"):
            raise RemoteError(str(reply.get("error") or "refused"))
        return reply
