"""What an agent's harness loads before it is serving, and what it leaves for right after.

A harness starts on every container start and must be serving within 200 ms of its spawn
(issue 16; `python -m bench turn` prints the figure, docs/performance.md). Most of that time is
imports, so the start path imports only what serving needs: the turn loop's three commands
(`hyperhive.wire.turn`), not the command table; no page types, no stream-json parser, no MCP
SDK. Once serving, `hyperhive.agent.serve.warm_up` imports the rest in a worker thread. These
tests fail when a module slips back onto the start path, or when the warm-up list goes stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive.agent.claude import find_claude
from hyperhive.agent.serve import LATER_MODULES, READY_MARKER, WARM_MARKER
from hyperhive.errors import ConfigError
from hyperhive.testing import open_test_hive
from hyperhive.testing.procs import spawn_harness

if TYPE_CHECKING:
    from pathlib import Path

try:
    find_claude()
except ConfigError as exc:  # pragma: no cover - the dependency bundles it
    pytest.skip(f"no claude binary: {exc}", allow_module_level=True)

# Never on the start path: what LATER_MODULES names, what they pull in, and the CLI's stack.
NOT_AT_START = (
    *LATER_MODULES,
    "hyperhive.wire.replies",
    "hyperhive.wire.events",
    "hyperhive.wire.helper_events",
    "hyperhive.cli",
    "inotify_simple",  # the credential watch's, made by its first wait
    "mcp",
    "pydantic",
    "typer",
    "rich",
)


def _loaded_by(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout))


def test_importing_the_harness_loads_nothing_left_for_later() -> None:
    loaded = _loaded_by("import hyperhive.agent.serve, hyperhive.agent.serve_cli")
    assert sorted(m for m in NOT_AT_START if m in loaded) == []
    assert "hyperhive.wire.turn" in loaded  # what the turn loop does send


def test_the_wire_package_loads_a_module_only_when_it_is_used() -> None:
    assert "hyperhive.wire.commands" not in _loaded_by("import hyperhive.wire.codec")
    assert "hyperhive.wire.commands" not in _loaded_by("from hyperhive.wire import page")
    everything = _loaded_by("from hyperhive import wire\nwire.Send")
    assert {"hyperhive.wire.commands", "hyperhive.wire.page", "hyperhive.wire.events"} <= (
        everything
    )


async def test_a_harness_serves_before_it_imports_the_rest_and_imports_it_right_after(
    short_tmp: Path,
) -> None:
    """The real `hyperhive agent serve` (claude runtime) against a real daemon, with Python's
    import log on: every import before the ready line is one the start path made; the warm-up
    then says it loaded the rest."""
    state = short_tmp / "alice"
    (state / "home").mkdir(parents=True)
    with trio.fail_after(60):
        async with open_test_hive(short_tmp / "hive", agents=("alice",)) as hive:
            env = {
                **os.environ,
                "HYPERHIVE_AGENT": "alice",
                "HYPERHIVE_SOCKET": str(hive.paths.agent_socket("alice")),
                "HYPERHIVE_AGENT_STATE": str(state),
                "HOME": str(state / "home"),
                "ANTHROPIC_API_KEY": "not-used-no-turn-runs",
                "PYTHONPROFILEIMPORTTIME": "1",
            }
            process = await spawn_harness(env)
            before: list[str] = []  # imported before the ready line
            ready = warm = False
            try:
                assert process.stderr is not None
                buffer = b""
                while not warm:
                    chunk = await process.stderr.receive_some(65536)
                    assert chunk, f"the harness ended (serving: {ready})"
                    *lines, buffer = (buffer + chunk).split(b"\n")
                    for line in lines:
                        text = line.decode(errors="replace")
                        if READY_MARKER in text:
                            ready = True
                        elif WARM_MARKER in text:
                            warm = ready
                        elif text.startswith("import time:") and not ready:
                            before.append(text.rsplit("|", 1)[-1].strip())
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with trio.CancelScope(shield=True):
                    await process.wait()
    assert sorted(m for m in NOT_AT_START if m in before) == []
    assert "hyperhive.wire.turn" in before
