"""The hive's Claude credentials (`hyperhive/core/credentials.py`): parsed, stored, handed out.

The end-to-end test with the real harness, bwrap and a gateway is
`tests/hyperhive/test_login_e2e.py`; here: what is accepted and refused, where the value goes
and where it never goes, and the daemon's `login` on a test hive.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.agent import login as harness_login
from hyperhive.agent.settings import AgentPaths
from hyperhive.containers.settings import ContainerSettings
from hyperhive.core.agent_files import UnsafeFile
from hyperhive.core.credentials import (
    AGENT_FILE,
    CLAUDE_FILE,
    CredentialStore,
    parse_variables,
    remove_agent_credentials,
    remove_daemon_credential,
    variables_from_text,
)
from hyperhive.errors import BadRequest, ConfigError, RemoteError
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.testing.fake_containers import FakeAgent, FakeBackend

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "sk-ant-api03-not-a-real-key-0123456789"


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


# -- what a credential may be -------------------------------------------------------------------


def test_a_credential_shows_names_never_values() -> None:
    credential = parse_variables([f"ANTHROPIC_API_KEY={SECRET}", "ANTHROPIC_BASE_URL=http://gw"])
    assert SECRET not in repr(credential)
    assert SECRET not in str(credential)
    assert credential.names() == ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
    assert SECRET not in repr(wire.Login(variables=(f"ANTHROPIC_API_KEY={SECRET}",)))


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ([f"PATH={SECRET}"], "is not a variable a credential sets"),
        ([f"LD_PRELOAD={SECRET}"], "is not a variable a credential sets"),
        ([f"HYPERHIVE_AGENT={SECRET}"], "is not a variable a credential sets"),
        ([SECRET], "NAME=VALUE"),
        ([f"ANTHROPIC_API_KEY={SECRET}", f"ANTHROPIC_API_KEY={SECRET}"], "given twice"),
        (["ANTHROPIC_API_KEY="], "empty"),
        ([f"ANTHROPIC_BASE_URL=http://gw/{SECRET}"], "authenticates nothing"),
        ([f"ANTHROPIC_API_KEY={SECRET}\rX"], "line break"),
    ],
)
def test_a_bad_credential_is_refused_without_echoing_it(lines: list[str], says: str) -> None:
    with pytest.raises(BadRequest, match=says) as caught:
        parse_variables(lines)
    assert SECRET not in str(caught.value)


def test_what_the_operator_types_becomes_variables() -> None:
    assert variables_from_text(f"{SECRET}\n") == [f"ANTHROPIC_API_KEY={SECRET}"]
    pasted = "Your OAuth token (valid for 1 year):\n\nsk-ant-oat01-abcdefghijklmnop\n\nStore it"
    assert variables_from_text(pasted) == ["CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-abcdefghijklmnop"]
    env_file = (
        "# the gateway\nexport ANTHROPIC_BASE_URL='https://gw.example/v1'\n\n"
        f'ANTHROPIC_AUTH_TOKEN="{SECRET}"\nCLAUDE_CODE_USE_BEDROCK=1\n'
    )
    assert variables_from_text(env_file) == [
        "ANTHROPIC_BASE_URL=https://gw.example/v1",
        f"ANTHROPIC_AUTH_TOKEN={SECRET}",
        "CLAUDE_CODE_USE_BEDROCK=1",
    ]
    with pytest.raises(ConfigError, match="one word") as caught:
        variables_from_text(f"{SECRET} and more", "api-key")
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        variables_from_text(f"ANTHROPIC_API_KEY={SECRET}\ngarbage", "gateway")


# -- the store and what an agent is given --------------------------------------------------------


def _state(tmp_path: Path, name: str) -> Path:
    state = tmp_path / "agents" / name / "state"
    state.mkdir(parents=True)
    return state


def test_the_hive_credential_and_an_agents_own(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    hive = parse_variables([f"ANTHROPIC_API_KEY={SECRET}"])
    own = parse_variables(["CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-bob"])
    assert store.resolve("alice") is None
    store.store(hive)
    store.store(own, ["bob"])
    assert store.resolve("alice") == hive
    assert store.resolve("bob") == own
    assert store.has_own("bob")
    assert not store.has_own("alice")
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o700
    for path in (tmp_path / "credentials").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    store.forget("bob")
    assert store.resolve("bob") == hive
    assert [p.name for p in (tmp_path / "credentials").glob("c-*.json")] == []


def test_an_agent_is_given_its_credential_as_its_harness_reads_it(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    store.store(parse_variables([f"ANTHROPIC_API_KEY={SECRET}", "ANTHROPIC_BASE_URL=http://gw"]))
    state = _state(tmp_path, "alice")
    assert store.provide("alice", state)
    given = state / AGENT_FILE
    assert given.stat().st_mode & 0o777 == 0o600
    assert harness_login.stored_credentials(AgentPaths(state)) == {
        "ANTHROPIC_API_KEY": SECRET,
        "ANTHROPIC_BASE_URL": "http://gw",
    }
    assert [p.name for p in state.iterdir()] == [AGENT_FILE]  # no scratch file left


def test_an_agents_own_login_stays_unless_the_operator_names_it(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    store.store(parse_variables([f"ANTHROPIC_API_KEY={SECRET}"]))
    state = _state(tmp_path, "alice")
    harness_login.save_credentials(AgentPaths(state), "oauth_token", "sk-ant-oat01-alices-own")
    assert not store.provide("alice", state)
    assert "alices-own" in (state / AGENT_FILE).read_text()
    assert store.provide("alice", state, overwrite=True)
    assert SECRET in (state / AGENT_FILE).read_text()


def test_a_link_the_agent_planted_is_replaced_never_written_through(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    store.store(parse_variables([f"ANTHROPIC_API_KEY={SECRET}"]))
    victim = tmp_path / "host-file"
    victim.write_text("the host's\n")
    state = _state(tmp_path, "alice")
    (state / AGENT_FILE).symlink_to(victim)
    assert store.provide("alice", state)
    assert victim.read_text() == "the host's\n"
    assert not (state / AGENT_FILE).is_symlink()
    hard = _state(tmp_path, "bob")
    os.link(victim, hard / AGENT_FILE)
    assert store.provide("bob", hard)
    assert victim.read_text() == "the host's\n"


def test_a_state_directory_that_is_a_link_gets_nothing(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    store.store(parse_variables([f"ANTHROPIC_API_KEY={SECRET}"]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "agents" / "alice").mkdir(parents=True)
    (tmp_path / "agents" / "alice" / "state").symlink_to(elsewhere)
    with pytest.raises(Exception, match="symlink"):
        store.provide("alice", tmp_path / "agents" / "alice" / "state")
    assert list(elsewhere.iterdir()) == []


def test_a_logged_out_agent_is_given_nothing_until_it_is_named_again(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    hive = parse_variables([f"ANTHROPIC_API_KEY={SECRET}"])
    store.store(hive)
    store.store(parse_variables(["CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-bob"]), ["bob"])
    store.revoke("bob")
    assert store.resolve("bob") is None  # not its own, and not the hive's either
    assert store.has_own("bob")  # so the hive's next login passes it by
    assert store.resolve("alice") == hive
    assert [p.name for p in (tmp_path / "credentials").glob("c-*.json")] == []
    state = _state(tmp_path, "bob")
    assert not store.provide("bob", state)
    assert not (state / AGENT_FILE).exists()
    again = parse_variables(["CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-bob-again"])
    store.store(again, ["bob"])
    assert store.resolve("bob") == again


def test_logging_out_removes_the_files_and_never_follows_a_link(tmp_path: Path) -> None:
    state = _state(tmp_path, "alice")
    harness_login.save_credentials(AgentPaths(state), "oauth_token", "sk-ant-oat01-alices-own")
    (state / CLAUDE_FILE).parent.mkdir(parents=True)
    (state / CLAUDE_FILE).write_text("{}")
    assert remove_agent_credentials(state) == [f"/state/{AGENT_FILE}", f"/state/{CLAUDE_FILE}"]
    assert not (state / AGENT_FILE).exists()
    assert not (state / CLAUDE_FILE).exists()
    assert remove_agent_credentials(state) == []
    # A link planted in its place is removed itself; what it points to stays.
    victim = tmp_path / "host-file"
    victim.write_text("the host's\n")
    (state / AGENT_FILE).symlink_to(victim)
    assert remove_agent_credentials(state) == [f"/state/{AGENT_FILE}"]
    assert victim.read_text() == "the host's\n"
    assert not (state / AGENT_FILE).is_symlink()
    # A linked directory on the way is refused, and nothing behind it is touched.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / ".claude").mkdir(parents=True)
    (elsewhere / ".claude" / ".credentials.json").write_text("{}")
    os.rename(state / "home", tmp_path / "old-home")
    (state / "home").symlink_to(elsewhere)
    with pytest.raises(UnsafeFile, match="symlink"):
        remove_agent_credentials(state)
    assert (elsewhere / ".claude" / ".credentials.json").exists()


def test_forgetting_the_hive_credential_takes_back_only_the_daemons_copies(
    tmp_path: Path,
) -> None:
    store = CredentialStore(tmp_path / "credentials")
    store.store(parse_variables([f"ANTHROPIC_API_KEY={SECRET}"]))
    given, own, linked = (_state(tmp_path, n) for n in ("alice", "bob", "carol"))
    assert store.provide("alice", given)
    harness_login.save_credentials(AgentPaths(own), "oauth_token", "sk-ant-oat01-bobs-own")
    victim = tmp_path / "host-file"
    victim.write_text(json.dumps({"from": "daemon"}))
    (linked / AGENT_FILE).symlink_to(victim)
    assert store.forget_hive()
    assert store.resolve("alice") is None
    assert not store.forget_hive()  # nothing left to forget
    assert remove_daemon_credential(given) == [f"/state/{AGENT_FILE}"]
    assert not (given / AGENT_FILE).exists()
    assert remove_daemon_credential(own) == []  # the agent's own login stays
    assert "bobs-own" in (own / AGENT_FILE).read_text()
    assert remove_daemon_credential(linked) == []  # a link is never read through
    assert victim.exists()
    assert remove_daemon_credential(given) == []


def test_the_harness_ignores_variables_a_credential_may_not_set(tmp_path: Path) -> None:
    paths = AgentPaths(tmp_path)
    body = {"kind": "env", "env": {"ANTHROPIC_API_KEY": SECRET, "PATH": "/evil", "X": 1}}
    paths.credentials.write_text(json.dumps(body))
    assert harness_login.stored_credentials(paths) == {"ANTHROPIC_API_KEY": SECRET}


async def test_a_gateway_token_counts_as_logged_in(tmp_path: Path) -> None:
    state = await harness_login.probe(tmp_path / "no-claude", {"ANTHROPIC_AUTH_TOKEN": "t"})
    assert (state.logged_in, state.method) == (True, "auth_token")
    bedrock = await harness_login.probe(tmp_path / "no-claude", {"CLAUDE_CODE_USE_BEDROCK": "1"})
    assert (bedrock.logged_in, bedrock.method) == (True, "bedrock")


# -- the daemon's login ---------------------------------------------------------------------------


async def test_login_on_the_admin_socket_reaches_every_agent_and_new_ones(
    short_tmp: Path, clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend()
    seen_at_start: dict[str, dict[str, str]] = {}

    async def reads_its_credentials(agent: FakeAgent) -> int:
        seen_at_start[agent.spec.name] = harness_login.stored_credentials(
            AgentPaths(agent.spec.state_dir)
        )
        await agent.stop_requested.wait()
        return 0

    backend.set_payload("bob", reads_its_credentials)
    settings = ContainerSettings(ensure_manager=False, stop_grace=2.0, shutdown_grace=1.0)
    async with open_test_hive(
        short_tmp / "s", clock=FakeWallClock(), backend=backend, containers=settings
    ) as hive:
        await hive.handles.agents.wait_autostarted()
        await hive.handles.agents.spawn("alice")
        async with hive.operator() as operator:
            with pytest.raises(RemoteError, match="unknown agent 'nobody'"):
                await operator.call(
                    wire.Login(variables=(f"ANTHROPIC_API_KEY={SECRET}",), agents=("nobody",))
                )
            stored = await operator.call(wire.Login(variables=(f"ANTHROPIC_API_KEY={SECRET}",)))
            assert stored == wire.CredentialStored(("ANTHROPIC_API_KEY",), True, ("alice",))
            alice = AgentPaths(hive.paths.agent_state_dir("alice"))
            assert harness_login.stored_credentials(alice) == {"ANTHROPIC_API_KEY": SECRET}

            await hive.handles.agents.spawn("bob")  # given it before its first start
            await trio.testing.wait_all_tasks_blocked()
            assert seen_at_start["bob"] == {"ANTHROPIC_API_KEY": SECRET}

            own = await operator.call(
                wire.Login(variables=("CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-x",), agents=("bob",))
            )
            assert own == wire.CredentialStored(("CLAUDE_CODE_OAUTH_TOKEN",), False, ("bob",))
            bob = AgentPaths(hive.paths.agent_state_dir("bob"))
            assert harness_login.stored_credentials(bob) == {
                "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-x"
            }
            assert harness_login.stored_credentials(alice) == {"ANTHROPIC_API_KEY": SECRET}
            history = await operator.call(wire.History(limit=1000))
            assert SECRET not in repr(history)
    assert SECRET not in (short_tmp / "s" / "agents" / "alice" / "agent.json").read_text()
