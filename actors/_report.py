"""Structured log records for restarts, give-ups and shutdown trouble (OTP supervisor reports).

Every record goes to the ``"actors"`` logger with a readable message and these extras:
``supervisor``, ``child``, ``context`` (``start_error``, ``child_terminated``,
``shutdown_error`` or ``reached_max_restart_intensity``), ``reason`` (the error's `repr`, or a
sentence) and ``restarts`` (failures in the supervisor's current intensity window).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from actors._errors import SupervisorGaveUp

__all__ = ["Reports"]

logger = logging.getLogger("actors")


class Reports:
    """The log records of one supervisor."""

    def __init__(self, supervisor_id: str, window_count: Callable[[], int]) -> None:
        self.supervisor_id = supervisor_id
        self._window_count = window_count
        self._who = f"supervisor {supervisor_id!r}"

    def restart(self, child_id: str, error: Exception | None, context: str) -> None:
        what = "its start failed" if context == "start_error" else "it exited"
        how = "by returning" if error is None else f"with {error!r}"
        message = f"{self._who} restarting child {child_id!r}: {what} {how}"
        self._emit(logging.WARNING, message, child_id, context, error)

    def not_restarted(self, child_id: str, error: Exception) -> None:
        message = f"{self._who}: temporary child {child_id!r} failed with {error!r}; not restarted"
        self._emit(logging.WARNING, message, child_id, "child_terminated", error)

    def shutdown_error(self, child_id: str, reason: str | Exception) -> None:
        how = reason if isinstance(reason, str) else f"failed with {reason!r}"
        message = f"{self._who} stopping child {child_id!r}: {how}"
        self._emit(logging.WARNING, message, child_id, "shutdown_error", reason)

    def gave_up(self, gave_up: SupervisorGaveUp) -> None:
        context = "reached_max_restart_intensity"
        self._emit(logging.ERROR, str(gave_up), gave_up.child_id, context, gave_up.last_exc)

    def _emit(
        self,
        level: int,
        message: str,
        child_id: str,
        context: str,
        reason: BaseException | str | None,
    ) -> None:
        extra = {
            "supervisor": self.supervisor_id,
            "child": child_id,
            "context": context,
            "reason": reason if isinstance(reason, str) else repr(reason),
            "restarts": self._window_count(),
        }
        exc_info = reason if isinstance(reason, BaseException) else None
        logger.log(level, "%s", message, extra=extra, exc_info=exc_info)
