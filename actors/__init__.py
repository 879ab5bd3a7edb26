"""Supervised actors on trio, with Erlang/OTP semantics.

An actor is a class whose ``run(*, task_status)`` reads ``async for msg in inbox:``; a
`Supervisor` starts actors in order, restarts them by `Strategy` and `Restart` type within a
`RestartIntensity`, and stops them in reverse order. See ``docs/actors.md``.
"""

from __future__ import annotations

from actors._errors import (
    ActorCrashed,
    ActorError,
    ActorStopped,
    ActorTimeout,
    MailboxFull,
    SupervisorGaveUp,
)
from actors._intensity import RestartIntensity
from actors._mailbox import Inbox, Mailbox, Reply
from actors._spec import ChildSpec, Restart, Strategy
from actors._stats import (
    ActorStatistics,
    ChildStatistics,
    MailboxStatistics,
    SupervisorStatistics,
)
from actors._supervisor import Supervisor

__all__ = [
    "ActorCrashed",
    "ActorError",
    "ActorStatistics",
    "ActorStopped",
    "ActorTimeout",
    "ChildSpec",
    "ChildStatistics",
    "Inbox",
    "Mailbox",
    "MailboxFull",
    "MailboxStatistics",
    "Reply",
    "Restart",
    "RestartIntensity",
    "Strategy",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorStatistics",
]
