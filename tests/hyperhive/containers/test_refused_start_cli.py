"""A start refused before anything ran, as `hyperhive list` shows it: the refusal's reason.

Real daemons, the real CLI: bwrap refusing a bind whose source is missing (the sandbox's
settings, checked before bwrap runs) or a link it cannot bind (bwrap's own set-up failing),
and the process backend given a program that does not exist. No process of the agent ever
ran, so its row must not say that one exited.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest

from hyperhive.containers.bwrap import bwrap_works
from hyperhive.testing import DaemonProcess, run_cli
from hyperhive.testing.conformance import PROBE_COMMAND

pytestmark = pytest.mark.slow


def row(state: Path, name: str) -> dict[str, object]:
    listed = run_cli(state, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [found] = [v for v in json.loads(listed.stdout)["containers"] if v["name"] == name]
    return dict(found)


def wait_for_row(state: Path, name: str, semantic: str, within: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + within
    while (seen := row(state, name))["semantic"] != semantic:
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    return seen


def refused_start(state: Path, *args: str) -> str:
    done = run_cli(state, *args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return " ".join(done.stderr.split())


@pytest.mark.skipif(bwrap_works() is not None, reason=f"bubblewrap: {bwrap_works()}")
def test_a_start_bwrap_refuses_shows_the_refusal_not_an_exit(short_tmp: Path) -> None:
    serve = ("--backend", "bwrap", "--agent-command", shlex.join(PROBE_COMMAND), "--no-manager")
    with DaemonProcess(short_tmp, *serve, "--no-dashboard"):
        assert run_cli(short_tmp, "spawn", "alice").returncode == 0
        assert run_cli(short_tmp, "stop", "alice").returncode == 0
        settings = short_tmp / "agents" / "alice" / "sandbox.json"
        missing = short_tmp / "srv" / "data"
        settings.write_text(json.dumps({"binds": [{"source": str(missing), "target": "/data"}]}))
        said = refused_start(short_tmp, "start", "alice")
        assert f"the bind source {missing} (for /data" in said
        seen = row(short_tmp, "alice")
        assert (seen["state"], seen["semantic"]) == ("crashed", "start refused")
        assert seen["reason"] == (
            f"its start was refused before anything ran: the bind source {missing} (for /data, "
            f"from binds in {settings}) does not exist; create it or remove the bind"
        )
        table = run_cli(short_tmp, "list").stdout
        assert "refused" in table  # the table wraps "start refused" in its column
        assert "exited" not in table

        # A link bwrap itself cannot bind: the sandbox fails while it sets up, and the row
        # names bwrap's reason, not the last line its network helper logged. The start says
        # so itself when bwrap gives up within its settle time; on a loaded machine bwrap may
        # take longer, and the crash watch records it a moment later: the row is the same.
        link = short_tmp / "planted"
        link.symlink_to(short_tmp / "nowhere")
        settings.write_text(json.dumps({"binds": [{"source": str(link), "target": "/data"}]}))
        started = run_cli(short_tmp, "start", "alice")
        assert "Broken pipe" not in started.stderr
        seen = wait_for_row(short_tmp, "alice", "start refused")
        assert seen["reason"] == (
            f"its start was refused before anything ran: bwrap: Can't find source path {link}: "
            "No such file or directory"
        )

        settings.unlink()
        assert run_cli(short_tmp, "start", "alice").returncode == 0
        assert row(short_tmp, "alice")["semantic"] != "start refused"


def test_a_program_that_is_not_there_is_a_refused_start(short_tmp: Path) -> None:
    missing = short_tmp / "no-such-harness"
    serve = ("--backend", "process", "--agent-command", str(missing), "--no-manager")
    with DaemonProcess(short_tmp, *serve, "--no-dashboard"):
        said = refused_start(short_tmp, "spawn", "alice")
        assert f"cannot run {missing}" in said
        seen = row(short_tmp, "alice")
        assert (seen["semantic"], seen["reason"]) == (
            "start refused",
            f"its start was refused before anything ran: cannot run {missing}: "
            "No such file or directory",
        )
