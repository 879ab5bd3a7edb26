"""The nixos backend, pinned command by command through an injected runner (no NixOS here)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from hyperhive.containers.base import AgentSpec, AgentState, ExecResult
from hyperhive.containers.nixos import NixosBackend, parse_systemctl_show, rewrite_conf
from hyperhive.errors import ConfigError, ContainerError, StartFailed

SHOW = [
    "systemctl",
    "show",
    "container@alice",
    "--property=ActiveState,SubState,Result,NRestarts,InvocationID,MainPID,ExecMainStatus",
]


JOURNAL = [
    "journalctl",
    "--machine",
    "alice",
    "--lines",
    "50",
    "--no-pager",
    "--output",
    "short-iso",
]


def unit(active: str, *, result: str = "success", invocation: str = "inv1", restarts: int = 0,
         status: int = 0) -> bytes:  # fmt: skip
    return (
        f"ActiveState={active}\nSubState=x\nResult={result}\nNRestarts={restarts}\n"
        f"InvocationID={invocation}\nMainPID=4242\nExecMainStatus={status}\n"
    ).encode()


@attrs.define
class Runner:
    """Records every (argv, cwd); answers from a script keyed by the argv's first words."""

    conf_dir: Path
    calls: list[tuple[list[str], Path | None]] = attrs.Factory(list)
    answers: dict[tuple[str, ...], ExecResult] = attrs.Factory(dict)
    cwd_existed: list[bool] = attrs.Factory(list)

    async def __call__(self, argv: list[str], cwd: Path | None) -> ExecResult:
        self.calls.append((list(argv), cwd))
        self.cwd_existed.append(cwd is not None and cwd.is_dir())
        if argv[:2] == ["nixos-container", "create"]:
            # What the real script writes (research/containers.md §1.5).
            (self.conf_dir / f"{argv[2]}.conf").write_text(
                "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\n"
                "HOST_BRIDGE=\nHOST_PORT=\nAUTO_START=0\nFLAKE=/meta\n"
            )
        for size in (4, 3, 2, 1):
            if tuple(argv[:size]) in self.answers:
                return self.answers[tuple(argv[:size])]
        return ExecResult(0, b"", b"")

    def argvs(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[NixosBackend, Runner, AgentSpec]:
    conf = tmp_path / "etc"
    conf.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    runner = Runner(conf)
    backend = NixosBackend(runner, meta_flake="/meta", work_dir=work, conf_dir=conf)
    home = tmp_path / "agents" / "alice"
    spec = AgentSpec(
        name="alice",
        role="agent",
        state_dir=home / "state",
        config_dir=home / "config",
        socket_dir=home / "run",
        log_path=home / "agent.log",
        argv=("ignored",),
    )
    return backend, runner, spec


async def test_create_pins_the_command_and_a_private_cwd(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    await backend.create(attrs.evolve(spec, name="bob"))
    assert runner.argvs() == [
        ["nixos-container", "create", "alice", "--flake", "/meta#agent-alice"],
        ["nixos-container", "create", "bob", "--flake", "/meta#agent-bob"],
    ]
    cwds = [cwd for _, cwd in runner.calls]
    assert all(cwd is not None for cwd in cwds)
    assert cwds[0] != cwds[1]  # `nix build -o .tmp` runs in the cwd: never share one
    assert runner.cwd_existed == [True, True]
    assert not any(cwd.exists() for cwd in cwds if cwd)  # cleaned up afterwards


async def test_create_adds_the_binds_and_shares_the_host_network(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    conf = (runner.conf_dir / "alice.conf").read_text().splitlines()
    home = spec.state_dir.parent
    assert conf == [
        "HOST_BRIDGE=",
        "HOST_PORT=",
        "AUTO_START=0",
        "FLAKE=/meta",
        "HYPERHIVE=1",
        f'EXTRA_NSPAWN_FLAGS="--bind={home}/state:/state --bind-ro={home}/config:/config '
        f'--bind={home}/run:/run/hyperhive"',
    ]
    assert spec.state_dir.is_dir()
    assert spec.socket_dir.is_dir()


async def test_create_of_an_existing_container_only_rewrites_its_flags(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    await backend.create(attrs.evolve(spec, network=False))
    assert runner.argvs() == [
        ["nixos-container", "create", "alice", "--flake", "/meta#agent-alice"]
    ]
    conf = (runner.conf_dir / "alice.conf").read_text().splitlines()
    assert "PRIVATE_NETWORK=1" in conf
    assert sum(line.startswith("EXTRA_NSPAWN_FLAGS=") for line in conf) == 1


def test_a_name_over_eleven_characters_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    backend, _, spec = setup
    with pytest.raises(ConfigError, match="11 characters"):
        trio.run(backend.create, attrs.evolve(spec, name="abcdefghijkl"))


def test_paths_with_spaces_cannot_reach_the_word_split_flags(tmp_path: Path) -> None:
    spec = AgentSpec(
        name="alice",
        role="agent",
        state_dir=tmp_path / "my state",
        config_dir=tmp_path / "c",
        socket_dir=tmp_path / "r",
        log_path=tmp_path / "l",
        argv=(),
    )
    with pytest.raises(ConfigError, match="spaces"):
        rewrite_conf("", spec)


async def test_update_always_passes_the_flake(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    assert await backend.update(spec) == "applied"
    assert await backend.update(attrs.evolve(spec, network=False)) == "restart-required"
    updates = [(argv, cwd) for argv, cwd in runner.calls if argv[1] == "update"]
    assert [argv for argv, _ in updates] == [
        ["nixos-container", "update", "alice", "--flake", "/meta#agent-alice"]
    ] * 2
    assert all(cwd is not None for _, cwd in updates)


async def test_start_and_status(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    runner.answers[tuple(SHOW)] = ExecResult(0, unit("active"), b"")
    await backend.start("alice")
    status = await backend.status("alice")
    assert (status.state, status.pid) == (AgentState.RUNNING, 4242)
    assert runner.argvs()[1:] == [["nixos-container", "start", "alice"], SHOW, SHOW]


async def test_a_failed_start_says_why(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    runner.answers[("nixos-container", "start")] = ExecResult(1, b"", b"Job failed. See journal")
    with pytest.raises(StartFailed, match="Job failed"):
        await backend.start("alice")


@pytest.mark.parametrize(
    ("active", "state"),
    [
        ("active", AgentState.RUNNING),
        ("activating", AgentState.STARTING),
        ("deactivating", AgentState.STOPPING),
        ("failed", AgentState.CRASHED),
        ("inactive", AgentState.STOPPED),
        ("weird", AgentState.UNKNOWN),
    ],
)
async def test_unit_states_map_to_agent_states(setup, active: str, state: AgentState) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    runner.answers[tuple(SHOW)] = ExecResult(0, unit(active, status=3), b"")
    status = await backend.status("alice")
    assert status.state is state
    assert status.exit_code == (3 if state is AgentState.CRASHED else None)


async def test_status_without_a_conf_is_absent_and_runs_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, _ = setup
    assert (await backend.status("nobody")).state is AgentState.ABSENT
    assert runner.calls == []


async def test_stop_is_graceful_then_terminates(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    runner.answers[tuple(SHOW)] = ExecResult(0, unit("active"), b"")
    await backend.stop("alice", grace=5.0)
    assert runner.argvs()[-1] == ["nixos-container", "stop", "alice"]
    runner.answers[("nixos-container", "stop")] = ExecResult(1, b"", b"timed out")
    await backend.stop("alice", grace=5.0)
    assert runner.argvs()[-2:] == [
        ["nixos-container", "stop", "alice"],
        ["nixos-container", "terminate", "alice"],
    ]
    await backend.stop("alice", grace=0.0)  # kill: straight to terminate
    assert runner.argvs()[-2:] == [SHOW, ["nixos-container", "terminate", "alice"]]
    exits = [backend.exits().receive_nowait() for _ in range(3)]
    assert all(exited.requested for exited in exits)


async def test_destroy_list_logs_exec(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    (runner.conf_dir / "other.conf").write_text("PRIVATE_NETWORK=1\n")  # not ours
    runner.answers[("nixos-container", "list")] = ExecResult(0, b"alice\nother\n", b"")
    assert await backend.list() == ["alice"]
    runner.answers[("nixos-container", "run")] = ExecResult(3, b"hi\n", b"")
    assert await backend.exec("alice", ["echo", "hi"]) == ExecResult(3, b"hi\n", b"")
    runner.answers[("journalctl",)] = ExecResult(0, b"line\n", b"")
    assert await backend.logs("alice", lines=50) == "line\n"
    runner.answers[tuple(SHOW)] = ExecResult(0, unit("inactive"), b"")
    await backend.destroy("alice")
    assert runner.argvs()[1:] == [
        ["nixos-container", "list"],
        ["nixos-container", "run", "alice", "--", "echo", "hi"],
        JOURNAL,
        SHOW,
        ["nixos-container", "destroy", "alice"],
    ]
    assert spec.state_dir.is_dir()  # destroy never touches the agent's state


async def test_a_failing_command_becomes_a_readable_error(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    runner.answers[("nixos-container", "create")] = ExecResult(1, b"", b"error: flake not found")
    with pytest.raises(ContainerError, match="flake not found"):
        await backend.create(spec)


async def test_rescan_adopts_running_containers(setup) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    runner.answers[("nixos-container", "list")] = ExecResult(0, b"alice\n", b"")
    runner.answers[tuple(SHOW)] = ExecResult(0, unit("active"), b"")
    statuses = await backend.rescan()
    assert statuses["alice"].state is AgentState.RUNNING
    # adopted: the next poll notices when it dies
    runner.answers[tuple(SHOW)] = ExecResult(0, unit("failed", result="exit-code", status=2), b"")
    await backend.poll()
    exited = backend.exits().receive_nowait()
    assert (exited.name, exited.exit_code, exited.requested) == ("alice", 2, False)
    assert "exit-code" in exited.detail


async def test_the_poll_reports_a_crash_within_one_interval(setup, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    backend, runner, spec = setup
    await backend.create(spec)
    runner.answers[tuple(SHOW)] = ExecResult(0, unit("active"), b"")
    await backend.start("alice")
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        await trio.sleep(12)
        with pytest.raises(trio.WouldBlock):
            backend.exits().receive_nowait()
        # systemd restarted it behind our back (Restart=on-failure): a new invocation
        runner.answers[tuple(SHOW)] = ExecResult(0, unit("active", invocation="inv2"), b"")
        crashed_at = trio.current_time()
        exited = await backend.exits().receive()
        assert trio.current_time() - crashed_at <= 5.0
        assert "restarted by systemd" in exited.detail
        backend.request_stop()


def test_systemctl_show_parsing() -> None:
    assert parse_systemctl_show("A=1\nB=x=y\n\nnoise\n") == {"A": "1", "B": "x=y"}
