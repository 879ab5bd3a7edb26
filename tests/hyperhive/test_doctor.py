"""`hyperhive doctor`: each part of the host taken away in turn, and once all green.

The probes are the real ones (bwrap, libseccomp, slirp4netns, the state directory, the claude
binary, an HTTP request); what a test takes away is what they look up: the PATH they search, a
/proc/sys they read, the descriptor limit, a state directory made looser, a model API that
refuses.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio

from hyperhive.doctor import Finding, Probes, exit_status, run_checks, to_json
from hyperhive.testing.model_api import ApiError, open_model_api, overloaded

KEY = "sk-ant-api03-doctor-test-key-never-printed"


def _probes(state: Path, **changes: object) -> Probes:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "CLAUDE"))}
    env.pop("HYPERHIVE_CLAUDE_BIN", None)
    probes = Probes.of_this_host(state, api=False)
    if "path" in changes:  # a test's PATH is all there is: no system bin directories after it
        changes.setdefault("system_bin", "")
    return attrs.evolve(probes, env=env, **changes)  # type: ignore[arg-type]


def _finding(probes: Probes, check: str) -> Finding:
    [found] = [f for f in run_checks(probes) if f.check == check]
    return found


def _bin_with(tmp: Path, *programs: str) -> str:
    """A PATH holding only `programs` (linked to the real ones)."""
    directory = tmp / "bin"
    directory.mkdir(exist_ok=True)
    for program in programs:
        real = shutil.which(program)
        assert real is not None, program
        (directory / program).symlink_to(real)
    return str(directory)


def _script(tmp: Path, name: str, body: str) -> Path:
    directory = tmp / "bin"
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _agent(state: Path, name: str, *, credential: dict[str, object] | None = None) -> Path:
    home = state / "agents" / name
    (home / "state").mkdir(parents=True)
    (home / "agent.json").write_text("{}")
    if credential is not None:
        (home / "state" / "hyperhive-credentials.json").write_text(json.dumps(credential))
    return home / "state"


# -- the sandbox ------------------------------------------------------------------------------


def test_no_bwrap_on_path_fails_and_says_what_to_install(tmp_path: Path) -> None:
    probes = _probes(tmp_path / "s", path=_bin_with(tmp_path, "slirp4netns", "nft"))
    found = _finding(probes, "bubblewrap")
    assert found.status == "fail"
    assert "bwrap is not on PATH" in found.summary
    assert "apt-get install bubblewrap" in found.fix
    assert exit_status(run_checks(probes)) == 1


def test_a_bwrap_that_cannot_create_namespaces_fails_with_its_own_words(tmp_path: Path) -> None:
    _script(tmp_path, "bwrap", "echo 'bwrap: No permissions to create new namespace' >&2; exit 1")
    found = _finding(_probes(tmp_path / "s", path=str(tmp_path / "bin")), "bubblewrap")
    assert found.status == "fail"
    assert "No permissions to create new namespace" in found.summary
    assert "user namespaces" in found.fix


def test_working_bwrap_is_ok(tmp_path: Path) -> None:
    found = _finding(_probes(tmp_path / "s"), "bubblewrap")
    assert found.status == "ok", found
    assert "bubblewrap" in found.summary


@pytest.mark.parametrize(
    ("knob", "value", "status", "words"),
    [
        ("user/max_user_namespaces", "0", "fail", "user.max_user_namespaces = 0"),
        ("kernel/unprivileged_userns_clone", "0", "fail", "unprivileged_userns_clone = 0"),
        ("kernel/apparmor_restrict_unprivileged_userns", "1", "warn", "AppArmor restricts"),
        ("user/max_user_namespaces", "15000", "ok", "enabled"),
    ],
)
def test_user_namespace_knobs(
    tmp_path: Path, knob: str, value: str, status: str, words: str
) -> None:
    proc_sys = tmp_path / "proc-sys"
    (proc_sys / knob).parent.mkdir(parents=True)
    (proc_sys / knob).write_text(value + "\n")
    found = _finding(_probes(tmp_path / "s", euid=1000, proc_sys=proc_sys), "user namespaces")
    assert found.status == status
    assert words in found.summary
    if status == "fail":
        assert "sysctl -w" in found.fix


def test_user_namespaces_do_not_matter_to_a_root_daemon(tmp_path: Path) -> None:
    found = _finding(_probes(tmp_path / "s", euid=0), "user namespaces")
    assert found.status == "skip"


def test_no_libseccomp_warns_that_agents_run_unfiltered(tmp_path: Path) -> None:
    def missing() -> str:
        return "libseccomp is not usable (libseccomp.so.2: cannot open shared object file)"

    probes = _probes(tmp_path / "s", seccomp_problem=missing)
    found = _finding(probes, "seccomp")
    assert found.status == "warn"
    assert "without the seccomp filter" in found.summary
    assert "libseccomp2" in found.fix
    assert _finding(_probes(tmp_path / "s"), "seccomp").status == "ok"


def test_no_slirp4netns_or_nft_warns_with_the_fallback(tmp_path: Path) -> None:
    probes = _probes(tmp_path / "s", path=_bin_with(tmp_path, "bwrap", "nsenter", "ip"))
    network = _finding(probes, "user-mode network")
    assert network.status == "warn"
    assert "slirp4netns is not installed" in network.summary
    assert "share the host's network" in network.summary
    nft = _finding(probes, "nftables")
    assert nft.status == "warn"
    assert "egress allowlist would refuse to start" in nft.summary
    assert exit_status(run_checks(probes)) == 0  # fallbacks, not failures


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns not installed")
def test_a_tun_device_the_daemon_user_cannot_open_warns_with_the_chmod_that_fixes_it(
    tmp_path: Path,
) -> None:
    tun = tmp_path / "tun"  # a stand-in with the device's owner and mode (root, 0600)
    tun.write_text("")
    tun.chmod(0o600)
    found = _finding(_probes(tmp_path / "s", euid=1000, tun=tun), "user-mode network")
    assert found.status == "warn"
    assert f"{tun} is mode 0600" in found.summary
    assert "share the host's network" in found.summary
    assert "operator token" in found.summary
    assert "chmod 0666 /dev/net/tun" in found.fix
    assert 'KERNEL=="tun", MODE="0666"' in found.fix
    tun.chmod(0o666)  # what udev gives it
    assert _finding(_probes(tmp_path / "s", euid=1000, tun=tun), "user-mode network").status == (
        "ok"
    )
    tun.chmod(0o600)  # a root daemon opens it whatever its mode
    assert _finding(_probes(tmp_path / "s", euid=0, tun=tun), "user-mode network").status == "ok"


def test_a_normal_users_path_still_finds_the_network_tools_in_sbin(tmp_path: Path) -> None:
    probes = _probes(
        tmp_path / "s", path=_bin_with(tmp_path, "bwrap"), system_bin=str(tmp_path / "sbin")
    )
    (tmp_path / "sbin").mkdir()
    for tool in ("slirp4netns", "nsenter", "ip", "nft"):
        _script(tmp_path, tool, "exit 0")
        (tmp_path / "bin" / tool).rename(tmp_path / "sbin" / tool)
    assert _finding(probes, "nftables").status == "ok"
    assert str(tmp_path / "sbin") in _finding(probes, "nftables").summary
    network = _finding(probes, "user-mode network")
    assert "not installed" not in network.summary
    assert "not on PATH" not in network.summary


def test_slirp4netns_without_nsenter_or_ip_warns(tmp_path: Path) -> None:
    probes = _probes(tmp_path / "s", path=_bin_with(tmp_path, "slirp4netns"))
    found = _finding(probes, "user-mode network")
    assert found.status == "warn"
    assert "nsenter and ip not on PATH" in found.summary


def test_a_delegated_cgroup_is_found_and_a_missing_one_warns(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    proc_cgroup = tmp_path / "cgroup"
    proc_cgroup.write_text("0::/hive\n")
    mountinfo.write_text("24 1 0:22 / /proc rw - proc proc rw\n")
    none = _finding(_probes(tmp_path / "s", mountinfo=mountinfo, proc_cgroup=proc_cgroup), "cgroup")
    assert none.status == "warn"
    assert "no cgroup v2 hierarchy" in none.summary
    assert "Delegate=yes" in none.fix

    root = tmp_path / "cg"
    (root / "hive").mkdir(parents=True)
    (root / "hive" / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "hive" / "cgroup.procs").write_text(f"{os.getpid()}\n")
    mountinfo.write_text(f"30 1 0:26 / {root} rw - cgroup2 cgroup2 rw\n")
    found = _finding(
        _probes(tmp_path / "s", mountinfo=mountinfo, proc_cgroup=proc_cgroup), "cgroup"
    )
    assert found.status == "ok", found
    assert str(root / "hive") in found.summary


# -- the daemon's own resources ---------------------------------------------------------------


def _served_state(tmp: Path) -> Path:
    state = tmp / "s"
    state.mkdir(mode=0o700)
    (state / "agents").mkdir(mode=0o700)
    for name in ("broker.sqlite", "broker.sqlite-wal", "questions.sqlite"):
        (state / name).touch(mode=0o600)
    return state


def test_a_private_state_dir_is_ok_and_a_missing_one_is_created_later(tmp_path: Path) -> None:
    assert _finding(_probes(_served_state(tmp_path)), "state directory").status == "ok"
    missing = _finding(_probes(tmp_path / "nowhere"), "state directory")
    assert missing.status == "ok"
    assert "creates it 0700" in missing.summary


def test_a_looser_state_dir_fails_naming_what_is_open(tmp_path: Path) -> None:
    state = _served_state(tmp_path)
    state.chmod(0o755)
    (state / "broker.sqlite-wal").chmod(0o644)
    probes = _probes(state)
    found = _finding(probes, "state directory")
    assert found.status == "fail"
    assert f"{state} is 0755" in found.summary
    assert f"{state}/broker.sqlite-wal is 0644" in found.summary
    assert f"{state}/questions.sqlite" not in found.summary
    assert "chmod 700" in found.fix
    assert exit_status(run_checks(probes)) == 1


def test_a_state_dir_of_another_user_fails(tmp_path: Path) -> None:
    found = _finding(_probes(_served_state(tmp_path), euid=4242), "state directory")
    assert found.status == "fail"
    assert "not to this user (uid 4242)" in found.summary


def test_a_state_dir_too_long_for_socket_paths_fails(tmp_path: Path) -> None:
    found = _finding(_probes(tmp_path / ("x" * 120)), "state directory")
    assert found.status == "fail"
    assert "shorter --state-dir" in found.fix


@pytest.mark.parametrize(
    ("limits", "status", "words"),
    [
        ((256, 256), "fail", "hard open-file limit 256: one busy agent"),
        ((1024, 2048), "warn", "room for about 22 agents"),
        ((1024, 65536), "ok", "room for about 816 agents"),
    ],
)
def test_descriptor_limit(tmp_path: Path, limits: tuple[int, int], status: str, words: str) -> None:
    found = _finding(_probes(tmp_path / "s", open_files=lambda: limits), "descriptor limit")
    assert found.status == status
    assert words in found.summary
    if status != "ok":
        assert "LimitNOFILE=65536" in found.fix


# -- Claude -----------------------------------------------------------------------------------


def test_no_claude_binary_fails(tmp_path: Path) -> None:
    probes = _probes(tmp_path / "s")
    probes = attrs.evolve(probes, env={**probes.env, "HYPERHIVE_CLAUDE_BIN": "/nonexistent/claude"})
    found = _finding(probes, "claude binary")
    assert found.status == "fail"
    assert "does not run" in found.summary
    broken = _script(tmp_path, "claude", "exit 3")
    probes = attrs.evolve(probes, env={**probes.env, "HYPERHIVE_CLAUDE_BIN": str(broken)})
    assert _finding(probes, "claude binary").status == "fail"


def test_the_bundled_claude_binary_runs(tmp_path: Path) -> None:
    found = _finding(_probes(tmp_path / "s"), "claude binary")
    assert found.status == "ok", found
    assert "Claude Code" in found.summary


def test_an_agent_without_a_credential_fails_and_is_named(tmp_path: Path) -> None:
    state = tmp_path / "s"
    _agent(state, "manager", credential={"kind": "oauth_token", "value": "sk-ant-oat01-x"})
    _agent(state, "alice")
    gone = _agent(state, "bob")
    (gone.parent / "tombstone.json").write_text("{}")
    probes = _probes(state)
    probes = attrs.evolve(probes, env={**probes.env, "ANTHROPIC_API_KEY": KEY})
    found = _finding(probes, "credentials")
    assert found.status == "fail"
    assert "no Claude credential: alice" in found.summary
    assert "bob" not in found.summary  # destroyed: its tombstone needs no login
    assert "do not inherit" in found.summary or "does not reach agents" in found.summary
    assert "`hyperhive login`" in found.fix
    assert KEY not in found.summary + found.fix


def test_every_agent_logged_in_is_ok(tmp_path: Path) -> None:
    state = tmp_path / "s"
    _agent(state, "manager", credential={"kind": "oauth_token", "value": "sk-ant-oat01-x"})
    alice = _agent(state, "alice")
    (alice / "home" / ".claude").mkdir(parents=True)
    (alice / "home" / ".claude" / ".credentials.json").write_text("{}")
    found = _finding(_probes(state), "credentials")
    assert found.status == "ok", found
    assert "manager: stored token" in found.summary
    assert "alice: claude login" in found.summary
    assert "sk-ant-oat01-x" not in found.summary


def test_a_credential_given_by_hyperhive_login_counts_and_its_gateway_is_asked(
    tmp_path: Path,
) -> None:
    state = tmp_path / "s"
    given = {"ANTHROPIC_BASE_URL": "http://gateway.invalid:9", "ANTHROPIC_AUTH_TOKEN": KEY}
    _agent(state, "alice", credential={"kind": "env", "env": given, "from": "daemon"})
    found = _finding(_probes(state), "credentials")
    assert found.status == "ok", found
    assert "alice: stored token" in found.summary
    assert KEY not in found.summary
    api = _finding(attrs.evolve(_probes(state), api=True, api_timeout=2.0), "Claude API")
    assert "gateway.invalid" in api.summary, api
    assert KEY not in api.summary + api.fix


def test_a_credential_file_an_agent_swapped_for_a_symlink_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "s"
    alice = _agent(state, "alice")
    secret = tmp_path / "host-secret.json"
    secret.write_text(json.dumps({"kind": "api_key", "value": "host-secret"}))
    (alice / "hyperhive-credentials.json").symlink_to(secret)
    found = _finding(_probes(state), "credentials")
    assert found.status == "fail"
    assert "alice (" in found.summary
    assert "symbolic link" in found.summary or "symlink" in found.summary


def test_no_agents_yet_warns(tmp_path: Path) -> None:
    found = _finding(_probes(tmp_path / "s"), "credentials")
    assert found.status == "warn"
    assert "no agents yet" in found.summary


async def _api_finding(probes: Probes) -> Finding:
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(_finding, probes, "Claude API")


async def test_the_api_answering_is_ok_and_got_one_minimal_request(tmp_path: Path) -> None:
    async with open_model_api() as api:
        probes = _probes(tmp_path / "s", api=True)
        env = {**probes.env, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": KEY}
        found = await _api_finding(attrs.evolve(probes, env=env))
    assert found.status == "ok", found
    assert api.base_url in found.summary
    assert "ANTHROPIC_API_KEY" in found.summary
    assert KEY not in found.summary
    [request] = api.requests
    assert request.headers["x-api-key"] == KEY
    assert request.body["max_tokens"] == 1
    assert request.body["model"] == "claude-haiku-4-5"


async def test_an_agents_stored_token_is_used_when_the_shell_has_none(tmp_path: Path) -> None:
    state = tmp_path / "s"
    _agent(state, "manager", credential={"kind": "oauth_token", "value": "sk-ant-oat01-stored"})
    async with open_model_api() as api:
        probes = _probes(state, api=True)
        env = {**probes.env, "ANTHROPIC_BASE_URL": api.base_url}
        found = await _api_finding(attrs.evolve(probes, env=env))
    assert found.status == "ok", found
    assert "manager's stored login" in found.summary
    [request] = api.requests
    assert request.headers["authorization"] == "Bearer sk-ant-oat01-stored"
    assert "x-api-key" not in request.headers


async def test_an_api_that_refuses_the_credential_fails(tmp_path: Path) -> None:
    async with open_model_api() as api:
        api.on(lambda r: True, ApiError(401, "authentication_error", "invalid x-api-key"))
        probes = _probes(tmp_path / "s", api=True)
        env = {**probes.env, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": KEY}
        found = await _api_finding(attrs.evolve(probes, env=env))
    assert found.status == "fail"
    assert "refused the credential (401): invalid x-api-key" in found.summary
    assert "log in again" in found.fix
    assert KEY not in found.summary + found.fix


async def test_a_busy_api_warns(tmp_path: Path) -> None:
    async with open_model_api() as api:
        api.on(lambda r: True, overloaded())
        probes = _probes(tmp_path / "s", api=True)
        env = {**probes.env, "ANTHROPIC_BASE_URL": api.base_url, "ANTHROPIC_API_KEY": KEY}
        found = await _api_finding(attrs.evolve(probes, env=env))
    assert found.status == "warn"
    assert "busy (529): Overloaded" in found.summary


async def test_an_api_nobody_serves_fails_saying_it_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        probes = _probes(tmp_path / "s", api=True)
        env = {
            **probes.env,
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
            "ANTHROPIC_API_KEY": KEY,
        }
        found = await _api_finding(attrs.evolve(probes, env=env))
    assert found.status == "fail"
    assert f"cannot reach http://127.0.0.1:{port}" in found.summary
    assert "refused" in found.summary.lower()
    assert "HTTPS_PROXY" in found.fix


def test_no_credential_skips_the_api(tmp_path: Path) -> None:
    found = _finding(attrs.evolve(_probes(tmp_path / "s"), api=True), "Claude API")
    assert found.status == "skip"
    assert "no credential" in found.summary


def test_a_taken_dashboard_port_warns_while_no_daemon_runs(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        probes = _probes(tmp_path / "s")
        probes = attrs.evolve(
            probes, env={**probes.env, "HYPERHIVE_DASHBOARD": f"127.0.0.1:{port}"}
        )
        found = _finding(probes, "daemon")
    assert found.status == "warn"
    assert f"127.0.0.1:{port} is taken" in found.summary
    assert "--dashboard" in found.fix


def test_a_check_that_raises_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    def broken() -> tuple[int, int]:
        raise RuntimeError("getrlimit exploded")

    findings = run_checks(_probes(tmp_path / "s", open_files=broken))
    [found] = [f for f in findings if f.check == "descriptor limit"]
    assert found.status == "fail"
    assert "getrlimit exploded" in found.summary
    assert len(findings) == 13


# -- the command ------------------------------------------------------------------------------


async def test_doctor_is_green_on_this_machine(short_tmp: Path) -> None:
    """The real command on this host: every essential check passes, exit status 0, --json.

    The hive is a real state directory with a logged-in agent and a daemon serving it; Claude's
    API is the scripted one on loopback. Only the cgroup check depends on how the machine was
    started (a delegated cgroup v2 or not), so it may warn.
    """
    from hyperhive.testing import DaemonProcess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "CLAUDE"))}
    with trio.fail_after(60):
        async with open_model_api() as api:
            env["ANTHROPIC_BASE_URL"] = api.base_url
            daemon = DaemonProcess(short_tmp, "--no-manager")
            await trio.to_thread.run_sync(daemon.start)
            try:
                _agent(short_tmp, "alice", credential={"kind": "api_key", "value": KEY})
                argv = [sys.executable, "-m", "hyperhive", "doctor", "--json"]
                done = await trio.run_process(
                    [*argv, "--state-dir", str(short_tmp)],
                    env=env,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            finally:
                await trio.to_thread.run_sync(daemon.__exit__, None, None, None)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["ok"] is True
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    expected_skip = {"user namespaces"} if os.geteuid() == 0 else set()
    for check, status in statuses.items():
        if check == "cgroup":
            assert status in ("ok", "warn")
        elif check in expected_skip:
            assert status == "skip"
        else:
            assert status == "ok", (check, report)
    assert KEY not in done.stdout.decode()
    [request] = api.requests
    assert request.body["max_tokens"] == 1


def test_doctor_prints_what_to_fix_and_exits_1(short_tmp: Path) -> None:
    short_tmp.chmod(0o755)
    env = {**os.environ, "PATH": "/nonexistent", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "hyperhive", "doctor", "--no-api", "--state-dir", str(short_tmp)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "✗ bubblewrap" in done.stdout
    assert "fix: install it: apt-get install bubblewrap" in done.stdout
    assert f"{short_tmp} is 0755" in done.stdout
    assert "Traceback" not in done.stderr


def test_json_shape() -> None:
    findings = [Finding("a", "ok", "fine"), Finding("b", "warn", "meh", "do x")]
    assert to_json(findings) == {
        "ok": True,
        "checks": [
            {"check": "a", "status": "ok", "summary": "fine", "fix": ""},
            {"check": "b", "status": "warn", "summary": "meh", "fix": "do x"},
        ],
    }
    assert exit_status([*findings, Finding("c", "fail", "bad", "fix")]) == 1


def test_git_missing_or_too_old_warns(tmp_path: Path) -> None:
    assert _finding(_probes(tmp_path / "s"), "git").status == "ok"
    missing = _finding(_probes(tmp_path / "s", path=str(tmp_path / "empty")), "git")
    assert missing.status == "warn"
    assert "no config change can be proposed" in missing.summary
    _script(tmp_path, "git", 'echo "git version 2.20.1"')
    old = _finding(_probes(tmp_path / "s", path=str(tmp_path / "bin")), "git")
    assert old.status == "warn"
    assert "is 2.20.1: config changes need git 2.29 or later" in old.summary
    assert "apt-get install git" in old.fix
