"""The exceptions hyperhive raises, as one tree.

    HyperhiveError
    ├── ConfigError            bad settings or state directory (what to change is in the text)
    ├── AlreadyRunning         another `serve` holds the state directory
    ├── NotRunning             no daemon answers on the admin socket
    ├── WireError              a line on a socket could not be understood
    │   ├── BadRequest         malformed JSON, unknown cmd, wrong field types
    │   └── LineTooLong        a line past the size cap (the rest of it was discarded)
    ├── RemoteError            the daemon answered ok:false; `.message` is its sentence
    ├── UnknownAgent           a name that is not registered
    ├── InvalidName            a name that breaks the naming rules
    ├── NotAllowed             the caller's identity may not do this
    ├── NotFound               no question, reminder (or other row) with that id
    ├── StoreError             a sqlite store failed underneath (translated from sqlite3)
    ├── Conflict               the request clashes with current state (exists, busy, port taken)
    ├── RepoError              a config repo could not be read or changed (git's words in the text)
    ├── LimitReached           a configured bound was hit (docs/limits.md names each one)
    ├── InternalError          a bug met while answering; logged with its traceback, never shown
    └── ContainerError         a container backend failed (its stderr tail is in the text)
        └── StartFailed        an agent's container or process could not be started

Foreign errors (sqlite, subprocess, OSError from sockets) are translated at the boundary with
`raise New(...) from exc`, so a user sees a sentence that says what to do.
"""

from __future__ import annotations

__all__ = [
    "AlreadyRunning",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "ContainerError",
    "HyperhiveError",
    "InternalError",
    "InvalidName",
    "LimitReached",
    "LineTooLong",
    "NotAllowed",
    "NotFound",
    "NotRunning",
    "RemoteError",
    "RepoError",
    "StartFailed",
    "StoreError",
    "UnknownAgent",
    "WireError",
]


class HyperhiveError(Exception):
    """Root of every error hyperhive raises on purpose."""


class ConfigError(HyperhiveError):
    """Settings or the state directory are unusable."""


class AlreadyRunning(HyperhiveError):
    """Another daemon already serves this state directory."""


class NotRunning(HyperhiveError):
    """No daemon answers on the admin socket."""


class WireError(HyperhiveError):
    """A line read from a socket could not be turned into a message."""


class BadRequest(WireError):
    """Malformed JSON, an unknown `cmd` or fields of the wrong type."""


class LineTooLong(WireError):
    """A line exceeded the reader's size cap; the rest of it was skipped."""


class RemoteError(HyperhiveError):
    """The daemon answered `ok: false`; the message is its own sentence."""


class UnknownAgent(HyperhiveError):
    """The named agent is not registered."""


class InvalidName(HyperhiveError):
    """An agent name breaks the naming rules."""


class NotAllowed(HyperhiveError):
    """The caller's identity may not perform this request."""


class NotFound(HyperhiveError):
    """No row with that id (a question, a reminder): it never existed or is settled."""


class StoreError(HyperhiveError):
    """A sqlite store failed underneath an operation."""


class Conflict(HyperhiveError):
    """The request clashes with the current state (already exists, busy, a port is taken)."""


class RepoError(HyperhiveError):
    """A config repo operation failed: git refused, or a proposed repo broke the rules."""


class ContainerError(HyperhiveError):
    """A container backend failed; the text carries what it said."""


class StartFailed(ContainerError):
    """An agent's container or process could not be started."""


class LimitReached(HyperhiveError):
    """A configured bound was hit (body size, rate, inbox depth, ...); the text names it."""


class InternalError(HyperhiveError):
    """An unexpected error while answering a request: logged once with its traceback, and the
    caller is told only that (the details may hold another agent's data)."""

    def __init__(self, message: str = "internal error (logged)") -> None:
        super().__init__(message)
