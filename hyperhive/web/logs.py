"""`GET /logs/<name>/stream`: an agent's log, followed live, as Server-Sent Events.

The log comes from the same call as `hyperhive logs` (`Lifecycle.logs`: the backend's own
reader, journald on nixos). While a viewer is open the tail is read again every `FOLLOW`
seconds and only the lines past what was already sent go out (`new_lines`, pure). Each frame's
data is ``{"lines": [...]}``; a tail that no longer overlaps what was sent (the log was rotated,
or grew by more than a tail at once) starts with ``{"reset": true}``. The text is the agent's
own output: the page shows it as text only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import orjson
import trio

from hyperhive.errors import HyperhiveError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from hyperhive.web.ops import DashboardOps

__all__ = ["FOLLOW", "TAIL", "follow_logs", "new_lines"]

FOLLOW: Final = 1.0
TAIL: Final = 400


def new_lines(sent: Sequence[str], tail: Sequence[str]) -> tuple[list[str], bool]:
    """The lines of `tail` after what `sent` ends with, and whether they do not join up.

    The longest suffix of `sent` that is a prefix of `tail` is the overlap; no overlap (and a
    non-empty tail) means the viewer must start over with the whole tail.
    """
    if list(sent) == list(tail):
        return [], False
    for overlap in range(min(len(sent), len(tail)), 0, -1):
        if list(sent[len(sent) - overlap :]) == list(tail[:overlap]):
            return list(tail[overlap:]), False
    return list(tail), bool(sent)


async def follow_logs(ops: DashboardOps, name: str) -> AsyncIterator[bytes]:
    """Frames of `name`'s log until the client goes away."""
    sent: list[str] = []
    yield b"retry: 3000\n\n"
    while True:
        try:
            tail = (await ops.logs(name, TAIL)).splitlines()
        except HyperhiveError as exc:
            yield b"data: %s\n\n" % orjson.dumps({"error": str(exc)})
            return
        lines, reset = new_lines(sent, tail)
        if lines or reset:
            yield b"data: %s\n\n" % orjson.dumps({"lines": lines, "reset": reset})
            sent = tail
        await trio.sleep(FOLLOW)
