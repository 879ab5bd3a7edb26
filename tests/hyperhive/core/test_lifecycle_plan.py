"""The lifecycle rules as tables: `plan(record, status, transient, verb)`, no trio, no backend."""

from __future__ import annotations

import pytest

from hyperhive.core.lifecycle import Plan, Step, Verb, plan
from hyperhive.core.registry import AgentRecord
from hyperhive.errors import Conflict, NotAllowed, UnknownAgent

S = Step
ALICE = AgentRecord("alice")
STOPPED_ALICE = AgentRecord("alice", wanted="stopped")
MANAGER = AgentRecord("manager", role="manager")


@pytest.mark.parametrize(
    ("verb", "record", "status", "created", "steps", "transient"),
    [
        ("spawn", None, None, False, (S.REGISTER, S.CREATE, S.START), "spawning"),
        ("start", ALICE, "stopped", True, (S.WANT_RUNNING, S.START), "starting"),
        ("start", ALICE, "stopped", False, (S.WANT_RUNNING, S.CREATE, S.START), "starting"),
        ("stop", ALICE, "running", True, (S.WANT_STOPPED, S.STOP), "stopping"),
        ("restart", ALICE, "running", True, (S.WANT_RUNNING, S.STOP, S.START), "restarting"),
        ("kill", ALICE, "running", True, (S.WANT_STOPPED, S.KILL), "killing"),
        ("rebuild", ALICE, "running", True, (S.UPDATE, S.START_IF_WANTED), "rebuilding"),
        ("destroy", ALICE, "running", True, (S.DESTROY, S.CLOSE_SOCKET, S.RETIRE), "destroying"),
        # Start-up: a wanted agent that is not running is started; a running one adopted.
        ("autostart", ALICE, "stopped", False, (S.CREATE, S.START), "starting"),
        ("autostart", ALICE, "running", False, (S.CREATE,), "starting"),
        ("autostart", ALICE, "starting", True, (), "starting"),
        ("autostart", STOPPED_ALICE, "stopped", False, (S.CREATE,), "starting"),
    ],
)
def test_each_verb_takes_its_steps(
    verb: Verb,
    record: AgentRecord | None,
    status: str | None,
    created: bool,
    steps: tuple[Step, ...],
    transient: str,
) -> None:
    assert plan(record, status, None, verb, name="alice", created=created) == Plan(steps, transient)


def test_destroy_with_purge_deletes_after_retiring() -> None:
    decided = plan(ALICE, "running", None, "destroy", name="alice", purge=True)
    assert decided.steps == (S.DESTROY, S.CLOSE_SOCKET, S.RETIRE, S.PURGE)


def test_a_purge_of_a_tombstone_only_deletes() -> None:
    assert plan(None, None, None, "purge", name="alice", tombstone=True).steps == (S.PURGE,)
    assert plan(None, None, None, "destroy", name="alice", purge=True, tombstone=True).steps == (
        S.PURGE,
    )


@pytest.mark.parametrize("verb", ["start", "stop", "restart", "rebuild", "destroy", "spawn"])
def test_a_second_action_on_a_busy_agent_is_refused(verb: Verb) -> None:
    record = None if verb == "spawn" else ALICE
    with pytest.raises(Conflict, match=r"busy|already exists"):
        plan(record or ALICE, "running", "stopping", verb, name="alice")


def test_kill_goes_through_a_busy_agent_without_taking_it() -> None:
    decided = plan(ALICE, "stopping", "stopping", "kill", name="alice")
    assert decided == Plan((S.WANT_STOPPED, S.KILL), None, alongside=True)


@pytest.mark.parametrize(
    ("verb", "record", "kwargs", "error", "says"),
    [
        ("spawn", ALICE, {}, Conflict, "already exists"),
        ("start", None, {}, UnknownAgent, "unknown agent 'alice'"),
        ("destroy", None, {}, UnknownAgent, "unknown agent 'alice'"),
        ("destroy", None, {"purge": True}, UnknownAgent, "unknown agent 'alice'"),
        ("purge", ALICE, {}, Conflict, "live agent"),
        ("destroy", MANAGER, {}, NotAllowed, "--force"),
    ],
)
def test_refusals(
    verb: Verb,
    record: AgentRecord | None,
    kwargs: dict[str, bool],
    error: type[Exception],
    says: str,
) -> None:
    with pytest.raises(error, match=says):
        plan(record, "running", None, verb, name="alice", **kwargs)


def test_the_manager_goes_only_with_force() -> None:
    decided = plan(MANAGER, "running", None, "destroy", name="manager", force=True)
    assert S.DESTROY in decided.steps
