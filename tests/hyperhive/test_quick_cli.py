"""The CLI's quick path (`hyperhive.quick`): `status` and `agents` without the CLI framework.

The speed itself is `bench/cli.py`'s (a figure in docs/performance.md, not a flaky threshold
here); what is tested is what makes it fast, that nothing heavy is imported, and that the quick
path answers exactly as the full CLI would: the same output, the same errors, `--help` and
unknown options still handled by typer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from hyperhive.testing import DaemonProcess, run_cli

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

HEAVY = (
    "typer",
    "trio",
    "cattrs",
    "attrs",
    "attr",
    "rich",
    "hyperhive.wire",
    "hyperhive.cli",
    "click",
)


def _loaded_after(state_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the console entry point in a child and report the top modules it imported."""
    probe = (
        "import sys, atexit\n"
        "report = lambda: print('MODULES', ' '.join(sorted(sys.modules)), file=sys.stderr)\n"
        "atexit.register(report)\n"
        "from hyperhive.quick import main\n"
        f"sys.argv = ['hyperhive', *{list(args)!r}, '--state-dir', {str(state_dir)!r}]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    [line] = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    return done, set(line.split()[1:])


def test_status_and_agents_import_nothing_heavy(short_tmp: Path) -> None:
    with DaemonProcess(short_tmp, "--no-manager"):
        assert run_cli(short_tmp, "register", "alice").returncode == 0
        for args in (("status",), ("status", "--json"), ("agents",), ("agents", "--json")):
            done, modules = _loaded_after(short_tmp, *args)
            assert done.returncode == 0, done.stderr
            heavy = sorted(m for m in modules if m in HEAVY or m.startswith("hyperhive.wire."))
            assert not heavy, (args, heavy)
        # The full CLI for anything else: the probe itself is not blind.
        done, modules = _loaded_after(short_tmp, "list")
        assert done.returncode == 0, done.stderr
        assert "typer" in modules


def test_quick_answers_match_the_full_clis(short_tmp: Path) -> None:
    with DaemonProcess(short_tmp, "--no-manager") as daemon:
        assert run_cli(short_tmp, "register", "alice").returncode == 0
        status = json.loads(run_cli(short_tmp, "status", "--json").stdout)
        assert status["pid"] == daemon.pid
        assert "version" not in status  # the envelope is not part of the reply
        assert status["tree"]["id"] == "root"
        table = run_cli(short_tmp, "status")
        assert f"pid {daemon.pid}" in table.stdout
        assert "admin-socket" in table.stdout

        assert run_cli(short_tmp, "agents").stdout.split() == ["alice"]
        assert json.loads(run_cli(short_tmp, "agents", "--json").stdout) == {"agents": ["alice"]}
        # typer still owns --help and whatever the quick path does not know.
        helped = run_cli(short_tmp, "status", "--help")
        assert helped.returncode == 0
        assert "--json" in helped.stdout
        bad = run_cli(short_tmp, "status", "--bogus")
        assert bad.returncode == 2
        assert "No such option" in bad.stderr


def test_the_quick_path_says_when_no_daemon_answers(short_tmp: Path) -> None:
    for args in (("status",), ("agents", "--json")):
        done = run_cli(short_tmp, *args)
        assert done.returncode == 1
        assert "no hyperhive daemon is listening" in done.stderr
        assert "hyperhive serve" in done.stderr
        assert "Traceback" not in done.stderr
