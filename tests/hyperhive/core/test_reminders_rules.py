"""Reminder schedule logic and the state-file write, without trio."""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath

import pytest

from hyperhive import wire
from hyperhive.core.listener import Identity
from hyperhive.core.reminders import (
    cancel_refusal,
    container_relative,
    due,
    due_at_for,
    pointer_line,
    sleep_seconds,
    write_state_file,
)
from hyperhive.errors import BadRequest

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_delay_is_added_to_now() -> None:
    assert due_at_for(NOW, delay_seconds=3 * 86400, at=None) == NOW + 259200
    assert due_at_for(NOW, delay_seconds=0, at=None) == NOW


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2023-11-17T22:13:20Z", NOW + 3 * 86400),
        ("2023-11-17T23:13:20+01:00", NOW + 3 * 86400),
        ("2023-11-14T22:13:20.5+00:00", NOW + 0.5),
        ("2023-01-01T00:00:00Z", 1672531200.0),  # in the past: due at once
    ],
)
def test_at_is_an_iso_time_with_a_timezone(at: str, expected: float) -> None:
    assert due_at_for(NOW, delay_seconds=None, at=at) == expected


@pytest.mark.parametrize(
    ("delay", "at", "says"),
    [
        (None, None, "exactly one of delay_seconds or at"),
        (5.0, "2030-01-01T00:00:00Z", "exactly one of delay_seconds or at"),
        (-1.0, None, "0 or more"),
        (math.nan, None, "0 or more"),
        (6 * 366 * 86400.0, None, "five years"),
        (None, "tomorrow", "not an ISO 8601 time"),
        (None, "2030-01-01T09:00:00", "has no timezone"),
        (None, "2099-01-01T00:00:00Z", "five years away"),
    ],
)
def test_bad_times_say_what_is_wrong(delay: float | None, at: str | None, says: str) -> None:
    with pytest.raises(BadRequest, match=None) as caught:
        due_at_for(NOW, delay_seconds=delay, at=at)
    assert says in str(caught.value)


def test_due_lists_what_has_come_due_earliest_first() -> None:
    schedule = {1: 50.0, 2: 10.0, 3: 10.0, 4: 99.0}
    assert due(schedule, 9.9) == []
    assert due(schedule, 10.0) == [2, 3]
    assert due(schedule, 60.0) == [2, 3, 1]


def test_sleep_is_bounded_and_never_negative() -> None:
    assert sleep_seconds(None, 100.0, 3600.0) == math.inf
    assert sleep_seconds(130.0, 100.0, 3600.0) == 30.0
    assert sleep_seconds(50.0, 100.0, 3600.0) == 0.0
    assert sleep_seconds(100.0 + 3 * 86400, 100.0, 3600.0) == 3600.0


@pytest.mark.parametrize(
    ("given", "relative"),
    [
        ("/state/notes/today.md", "notes/today.md"),
        ("notes/today.md", "notes/today.md"),
        ("./notes//today.md", "notes/today.md"),
        ("/state/x", "x"),
    ],
)
def test_container_paths_map_into_the_state_dir(given: str, relative: str) -> None:
    assert container_relative(given) == PurePosixPath(relative)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "empty"),
        ("/etc/passwd", "outside /state"),
        ("/statefile", "outside /state"),
        ("/state", "names the state directory itself"),
        ("/state/", "names the state directory itself"),
        (".", "names the state directory itself"),
        ("../escape", "uses '..'"),
        ("/state/a/../../escape", "uses '..'"),
        ("a/\0b", "empty"),
    ],
)
def test_paths_that_leave_the_state_dir_are_refused(given: str, says: str) -> None:
    with pytest.raises(BadRequest, match=None) as caught:
        container_relative(given)
    assert says in str(caught.value)


def test_write_creates_missing_directories(tmp_path: Path) -> None:
    state = tmp_path / "state"
    size = write_state_file(state, PurePosixPath("notes/deep/today.md"), "héllo")
    assert size == len("héllo".encode())
    assert (state / "notes" / "deep" / "today.md").read_text() == "héllo"
    write_state_file(state, PurePosixPath("notes/deep/today.md"), "again")
    assert (state / "notes" / "deep" / "today.md").read_text() == "again"


AGENT_UID = 1_900_007  # a per-agent host uid, as a root daemon hands them out


def test_a_written_file_is_the_agents_own_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue: reminder files were root's, 0644. As root the real chown is checked; otherwise
    the same call path runs on a real file, with the chown recorded instead of made."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    chowned: dict[str, tuple[int, int]] = {}
    if os.geteuid() == 0:
        os.chown(state, AGENT_UID, AGENT_UID)  # what own_state does before each start
    else:
        real_fstat = os.fstat

        def fstat(fd: int) -> os.stat_result:
            found = real_fstat(fd)
            if os.path.realpath(f"/proc/self/fd/{fd}") != str(state):
                return found
            fields = list(found)
            fields[4:6] = [AGENT_UID, AGENT_UID]  # st_uid, st_gid: the agent's directory
            return os.stat_result(fields)

        def fchown(fd: int, uid: int, gid: int) -> None:
            chowned[os.path.realpath(f"/proc/self/fd/{fd}")] = (uid, gid)

        monkeypatch.setattr(os, "geteuid", lambda: 0)
        monkeypatch.setattr(os, "fstat", fstat)
        monkeypatch.setattr(os, "fchown", fchown)
    write_state_file(state, PurePosixPath("notes/today.md"), "remember")
    monkeypatch.undo()
    note, notes = state / "notes" / "today.md", state / "notes"
    assert note.read_text() == "remember"
    assert (note.stat().st_mode & 0o777, notes.stat().st_mode & 0o777) == (0o600, 0o700)
    if os.geteuid() == 0:
        owners = {p: (p.stat().st_uid, p.stat().st_gid) for p in (note, notes)}
        assert owners == {note: (AGENT_UID, AGENT_UID), notes: (AGENT_UID, AGENT_UID)}
    else:
        assert chowned == {str(note): (AGENT_UID, AGENT_UID), str(notes): (AGENT_UID, AGENT_UID)}


def test_write_refuses_a_symlinked_directory_out(tmp_path: Path) -> None:
    state, outside = tmp_path / "state", tmp_path / "outside"
    state.mkdir()
    outside.mkdir()
    (state / "notes").symlink_to(outside)
    with pytest.raises(BadRequest, match="symlink"):
        write_state_file(state, PurePosixPath("notes/x.md"), "payload")
    assert list(outside.iterdir()) == []


def test_write_refuses_a_symlinked_file_out(tmp_path: Path) -> None:
    state, target = tmp_path / "state", tmp_path / "victim.txt"
    state.mkdir()
    target.write_text("precious")
    (state / "x.md").symlink_to(target)
    with pytest.raises(BadRequest, match="symlink"):
        write_state_file(state, PurePosixPath("x.md"), "payload")
    assert target.read_text() == "precious"


def test_write_refuses_a_file_where_a_directory_should_be(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "notes").write_text("a file")
    with pytest.raises(BadRequest, match="where a directory should be"):
        write_state_file(state, PurePosixPath("notes/x.md"), "payload")


def test_write_reports_an_unwritable_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "x.md").mkdir(parents=True)
    with pytest.raises(BadRequest, match=r"could not write /state/x.md: Is a directory"):
        write_state_file(state, PurePosixPath("x.md"), "payload")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_write_reports_permission_denied(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o500)
    with pytest.raises(BadRequest, match="Permission denied"):
        write_state_file(state, PurePosixPath("x.md"), "payload")


def test_pointer_line_names_the_container_path() -> None:
    line = pointer_line(4, PurePosixPath("notes/x.md"), 12)
    assert line == "reminder #4: its message (12 bytes) is in /state/notes/x.md"


def test_only_the_owner_the_manager_or_the_operator_may_cancel() -> None:
    reminder = wire.Reminder(3, "alice", "m", 1.0, 2.0, "pending")
    assert cancel_refusal(reminder, Identity("agent", "alice")) is None
    assert cancel_refusal(reminder, Identity("manager", "manager")) is None
    assert cancel_refusal(reminder, Identity("operator", "operator")) is None
    assert cancel_refusal(reminder, Identity("agent", "bob")) == (
        "reminder #3 belongs to alice; only alice or the manager can cancel it"
    )
