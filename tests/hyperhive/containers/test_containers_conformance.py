"""One conformance suite, three backends: the fake cannot drift from process and bwrap."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from hyperhive.containers.bwrap import BwrapBackend, bwrap_works
from hyperhive.containers.process import ProcessBackend
from hyperhive.testing.conformance import (
    CHECKS,
    FakeFaults,
    ProbeFaults,
    check_container_backend,
    run_check,
)
from hyperhive.testing.fake_containers import FakeBackend

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from hyperhive.containers.base import ContainerBackend
    from hyperhive.testing.conformance import ConformanceContext, Faults


def make_fake(root: Path) -> tuple[ContainerBackend, Faults]:
    backend = FakeBackend()
    return backend, FakeFaults(backend)


def make_process(root: Path) -> tuple[ContainerBackend, Faults]:
    return ProcessBackend(runtime_dir=root / "runtime"), ProbeFaults(root)


def make_bwrap(root: Path) -> tuple[ContainerBackend, Faults]:
    return BwrapBackend(runtime_dir=root / "runtime"), ProbeFaults(root)


needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None or bwrap_works() is not None,
    reason="bubblewrap is not installed or cannot sandbox here (./bootstrap test installs it)",
)
BACKENDS = [
    pytest.param(make_fake, id="fake"),
    pytest.param(make_process, id="process", marks=pytest.mark.slow),
    pytest.param(make_bwrap, id="bwrap", marks=[pytest.mark.slow, needs_bwrap]),
]


@pytest.mark.parametrize("make", BACKENDS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
async def test_backend_conforms(
    make: Callable[[Path], tuple[ContainerBackend, Faults]],
    check: Callable[[ConformanceContext], Awaitable[None]],
    short_tmp: Path,
) -> None:
    await run_check(make, short_tmp, check)


async def test_the_whole_suite_runs_in_one_call(short_tmp: Path) -> None:
    await check_container_backend(make_fake, short_tmp)
