"""Restart rules: intensity and its sliding window, strategies, restart types, failed starts."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from actors import ChildSpec, Restart, Strategy, Supervisor, SupervisorGaveUp

MakeProbe = Callable[..., Any]


class Flaky:
    """A child without a mailbox that, `crash_after` seconds after each start, fails.

    It fails (raising, or returning when `returns`) on its first `failures` runs, then stays
    up until cancelled.
    """

    def __init__(
        self, *, crash_after: float = 1.0, failures: float = math.inf, returns: bool = False
    ) -> None:
        self.crash_after = crash_after
        self.failures = failures
        self.returns = returns
        self.start_times: list[float] = []

    @property
    def starts(self) -> int:
        return len(self.start_times)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.start_times.append(trio.current_time())
        task_status.started()
        if self.starts > self.failures:
            await trio.sleep_forever()
        await trio.sleep(self.crash_after)
        if not self.returns:
            raise RuntimeError("disk full")


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str, int, int]]:
    return [
        (r.supervisor, r.child, r.context, r.restarts, r.levelno)
        for r in caplog.records
        if r.name == "actors"
    ]


# ---- intensity --------------------------------------------------------------------------


@pytest.mark.parametrize("intensity", [0, 1, 3, 5])
@pytest.mark.parametrize(
    ("strategy", "sibling_restarted"),
    [(Strategy.ONE_FOR_ONE, False), (Strategy.ONE_FOR_ALL, True), (Strategy.REST_FOR_ONE, False)],
)
async def test_restarts_intensity_times_then_gives_up_with_the_reason(
    intensity: int,
    strategy: Strategy,
    sibling_restarted: bool,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="actors")
    cache, broker = Flaky(failures=0), Flaky(crash_after=1.0)
    root = Supervisor(
        "root",
        [ChildSpec("cache", cache.run), ChildSpec("broker", broker.run)],
        strategy=strategy,
        intensity=intensity,
        period=60,
    )

    with pytest.raises(SupervisorGaveUp) as caught:
        await root.run()

    assert broker.starts == intensity + 1
    assert cache.starts == (intensity + 1 if sibling_restarted else 1)
    assert trio.current_time() == intensity + 1.0
    gave_up = caught.value
    assert (gave_up.supervisor_id, gave_up.child_id) == ("root", "broker")
    assert isinstance(gave_up.last_exc, RuntimeError)
    assert gave_up.__cause__ is gave_up.last_exc
    assert (gave_up.failures, gave_up.period) == (intensity + 1, 60)
    assert str(gave_up) == (
        f"supervisor 'root' gave up after {intensity + 1} failures within 60s;"
        " the last: child 'broker' failed with RuntimeError('disk full')"
    )
    restarts = [
        ("root", "broker", "child_terminated", n, logging.WARNING) for n in range(1, intensity + 1)
    ]
    gave_up_record = (
        "root",
        "broker",
        "reached_max_restart_intensity",
        intensity + 1,
        logging.ERROR,
    )
    assert records(caplog) == [*restarts, gave_up_record]
    assert {r.reason for r in caplog.records} == {"RuntimeError('disk full')"}
    assert caplog.records[-1].getMessage() == str(gave_up)
    if intensity:
        assert caplog.records[0].getMessage() == (
            "supervisor 'root' restarting child 'broker': it exited with RuntimeError('disk full')"
        )
    stats = root.statistics()
    assert stats.state == "failed"
    assert [(c.id, c.state) for c in stats.children] == [("cache", "stopped"), ("broker", "failed")]


@pytest.mark.parametrize(
    ("intensity", "period", "gap", "gave_up_at"),
    [
        (1, 5.0, 6.0, None),  # every failure is alone in its window
        (1, 5.0, 4.0, 8.0),  # the second failure falls inside the first's window
        (1, 5.0, 5.0, 10.0),  # a failure exactly one period old still counts
        (2, 10.0, 6.0, None),
        (2, 10.0, 4.0, 12.0),
        (3, 5.0, 1.75, None),  # 3 failures per 5 s is sustainable...
        (3, 5.0, 1.5, 6.0),  # ...4 are not
    ],
)
async def test_the_restart_window_slides_with_trio_time(
    intensity: int,
    period: float,
    gap: float,
    gave_up_at: float | None,
    autojump_clock: trio.testing.MockClock,
) -> None:
    flaky = Flaky(crash_after=gap)
    root = Supervisor("root", [ChildSpec("flaky", flaky.run)], intensity=intensity, period=period)

    # Stop half a gap after the 20th start, so no deadline ties with a crash.
    with trio.move_on_after(19.5 * gap):
        with (
            pytest.raises(SupervisorGaveUp) if gave_up_at is not None else contextlib.nullcontext()
        ):
            await root.run()

    if gave_up_at is None:
        assert trio.current_time() == 19.5 * gap
        assert flaky.start_times == [n * gap for n in range(20)]
    else:
        assert trio.current_time() == gave_up_at
        assert flaky.start_times == [n * gap for n in range(round(gave_up_at / gap))]


async def test_intensity_is_counted_per_supervisor_not_per_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two children failing once each: 2 failures in the window, more than intensity 1.
    one, two = Flaky(crash_after=1.0, failures=1), Flaky(crash_after=2.0, failures=1)
    root = Supervisor(
        "root", [ChildSpec("one", one.run), ChildSpec("two", two.run)], intensity=1, period=5
    )
    with pytest.raises(SupervisorGaveUp) as caught:
        await root.run()
    assert caught.value.child_id == "two"
    assert trio.current_time() == 2.0
    assert (one.starts, two.starts) == (2, 1)


# ---- strategies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "crasher", "starts", "after_crash"),
    [
        (Strategy.ONE_FOR_ONE, "b", (1, 2, 1), ["stop b", "start b"]),
        (
            Strategy.ONE_FOR_ALL,
            "b",
            (2, 2, 2),
            ["stop b", "stop c", "stop a", "start a", "start b", "start c"],
        ),
        (
            Strategy.ONE_FOR_ALL,
            "c",
            (2, 2, 2),
            ["stop c", "stop b", "stop a", "start a", "start b", "start c"],
        ),
        (Strategy.REST_FOR_ONE, "b", (1, 2, 2), ["stop b", "stop c", "start b", "start c"]),
        (
            Strategy.REST_FOR_ONE,
            "a",
            (2, 2, 2),
            ["stop a", "stop c", "stop b", "start a", "start b", "start c"],
        ),
        (Strategy.REST_FOR_ONE, "c", (1, 1, 2), ["stop c", "start c"]),
    ],
)
async def test_strategy_restarts_exactly_the_right_siblings_in_order(
    strategy: Strategy,
    crasher: str,
    starts: tuple[int, int, int],
    after_crash: list[str],
    make_probe: MakeProbe,
    timeline: list[str],
) -> None:
    probes = {name: make_probe(name) for name in "abc"}
    root = Supervisor("root", [p.spec() for p in probes.values()], strategy=strategy)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        assert timeline == ["start a", "start b", "start c"]
        await probes[crasher].crash()
        await trio.testing.wait_all_tasks_blocked()
        assert timeline[3:] == after_crash
        assert tuple(p.starts for p in probes.values()) == starts
        assert all(p.ready for p in probes.values())
        root.request_stop()


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
async def test_temporary_siblings_taken_down_by_a_restart_are_not_restarted(
    strategy: Strategy, make_probe: MakeProbe
) -> None:
    a, b = make_probe("a"), make_probe("b")
    root = Supervisor("root", [a.spec(), b.spec(restart=Restart.TEMPORARY)], strategy=strategy)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await a.crash()
        await trio.testing.wait_all_tasks_blocked()
        assert root.which_children() == ["a"]
        assert (a.starts, b.starts) == (2, 1)
        assert not b.ready
        root.request_stop()


# ---- restart types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "returns", "starts", "kept", "state"),
    [
        (Restart.PERMANENT, True, 2, True, "running"),
        (Restart.PERMANENT, False, 2, True, "running"),
        (Restart.TRANSIENT, True, 1, True, "stopped"),
        (Restart.TRANSIENT, False, 2, True, "running"),
        (Restart.TEMPORARY, True, 1, False, None),
        (Restart.TEMPORARY, False, 1, False, None),
    ],
)
async def test_restart_type_decides_whether_an_exit_is_restarted(
    restart: Restart,
    returns: bool,
    starts: int,
    kept: bool,
    state: str | None,
    autojump_clock: trio.testing.MockClock,
) -> None:
    job = Flaky(crash_after=1.0, failures=1, returns=returns)
    root = Supervisor("root", [ChildSpec("job", job.run, restart=restart)])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await trio.sleep(10)
        assert job.starts == starts
        assert root.which_children() == (["job"] if kept else [])
        children = root.statistics().children
        assert [child.state for child in children] == ([state] if kept else [])
        root.request_stop()


# ---- failed starts ----------------------------------------------------------------------


@pytest.mark.parametrize("failed_starts", [1, 2, 3])
async def test_a_failed_start_counts_as_a_restart_and_is_retried(
    failed_starts: int, make_probe: MakeProbe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="actors")
    db = make_probe("db", fail_starts=failed_starts)
    root = Supervisor("root", [db.spec()], intensity=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        assert db.starts == failed_starts + 1
        assert db.ready
        (stats,) = root.statistics().children
        assert (stats.state, stats.restarts) == ("running", failed_starts)
        assert stats.last_error == f"RuntimeError('db start {failed_starts} failed')"
        assert [r[2] for r in records(caplog)] == ["start_error"] * failed_starts
        root.request_stop()


async def test_failed_starts_beyond_intensity_make_the_initial_start_give_up(
    make_probe: MakeProbe, timeline: list[str]
) -> None:
    db, web = make_probe("db", fail_starts=10), make_probe("web")
    root = Supervisor("root", [db.spec(), web.spec()], intensity=3)
    async with trio.open_nursery() as nursery:
        with pytest.raises(SupervisorGaveUp, match="child 'db' failed with RuntimeError"):
            await nursery.start(root.run)
    assert db.starts == 4
    assert web.starts == 0
    assert timeline == ["start db"] * 4


async def test_returning_without_started_is_a_failed_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    attempts: list[float] = []

    async def forgetful(*, task_status: trio.TaskStatus[None]) -> None:
        attempts.append(trio.current_time())

    root = Supervisor("root", [ChildSpec("forgetful", forgetful)], intensity=2, restart_delay=1.5)
    with pytest.raises(SupervisorGaveUp) as caught:
        await root.run()
    assert attempts == [0.0, 1.5, 3.0]
    assert "without calling task_status.started()" in repr(caught.value.last_exc)


@pytest.mark.parametrize("how", ["request_stop", "cancel"])
async def test_a_restart_storm_never_blocks_shutdown(
    how: str, make_probe: MakeProbe, autojump_clock: trio.testing.MockClock
) -> None:
    db = make_probe("db", fail_starts=1000)
    root = Supervisor("root", [db.spec()], intensity=1000, period=1.0, restart_delay=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(root.run)
        await trio.sleep(3.5)
        if how == "request_stop":
            root.request_stop()
        else:
            nursery.cancel_scope.cancel()
    assert trio.current_time() == 3.5
    assert db.starts == 4


# ---- what counts as a crash -------------------------------------------------------------


async def test_an_exception_group_from_an_actors_own_nursery_is_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts = 0

    async def fan_out(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal starts
        starts += 1
        task_status.started()

        async def helper() -> None:
            await trio.sleep(1.0)
            if starts == 1:
                raise ValueError("helper failed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(helper)
            nursery.start_soon(trio.sleep_forever)

    root = Supervisor("root", [ChildSpec("fan_out", fan_out)])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await trio.sleep(5.0)
        assert starts == 2
        (stats,) = root.statistics().children
        assert stats.last_error is not None
        assert stats.last_error.startswith("ExceptionGroup(")
        assert "ValueError('helper failed')" in stats.last_error
        root.request_stop()


class Fatal(BaseException):
    """Stands in for KeyboardInterrupt and friends: not an Exception, so never caught."""


async def test_base_exceptions_are_not_restarted_but_propagate() -> None:
    starts = 0

    async def doomed(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal starts
        starts += 1
        task_status.started()
        raise Fatal

    root = Supervisor("root", [ChildSpec("doomed", doomed)])
    with pytest.RaisesGroup(Fatal):
        await root.run()
    assert starts == 1


async def test_a_supervisor_runs_once_at_a_time(make_probe: MakeProbe) -> None:
    root = Supervisor("root", [make_probe("a").spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        with pytest.raises(RuntimeError, match="already running"):
            await root.run()
        root.request_stop()
