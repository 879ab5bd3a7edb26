"""Errors raised by the actor runtime.

Every error derives from one root, so a caller can catch the whole family at once::

    ActorError (Exception)
    ├── ActorCrashed       the actor died while it held your request
    ├── ActorStopped       the actor stopped while it held your request, or is not running
    ├── ActorTimeout       no answer within the call's timeout
    ├── MailboxFull        cast_nowait() found the mailbox full
    └── SupervisorGaveUp   a supervisor hit its restart intensity and stopped its children
"""

from __future__ import annotations

__all__ = [
    "ActorCrashed",
    "ActorError",
    "ActorStopped",
    "ActorTimeout",
    "MailboxFull",
    "SupervisorGaveUp",
]


class ActorError(Exception):
    """Root of every error the actor runtime raises."""


class ActorCrashed(ActorError):
    """The actor raised `cause` after taking the request and before answering it.

    The original error is also chained as ``__cause__``, so tracebacks show both.
    """

    def __init__(self, actor: str, cause: BaseException) -> None:
        super().__init__(f"actor {actor!r} crashed before answering: {cause!r}")
        self.actor = actor
        self.cause = cause


class ActorStopped(ActorError):
    """The actor stopped before answering, or is not running at all."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"actor {actor!r} stopped before answering")
        self.actor = actor


class ActorTimeout(ActorError):
    """No answer came within `timeout` seconds; the request may still be handled later."""

    def __init__(self, actor: str, timeout: float) -> None:
        super().__init__(f"actor {actor!r} did not answer within {timeout}s")
        self.actor = actor
        self.timeout = timeout


class MailboxFull(ActorError):
    """`Mailbox.cast_nowait` found no room; wait with `cast`, or drop or coalesce the message."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"mailbox of actor {actor!r} is full")
        self.actor = actor


class SupervisorGaveUp(ActorError):
    """A supervisor saw more failures than its intensity allows within its period.

    It has already stopped its children (in reverse start order) when this is raised.
    `failures` counts every failure in the window across all children, not only `child_id`'s;
    `last_exc` is the error that tipped it over, or None when a permanent child returned.
    """

    def __init__(
        self,
        supervisor_id: str,
        child_id: str,
        last_exc: BaseException | None,
        *,
        failures: int = 0,
        period: float = 0.0,
    ) -> None:
        super().__init__(_gave_up_message(supervisor_id, child_id, last_exc, failures, period))
        self.supervisor_id = supervisor_id
        self.child_id = child_id
        self.last_exc = last_exc
        self.failures = failures
        self.period = period


def _gave_up_message(
    supervisor_id: str,
    child_id: str,
    last_exc: BaseException | None,
    failures: int,
    period: float,
) -> str:
    how = "returned" if last_exc is None else f"failed with {last_exc!r}"
    return (
        f"supervisor {supervisor_id!r} gave up after {failures} failures within {period}s;"
        f" the last: child {child_id!r} {how}"
    )
