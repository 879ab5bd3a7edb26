"""The lifecycle rules: which steps an action on an agent takes, decided without doing anything.

`plan(record, status, transient, verb)` is the whole of the rules for spawn, start, stop,
restart, kill, rebuild, destroy and destroy --purge, as a pure function: it reads the agent's
record, its backend state, the action already in flight on it and the verb, and returns the
steps, or raises the refusal the caller sees. The agents actor (`hyperhive.core.agents`) does
the steps; tests check the rules as tables, without trio.

Rules every action follows:

- While an action runs, the agent carries a transient state (`TRANSIENT[verb]`): crash watch
  does not report an exit then, the container view shows it, and a second action on the same
  agent is refused with `Conflict` until the first finishes. `kill` is the exception: it
  always goes through (`Plan.alongside`), so an operator can end a stop that is waiting out its
  grace period.
- The agent's wanted state (running / stopped) is recorded in its `agent.json` before the
  backend is touched, so a daemon restart starts again exactly the agents that were meant to
  run (`autostart`).
- Destroy keeps the agent's state and config as a tombstone; `purge` also deletes them. The
  manager runs the hive's config flow: it is destroyed only with `force`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final, Literal

import attrs

from hyperhive.errors import Conflict, NotAllowed, UnknownAgent

if TYPE_CHECKING:
    from hyperhive.core.registry import AgentRecord

__all__ = ["MAX_LOG_LINES", "TRANSIENT", "Plan", "Step", "Verb", "plan"]

MAX_LOG_LINES: Final = 5000
Verb = Literal[
    "spawn", "start", "stop", "restart", "kill", "rebuild", "destroy", "autostart", "purge"
]
TRANSIENT: Final[dict[str, str]] = {
    "spawn": "spawning",
    "start": "starting",
    "stop": "stopping",
    "restart": "restarting",
    "kill": "killing",
    "rebuild": "rebuilding",
    "destroy": "destroying",
    "autostart": "starting",
    "purge": "purging",
}


class Step(enum.Enum):
    """One thing an action does, in the order `plan` lists them."""

    REGISTER = "register"  # write the record and directories; open the agent's socket
    WANT_RUNNING = "want_running"  # record wanted = running
    WANT_STOPPED = "want_stopped"  # record wanted = stopped
    CREATE = "create"  # tell the backend about the agent (once per daemon life)
    START = "start"
    STOP = "stop"  # SIGTERM, the grace period, then SIGKILL
    KILL = "kill"  # no grace period
    UPDATE = "update"  # re-apply the spec (settings); restart if the backend says so
    START_IF_WANTED = "start_if_wanted"  # start it unless it runs or should not
    DESTROY = "destroy"  # remove the container
    CLOSE_SOCKET = "close_socket"  # stop the agent's listener (never the manager's)
    RETIRE = "retire"  # keep state and config as a tombstone
    PURGE = "purge"  # delete the agent's directory


@attrs.frozen
class Plan:
    """What an action does. `alongside`: it runs even while another action is in flight (a
    kill), without taking the agent's transient state."""

    steps: tuple[Step, ...]
    transient: str | None
    alongside: bool = False


def plan(
    record: AgentRecord | None,
    status: str | None,
    transient: str | None,
    verb: Verb,
    *,
    name: str,
    created: bool = True,
    purge: bool = False,
    force: bool = False,
    tombstone: bool = False,
) -> Plan:
    """The steps of `verb` on an agent (pure).

    Args:
        record: the agent's record (None: no such agent, or only a tombstone), `name`'s.
        status: its backend state (`AgentState` value; None when it runs no containers).
        transient: the action already in flight on it, if any.
        created: whether the backend was told about it in this daemon's life.
        purge, force: destroy's flags. tombstone: a tombstone of that name exists.

    Raises:
        Conflict: it exists (spawn), or another action is in flight.
        UnknownAgent: no such agent (or tombstone, for a purge).
        NotAllowed: destroying the manager without `force`.
    """
    ensure = () if created else (Step.CREATE,)
    if verb == "spawn":
        if record is not None:
            raise Conflict(f"agent {name!r} already exists; start, restart or rebuild it instead")
        return Plan((Step.REGISTER, Step.CREATE, Step.START), TRANSIENT["spawn"])
    if verb in ("destroy", "purge") and record is None:
        if (purge or verb == "purge") and tombstone:
            return Plan((Step.PURGE,), TRANSIENT["purge"])
        raise UnknownAgent(f"unknown agent {name!r}")
    if record is None:
        raise UnknownAgent(f"unknown agent {name!r}")
    if verb == "kill" and transient is not None:
        return Plan((Step.WANT_STOPPED, *ensure, Step.KILL), None, alongside=True)
    if transient is not None:
        raise Conflict(f"{name} is busy ({transient}); try again when that finishes")
    live = status in ("running", "starting")
    match verb:
        case "start":
            steps = (Step.WANT_RUNNING, *ensure, Step.START)
        case "stop":
            steps = (Step.WANT_STOPPED, *ensure, Step.STOP)
        case "restart":
            steps = (Step.WANT_RUNNING, *ensure, Step.STOP, Step.START)
        case "kill":
            steps = (Step.WANT_STOPPED, *ensure, Step.KILL)
        case "rebuild":
            steps = (Step.UPDATE, Step.START_IF_WANTED)
        case "autostart":
            start = (Step.START,) if record.wanted == "running" and not live else ()
            steps = (*ensure, *start)
        case "destroy":
            if record.role == "manager" and not force:
                raise NotAllowed(
                    "the manager runs the hive's config changes; destroy it only with --force "
                    "(a new one is created at the next start unless serve runs with --no-manager)"
                )
            steps = (
                Step.DESTROY,
                Step.CLOSE_SOCKET,
                Step.RETIRE,
                *((Step.PURGE,) if purge else ()),
            )
        case "purge":
            raise Conflict(f"{name!r} is a live agent; destroy it first (`hyperhive destroy`)")
        case _:  # pragma: no cover - Verb is closed
            raise AssertionError(verb)
    return Plan(steps, TRANSIENT[verb])
