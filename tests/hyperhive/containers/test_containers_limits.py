"""The wall's limits, settings and bookkeeping: sandbox.json, uids, disk, cgroups, egress."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path, PurePosixPath

import pytest
import trio
import trio.testing

from actors import Mailbox
from hyperhive import wire
from hyperhive.containers import disk, network, uids
from hyperhive.containers.base import AgentState
from hyperhive.containers.bwrap import BwrapBackend, bwrap_works
from hyperhive.containers.limits import CgroupTree, Limits, find_delegated_cgroup, prlimit_plan
from hyperhive.containers.sandbox import (
    Bind,
    EgressRule,
    SandboxSettings,
    load_sandbox_settings,
    parse_egress,
)
from hyperhive.containers.settings import ContainerSettings
from hyperhive.core.rescanner import Rescanner
from hyperhive.errors import ConfigError, StartFailed
from hyperhive.testing import open_test_hive
from hyperhive.testing.conformance import PROBE_COMMAND, make_spec, wait_report
from hyperhive.testing.fake_containers import FakeBackend
from hyperhive.testing.netns import netns_problem, open_netns_host

needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None or bwrap_works() is not None,
    reason="bubblewrap cannot sandbox here (./bootstrap test installs it)",
)


# -- sandbox.json -----------------------------------------------------------------------------


def test_sandbox_settings_parse_and_refuse_with_the_field_named(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    assert load_sandbox_settings(path) == SandboxSettings()  # missing: the defaults
    path.write_text(
        json.dumps(
            {
                "binds": [{"source": "/srv/data", "target": "/data"}],
                "egress": ["api.anthropic.com:443", "10.0.0.0/8:*", "192.0.2.7:8000-8100"],
                "memory_max": "2G",
                "pids_max": 64,
                "disk_quota": "512M",
            }
        )
    )
    settings = load_sandbox_settings(path)
    assert settings.binds == (Bind(Path("/srv/data"), PurePosixPath("/data")),)
    assert settings.egress == (
        EgressRule("api.anthropic.com", 443, 443),
        EgressRule("10.0.0.0/8"),
        EgressRule("192.0.2.7", 8000, 8100),
    )
    assert (settings.memory_max, settings.pids_max, settings.disk_quota) == (2 << 30, 64, 512 << 20)
    for bad, words in [
        ({"binds": [{"source": "/x", "target": "/state/x"}]}, "own mounts"),
        ({"binds": [{"source": "relative"}]}, "absolute"),
        ({"egress": ["*.anthropic.com:443"]}, "wildcard"),
        ({"egress": ["example.com:99999"]}, "1-65535"),
        ({"egress": "api.anthropic.com:443"}, "egress must be a list"),
        ({"memory_max": "lots"}, "memory_max"),
        ({"pids_max": True}, "pids_max"),
        ({"unexpected": 1}, "unknown keys"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=words) as caught:
            load_sandbox_settings(path)
        assert str(path) in str(caught.value)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_sandbox_settings(path)


async def test_slirp4netns_lines_reach_the_daemon_log_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    lines = [b"sent tapfd=5 for tap0\x1b[31m", b"x" * 5000, *(b"line %d" % n for n in range(80))]
    caplog.set_level("INFO", logger="hyperhive.containers")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(network.relay_to_daemon_log, receive, "alice")
        await send.send_all(b"\n".join(lines) + b"\n" + b"y" * 100_000)  # no end: dropped
        await send.aclose()
    logged = [r.getMessage() for r in caplog.records if r.name == "hyperhive.containers"]
    assert logged[0] == "slirp4netns for alice: sent tapfd=5 for tap0?[31m"
    assert logged[1] == "slirp4netns for alice: " + "x" * network.RELAY_LINE_CHARS
    assert logged[2:-1] == [f"slirp4netns for alice: line {n}" for n in range(48)]
    assert logged[-1] == "slirp4netns for alice: (further lines dropped)"


def test_the_egress_ruleset_allows_only_what_is_listed() -> None:
    rules = [
        (parse_egress("api.anthropic.com:443"), ("160.79.104.10",)),
        (parse_egress("10.213.0.0/16:8000-8100"), ()),
    ]
    ruleset = network.nft_ruleset(rules)
    assert "policy drop;" in ruleset
    assert "ip daddr 160.79.104.10/32 tcp dport 443-443 accept" in ruleset
    assert "ip daddr 10.213.0.0/16 tcp dport 8000-8100 accept" in ruleset
    assert f"ip daddr {network.DNS_ADDRESS} udp dport 53 accept" in ruleset
    assert ruleset.index("accept") < ruleset.index("reject")
    assert parse_egress("*:*").networks() == ["0.0.0.0/0"]


# -- uids and ownership -----------------------------------------------------------------------


def test_each_agent_keeps_its_own_uid(tmp_path: Path) -> None:
    table = uids.UidTable(tmp_path / "uids.json", 1_900_000, 1_900_002)
    alice, bob = table.uid("alice"), table.uid("bob")
    assert alice != bob
    assert uids.UidTable(tmp_path / "uids.json", 1_900_000, 1_900_002).uid("alice") == alice
    table.uid("carol")
    with pytest.raises(ConfigError, match="no free agent uid"):
        table.uid("dave")
    table.release("bob")
    assert table.uid("dave") == bob
    with pytest.raises(ConfigError, match="uid range"):
        uids.UidTable(tmp_path / "x.json", 0, 10)


def test_two_agents_starting_at_once_get_two_uids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each start looks its uid up from a worker thread, so two first starts (the manager and
    an agent at a hive's first start) overlap. The first is held after it read the (empty)
    table; the second either runs through (and, without the table's lock, takes the same
    uid) or waits for the first, which is let go once the second did one or the other."""
    table = uids.UidTable(tmp_path / "uids.json", 1_900_000, 1_900_009)
    held, go, progressed = threading.Event(), threading.Event(), threading.Event()
    first = threading.current_thread()  # replaced by the first worker below

    def host_user(uid: int) -> bool:
        if threading.current_thread() is first and not held.is_set():
            held.set()
            assert go.wait(30), "never let go"
        return False

    class SaysWhenWaiting:
        """The table's lock, telling the test when the second start reached it."""

        def __init__(self, lock: threading.Lock) -> None:
            self.lock = lock

        def __enter__(self) -> None:
            if threading.current_thread() is not first:
                progressed.set()
            self.lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self.lock.release()

    monkeypatch.setattr(uids, "_host_user", host_user)
    monkeypatch.setattr(table, "_lock", SaysWhenWaiting(threading.Lock()), raising=False)
    got: dict[str, int] = {}

    def start(name: str) -> None:
        got[name] = table.uid(name)
        progressed.set()

    first = threading.Thread(target=start, args=("manager",))
    second = threading.Thread(target=start, args=("alice",))
    first.start()
    assert held.wait(30)
    second.start()
    assert progressed.wait(30)
    go.set()
    first.join(30)
    second.join(30)
    assert got["manager"] != got["alice"], got
    assert json.loads((tmp_path / "uids.json").read_text()) == got


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_handing_the_state_over_never_follows_a_planted_link(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "deep" / "er").mkdir(parents=True)
    (state / "deep" / "er" / "file").write_text("x")
    victim = tmp_path / "host-file"
    victim.write_text("the host's")
    (state / "link").symlink_to(victim)
    (state / "deep" / "dirlink").symlink_to(tmp_path)
    changed = uids.own_state(state, 1_900_123, 1_900_123)
    assert changed == 6  # state, deep, er, file, link, dirlink (the links themselves)
    for path in (state, state / "deep" / "er" / "file"):
        assert (path.stat().st_uid, path.stat().st_gid) == (1_900_123, 1_900_123)
    assert (state / "link").lstat().st_uid == 1_900_123
    assert victim.stat().st_uid == 0  # the target was never touched
    assert tmp_path.stat().st_uid == 0
    assert uids.own_state(state, 1_900_123, 1_900_123) == 0  # nothing left to change


# -- cgroups and the prlimit fallback ---------------------------------------------------------


def _fake_cgroup(tmp_path: Path, own: str, controllers: str) -> tuple[Path, Path, Path]:
    mount = tmp_path / "cgroup"
    directory = mount / own.lstrip("/")
    directory.mkdir(parents=True)
    (directory / "cgroup.controllers").write_text(controllers + "\n")
    (directory / "cgroup.procs").write_text(f"{os.getpid()}\n")
    (directory / "cgroup.subtree_control").write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"36 25 0:30 / {mount} rw,nosuid - cgroup2 cgroup2 rw\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text(f"0::{own}\n")
    return directory, mountinfo, proc


def test_a_delegated_cgroup_gets_a_child_per_agent_with_its_limits(tmp_path: Path) -> None:
    directory, mountinfo, proc = _fake_cgroup(tmp_path, "/hyperhive.service", "cpu memory pids")
    found, why = find_delegated_cgroup(mountinfo, proc)
    assert (found, why) == (directory, "")
    tree = CgroupTree(directory)
    tree.prepare()
    assert (directory / "daemon" / "cgroup.procs").read_text() == f"{os.getpid()}\n"
    assert (directory / "cgroup.subtree_control").read_text() == "+memory +pids\n"
    agent = tree.agent("alice", Limits(memory_max=1 << 30, pids_max=99))
    assert (agent / "memory.max").read_text() == f"{1 << 30}\n"
    assert (agent / "pids.max").read_text() == "99\n"


def test_cgroups_that_are_not_delegated_say_why(tmp_path: Path) -> None:
    _, mountinfo, proc = _fake_cgroup(tmp_path, "/svc", "cpu io")
    assert "no memory or pids controller" in find_delegated_cgroup(mountinfo, proc)[1]
    _, mountinfo, proc = _fake_cgroup(tmp_path / "b", "/", "memory pids")
    assert "root cgroup" in find_delegated_cgroup(mountinfo, proc)[1]
    assert prlimit_plan(Limits(100, 5), per_uid=True) == {
        "DATA": [100, 100],
        "CORE": [0, 0],
        "NPROC": [5, 5],
    }
    assert "NPROC" not in prlimit_plan(Limits(100, 5), per_uid=False)


@needs_bwrap
@pytest.mark.slow
async def test_an_agent_cannot_start_more_processes_than_its_limit(short_tmp: Path) -> None:
    backend = BwrapBackend(runtime_dir=short_tmp / "runtime", shutdown_grace=1.0)
    spec = make_spec(short_tmp, "alice")
    (spec.state_dir.parent / "sandbox.json").parent.mkdir(parents=True, exist_ok=True)
    settings_file = spec.state_dir.parent / "sandbox.json"
    settings_file.write_text(json.dumps({"pids_max": 40, "memory_max": "256M"}))
    import attrs

    spec = attrs.evolve(spec, settings_file=settings_file)
    fork_many = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('stopped at', n, e.strerror)\n"
        "try:\n"
        "    bytearray(512 << 20)\n"
        "except MemoryError:\n"
        "    print('memory refused')\n"
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        await backend.create(spec)
        await backend.start("alice")
        await wait_report(spec.state_dir, starts=1)
        with trio.fail_after(60):
            done = await backend.exec("alice", [PROBE_COMMAND[0], "-S", "-c", fork_many])
        out = done.stdout.decode()
        assert "stopped at" in out, (out, done.stderr)
        assert int(out.split("stopped at")[1].split()[0]) < 40
        assert "memory refused" in out
        backend.request_stop()


# -- disk -------------------------------------------------------------------------------------


def test_disk_use_counts_blocks_without_following_links(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "sub").mkdir(parents=True)
    (state / "sub" / "data").write_bytes(os.urandom(256 * 1024))
    (state / "link").symlink_to("/usr")
    used = disk.measure(state)
    assert used is not None
    assert used.complete
    assert 256 * 1024 <= used.bytes < 2 * 1024 * 1024  # /usr was not walked
    assert not disk.measure(state, max_entries=1).complete  # type: ignore[union-attr]
    assert disk.measure(tmp_path / "missing") is None
    meter = disk.DiskMeter(refresh=60)
    first = meter.usage(state, now=0.0)
    (state / "more").write_bytes(os.urandom(512 * 1024))
    assert meter.usage(state, now=30.0) == first  # cached
    assert meter.usage(state, now=61.0).bytes > first.bytes  # type: ignore[union-attr]


async def test_an_agent_past_its_soft_quota_raises_one_operator_event(short_tmp: Path) -> None:
    settings = ContainerSettings(ensure_manager=False, disk_quota=1 << 20)
    async with open_test_hive(short_tmp, backend=FakeBackend(), containers=settings) as hive:
        lifecycle = hive.handles.agents
        assert lifecycle is not None
        await lifecycle.spawn("alice")
        published: list[wire.EventPayload] = []
        rescanner = Rescanner(
            Mailbox("rescanner"),
            build=lifecycle.views,
            publish=lambda *payloads: published.extend(payloads),
        )
        await rescanner.rescan(None)
        row = rescanner.last["alice"]
        assert row.disk_quota == 1 << 20
        assert row.disk_bytes is not None
        assert row.disk_bytes < 1 << 20
        assert not [p for p in published if isinstance(p, wire.DiskQuotaExceeded)]
        state = hive.paths.agent_state_dir("alice")
        (state / "big").write_bytes(os.urandom(2 << 20))
        hive.tree.agents._views.disk = disk.DiskMeter(refresh=0)  # measure afresh for this test
        await rescanner.rescan(["alice"])
        await rescanner.rescan(["alice"])  # still over: no second event
        over = [p for p in published if isinstance(p, wire.DiskQuotaExceeded)]
        assert over == [
            wire.DiskQuotaExceeded("alice", rescanner.last["alice"].disk_bytes or 0, 1 << 20)
        ]
        assert "over its 1.0 MiB quota" in _list_notes(rescanner.last["alice"])


def _list_notes(view: wire.ContainerView) -> str:
    from rich.console import Console

    from hyperhive.tui import containers_table

    console = Console(width=200, record=True)
    console.print(containers_table([view]))
    return console.export_text()


# -- the egress allowlist, for real -----------------------------------------------------------


@needs_bwrap
@pytest.mark.slow
@pytest.mark.skipif(netns_problem() is not None, reason=str(netns_problem()))
@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is not installed")
async def test_an_egress_allowlist_lets_through_only_what_it_names(short_tmp: Path) -> None:
    import socket
    import threading

    with open_netns_host() as internet:
        allowed, refused = internet.listen_tcp(), internet.listen_tcp()
        ports = [s.getsockname()[1] for s in (allowed, refused)]

        def serve(sock: socket.socket) -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"hi\n")

        for sock in (allowed, refused):
            threading.Thread(target=serve, args=(sock,), daemon=True).start()
        backend = BwrapBackend(runtime_dir=short_tmp / "runtime", shutdown_grace=1.0)
        spec = make_spec(short_tmp, "alice")
        settings_file = spec.state_dir.parent / "sandbox.json"
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(json.dumps({"egress": [f"{internet.address}:{ports[0]}"]}))
        spec.config_dir.mkdir(parents=True, exist_ok=True)
        plan = {"tcp": [[internet.address, ports[0]], [internet.address, ports[1]]]}
        (spec.config_dir / "probe-wall.json").write_text(json.dumps(plan))
        import attrs

        spec = attrs.evolve(spec, settings_file=settings_file)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(backend.run)
                await backend.create(spec)
                await backend.start("alice")
                report = await wait_report(spec.state_dir, starts=1)
                backend.request_stop()
        finally:
            for sock in (allowed, refused):
                sock.close()
    tcp = report["wall"]["tcp"]  # type: ignore[index]
    assert tcp[f"{internet.address}:{ports[0]}"] == "connected: hi"
    assert tcp[f"{internet.address}:{ports[1]}"] == "ECONNREFUSED"  # the allowlist's reset


@needs_bwrap
async def test_a_broken_sandbox_json_fails_the_start_with_the_file_named(short_tmp: Path) -> None:
    backend = BwrapBackend(runtime_dir=short_tmp / "runtime")
    spec = make_spec(short_tmp, "alice")
    settings_file = short_tmp / "alice" / "sandbox.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text('{"pids_max": -1}')
    import attrs

    spec = attrs.evolve(spec, settings_file=settings_file)
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        await backend.create(spec)
        with pytest.raises(StartFailed, match="pids_max") as caught:
            await backend.start("alice")
        assert str(settings_file) in str(caught.value)
        backend.request_stop()


@needs_bwrap
async def test_a_missing_bind_source_fails_the_start_naming_the_path_and_who_asked(
    short_tmp: Path,
) -> None:
    import attrs

    backend = BwrapBackend(runtime_dir=short_tmp / "runtime", shutdown_grace=1.0)
    settings_file = short_tmp / "alice" / "sandbox.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    missing = short_tmp / "srv" / "data"
    settings_file.write_text(json.dumps({"binds": [{"source": str(missing), "target": "/data"}]}))
    alice = attrs.evolve(make_spec(short_tmp, "alice"), settings_file=settings_file)
    gone = short_tmp / "reference"
    approved = SandboxSettings(binds=(Bind(gone, PurePosixPath("/ref")),))
    bob = attrs.evolve(make_spec(short_tmp, "bob"), approved=approved)
    carol = attrs.evolve(make_spec(short_tmp, "carol"), argv=(str(short_tmp / "no-such-program"),))
    # A link as the source is not followed by the check; bwrap, which resolves it, says why
    # it cannot bind it, and the start says so rather than blaming the program.
    link = short_tmp / "planted"
    link.symlink_to(short_tmp / "nowhere")
    dave = attrs.evolve(
        make_spec(short_tmp, "dave"),
        approved=SandboxSettings(binds=(Bind(link, PurePosixPath("/l")),)),
    )

    async def exits_at_once(name: str) -> str:
        """Why `name`'s sandbox ended: the start's error, or, when bwrap took longer than the
        start's settle time to give up (a loaded machine), the crash recorded after it."""
        try:
            await backend.start(name)
        except StartFailed as exc:
            return str(exc)
        while (ended := await backend.status(name)).state is not AgentState.CRASHED:
            await trio.sleep(0.05)
        return ended.detail

    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        for spec in (alice, bob, carol, dave):
            await backend.create(spec)
        with trio.fail_after(30):
            with pytest.raises(StartFailed) as from_file:
                await backend.start("alice")
            with pytest.raises(StartFailed) as from_toml:
                await backend.start("bob")
            no_program = await exits_at_once("carol")
            dangling = await exits_at_once("dave")
            status = await backend.status("alice")
            dave_status = await backend.status("dave")
        backend.request_stop()
    assert str(from_file.value) == (
        f"alice: the bind source {missing} (for /data, from binds in {settings_file}) does not "
        "exist; create it or remove the bind"
    )
    detail = str(from_file.value).removeprefix("alice: ")
    assert (status.state, status.detail) == (AgentState.CRASHED, detail)
    toml = bob.config_dir / "agent.toml"
    assert f"the bind source {gone} (for /ref, from binds in {toml}) does not" in str(
        from_toml.value
    )
    assert status.refused  # checked before bwrap ran: nothing did
    # A program that is not there is still reported as the program.
    assert f"cannot run {short_tmp / 'no-such-program'}" in no_program
    assert "bind" not in no_program
    assert f"Can't find source path {link}" in dangling
    assert "cannot run" not in dangling
    assert dave_status.refused  # bwrap gave up setting the sandbox up: its payload never ran
