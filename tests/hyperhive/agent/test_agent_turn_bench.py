"""`bench/turn.py` still runs end to end and ends with its summary line (figures not judged)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
SUMMARY = re.compile(
    r"^turn: warm first-request p50 \d+ ms, reply p50 \d+ ms; cold reply p50 \d+ ms$"
)


def test_the_turn_benchmark_runs_and_ends_with_its_summary_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.turn", "--turns", "2", "--warmup", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert SUMMARY.match(lines[-1]), lines[-1]
    assert any(line.startswith("warm idle agent: RSS") for line in lines)
