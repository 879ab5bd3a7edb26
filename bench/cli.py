"""CLI latency benchmark: how long a `hyperhive` command takes, start to exit, as a user runs it.

    python -m bench.cli [--runs 30]

The real daemon (`hyperhive serve --backend none`) runs in its own process with a few agents
registered; this process runs the installed `hyperhive` console script `--runs` times per
command (after two warm-up runs, so the page cache holds the interpreter and the modules) and
reports the wall time of each run: median and p90. `status` and `agents` take the quick path
(`hyperhive.quick`: no typer, trio or wire types); `list` and `send` load the full CLI, for
comparison. The target (issue 15) is `status` at or under 150 ms median.

The last line is the summary docs/performance.md quotes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hyperhive.testing import DaemonProcess, run_cli

COMMANDS = (("status",), ("status", "--json"), ("agents",), ("list",), ("send", "a01", "hi"))
TARGET_MS = 150.0


def _script() -> list[str]:
    """The console script users run, next to this interpreter (else `python -m hyperhive`)."""
    script = Path(sys.executable).with_name("hyperhive")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hyperhive"]


def time_command(state_dir: Path, args: tuple[str, ...], runs: int) -> list[float]:
    """Milliseconds per run of `hyperhive ARGS --state-dir STATE_DIR`; fails on a failed run."""
    argv = [*_script(), *args, "--state-dir", str(state_dir)]
    times = []
    for index in range(runs + 2):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
        if index >= 2:
            times.append(elapsed)
    return times


def _p90(times: list[float]) -> float:
    return sorted(times)[max(0, int(len(times) * 0.9) - 1)]


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m bench.cli`."""
    parser = argparse.ArgumentParser(prog="python -m bench.cli", description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hh-bench-cli-") as tmp:
        state = Path(tmp)
        with DaemonProcess(state, "--no-dashboard", "--no-manager"):
            for name in ("a01", "a02", "a03"):
                assert run_cli(state, "register", name).returncode == 0
            for command in COMMANDS:
                times = time_command(state, command, args.runs)
                results[" ".join(command)] = times
                print(
                    f"{' '.join(command):<16} median {statistics.median(times):6.1f} ms  "
                    f"p90 {_p90(times):6.1f} ms  ({len(times)} runs)"
                )
    median = statistics.median(results["status"])
    verdict = "ok" if median <= TARGET_MS else f"over the {TARGET_MS:.0f} ms target"
    print(
        f"cli: status median {median:.1f} ms, p90 {_p90(results['status']):.1f} ms ({verdict}); "
        f"list (full CLI) median {statistics.median(results['list']):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
