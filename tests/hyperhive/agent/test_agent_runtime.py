"""The runtime seam: the command runtime, Claude's command line and environment, login, prompts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from hyperhive import wire
from hyperhive.agent import login, prompts, serve_cli
from hyperhive.agent.claude import (
    ClaudeOptions,
    ClaudeRuntime,
    claude_argv,
    claude_env,
    find_claude,
    load_config_extras,
    mcp_config,
)
from hyperhive.agent.outcome import Outcome
from hyperhive.agent.runtime import CommandRuntime, TurnControl, TurnRequest
from hyperhive.agent.settings import AgentPaths, AgentSettings, Role
from hyperhive.containers.settings import ContainerSettings
from hyperhive.errors import ConfigError
from hyperhive.testing import FakeWallClock, open_test_hive
from hyperhive.testing.agent import next_event, open_test_harness
from hyperhive.testing.fake_containers import FakeBackend

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def _settings(tmp_path: Path, role: Role = Role.AGENT) -> AgentSettings:
    return AgentSettings("alice", role, tmp_path / "hive.sock", tmp_path / "state")


def _collect() -> tuple[list[tuple[str, Mapping[str, Any]]], Any]:
    seen: list[tuple[str, Mapping[str, Any]]] = []
    return seen, lambda payload: seen.append(wire.encode_live_event(payload))


# -- the command runtime ----------------------------------------------------------------------


async def test_a_command_reads_the_prompt_on_stdin_and_its_output_is_published(
    tmp_path: Path,
) -> None:
    out = tmp_path / "prompt.txt"
    runtime = CommandRuntime(
        ["sh", "-c", f'cat > {out}; echo "did it"; echo "model=$HYPERHIVE_TURN_MODEL"']
    )
    seen, publish = _collect()
    with trio.fail_after(20):
        report = await runtime.run_turn(
            TurnRequest("hello there", model="m1"), TurnControl(), publish
        )
    assert report.outcome is Outcome.OK
    assert out.read_text() == "hello there"
    assert seen == [("output", {"line": "did it"}), ("output", {"line": "model=m1"})]


@pytest.mark.parametrize(("code", "outcome"), [(75, Outcome.RATE_LIMITED), (3, Outcome.FAILED)])
async def test_a_commands_exit_code_is_its_outcome(code: int, outcome: Outcome) -> None:
    runtime = CommandRuntime(["sh", "-c", f"cat >/dev/null; exit {code}"])
    with trio.fail_after(20):
        report = await runtime.run_turn(TurnRequest("x"), TurnControl(), _collect()[1])
    assert report.outcome is outcome
    assert str(code) in report.detail


async def test_a_command_is_stopped_when_the_turn_is_interrupted() -> None:
    runtime = CommandRuntime(["sh", "-c", "cat >/dev/null; echo started; sleep 60"])
    control = TurnControl()
    seen: list[str] = []

    def publish(payload: wire.LiveEventPayload) -> None:
        assert isinstance(payload, wire.OutputLine)
        seen.append(payload.line)
        control.interrupt.set()

    with trio.fail_after(20):
        report = await runtime.run_turn(TurnRequest("x"), control, publish)
    assert report.outcome is Outcome.INTERRUPTED
    assert seen == ["started"]


async def test_a_missing_command_is_a_failed_turn_not_a_crash() -> None:
    runtime = CommandRuntime(["/nonexistent/model-cli"])
    report = await runtime.run_turn(TurnRequest("x"), TurnControl(), _collect()[1])
    assert report.outcome is Outcome.FAILED
    assert "cannot start" in report.detail


async def test_the_harness_drives_a_command_runtime_end_to_end(short_tmp: Path) -> None:
    seen = short_tmp / "seen.txt"
    runtime = CommandRuntime(["sh", "-c", f"cat >> {seen}"])
    clock = FakeWallClock()
    with trio.fail_after(30):
        async with open_test_hive(short_tmp / "hive", agents=("alice",)) as hive:
            async with hive.operator() as operator:
                await operator.call(wire.Send(to="alice", body="via a shell"))
            state = short_tmp / "alice"
            async with open_test_harness(hive, "alice", state, runtime, clock) as (_, feed):
                await next_event(feed, "acked", count=1)
    assert "from: operator\n\nvia a shell" in seen.read_text()


# -- Claude's command line --------------------------------------------------------------------


def test_the_claude_command_line(tmp_path: Path) -> None:
    config = mcp_config(tmp_path / "mcp.sock", load_config_extras(None))
    argv = claude_argv(
        tmp_path / "claude",
        mcp=config,
        allowed_tools=("mcp__matrix",),
        system_prompt="be nice",
        settings_json="{}",
        resume="sess-1",
        model="sonnet",
    )
    assert argv[:8] == [
        str(tmp_path / "claude"),
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--mcp-config",
    ]
    hive = json.loads(argv[8])["mcpServers"]["hive"]
    assert hive["command"] == sys.executable
    # The relay to this harness's own MCP server: its tools use the harness's socket.
    assert hive["args"] == ["-m", "hyperhive", "agent", "mcp", "--connect", f"{tmp_path}/mcp.sock"]
    assert "env" not in hive
    assert argv[argv.index("--allowedTools") + 1] == "mcp__hive,mcp__matrix"
    assert "--strict-mcp-config" in argv
    assert argv[argv.index("--system-prompt-snapshot") + 1] == "off"
    assert argv[argv.index("--resume") + 1] == "sess-1"
    assert argv[argv.index("--model") + 1] == "sonnet"
    fresh = claude_argv(
        tmp_path / "claude",
        mcp=config,
        allowed_tools=(),
        system_prompt="",
        settings_json="{}",
        resume=None,
        model=None,
    )
    assert "--resume" not in fresh
    assert "--model" not in fresh
    # A resumed session keeps the model it last used unless claude is told the default.
    resumed_on_default = claude_argv(
        tmp_path / "claude",
        mcp=config,
        allowed_tools=(),
        system_prompt="",
        settings_json="{}",
        resume="sess-1",
        model=None,
    )
    assert resumed_on_default[resumed_on_default.index("--model") + 1] == "default"


def test_the_deployed_agent_toml_adds_servers_tools_model_and_instructions(
    tmp_path: Path,
) -> None:
    (tmp_path / "agent.toml").write_text(
        'model = "claude-opus-4-1"\n'
        'allowed_tools = ["WebFetch", "Bash(git log:*)"]\n'
        "[mcp_servers.matrix]\n"
        'command = "/bin/matrix-mcp"\n'
        'args = ["--x"]\n'
        'env = { A = "1" }\n'
        'allowed_tools = ["send_message", "*"]\n'
        "[mcp_servers.files]\n"
        'command = "files-mcp"\n'
    )
    (tmp_path / "CLAUDE.md").write_text("Always answer in haiku.\n")
    extra = load_config_extras(tmp_path)
    assert extra.allowed_tools == (
        "WebFetch", "Bash(git log:*)", "mcp__matrix__send_message", "mcp__matrix", "mcp__files",
    )  # fmt: skip
    assert extra.model == "claude-opus-4-1"
    assert extra.instructions == "Always answer in haiku."
    config = mcp_config(tmp_path / "mcp.sock", extra)["mcpServers"]
    assert set(config) == {"hive", "matrix", "files"}
    assert config["matrix"] == {
        "type": "stdio",
        "command": "/bin/matrix-mcp",
        "args": ["--x"],
        "env": {"A": "1"},
    }
    (tmp_path / "agent.toml").write_text('[mcp_servers.hive]\ncommand = "evil"\n')
    with pytest.raises(ConfigError, match=r"mcp_servers\.hive"):
        load_config_extras(tmp_path)
    (tmp_path / "agent.toml").write_text("[1,")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_extras(tmp_path)
    (tmp_path / "agent.toml").unlink()
    assert load_config_extras(tmp_path).servers == {}


def test_claudes_environment_is_quiet_and_uses_stored_credentials_only_as_a_fallback() -> None:
    env = claude_env({"PATH": "/bin", "CLAUDECODE": "1"}, {"CLAUDE_CODE_OAUTH_TOKEN": "tok"})
    assert "CLAUDECODE" not in env
    assert env["ENABLE_TOOL_SEARCH"] == "false"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CODE_OAUTH_TOKEN"] == "tok"
    own = claude_env({"ANTHROPIC_API_KEY": "key"}, {"CLAUDE_CODE_OAUTH_TOKEN": "tok"})
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in own


def test_the_bundled_claude_is_found_and_can_be_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = find_claude()
    assert found.is_file()
    assert os.access(found, os.X_OK)
    monkeypatch.setenv("HYPERHIVE_CLAUDE_BIN", str(tmp_path / "my-claude"))
    assert find_claude() == tmp_path / "my-claude"


# -- login ------------------------------------------------------------------------------------


def test_setup_token_output_is_parsed_and_stored_privately(tmp_path: Path) -> None:
    pasted = "Your OAuth token (valid for 1 year):\n\n  sk-ant-oat01-abcDEF_123\n\nStore it safely."
    token = login.parse_setup_token(pasted)
    assert token == "sk-ant-oat01-abcDEF_123"
    paths = AgentPaths(tmp_path)
    assert login.stored_credentials(paths) == {}
    login.save_credentials(paths, "oauth_token", token)
    assert stat.S_IMODE(paths.credentials.stat().st_mode) == 0o600
    assert login.stored_credentials(paths) == {"CLAUDE_CODE_OAUTH_TOKEN": token}
    login.save_credentials(paths, "api_key", "sk-ant-api03-xyz\n")
    assert login.stored_credentials(paths) == {"ANTHROPIC_API_KEY": "sk-ant-api03-xyz"}
    with pytest.raises(ConfigError, match="no token"):
        login.parse_setup_token("I could not log in")
    with pytest.raises(ConfigError, match="one word"):
        login.save_credentials(paths, "api_key", "two words")


async def test_the_login_probe(tmp_path: Path) -> None:
    claude = find_claude()
    assert (await login.probe(claude, {"ANTHROPIC_API_KEY": "k"})).method == "api_key"
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    with trio.fail_after(30):
        state = await login.probe(claude, env)
    assert not state.logged_in
    assert state.method == "none"


# -- prompts and settings ---------------------------------------------------------------------


def test_role_prompts_are_package_data_with_placeholders_filled(tmp_path: Path) -> None:
    agent = AgentSettings("alice", Role.AGENT, tmp_path, tmp_path, operator_pronouns="she/her")
    text = prompts.system_prompt(agent)
    assert text.startswith("# You are alice, an agent")
    assert "she/her" in text
    assert "{{" not in text
    manager = prompts.system_prompt(AgentSettings("boss", Role.MANAGER, tmp_path, tmp_path))
    assert "request_apply_commit" in manager
    assert "they/them" in manager
    assert "mcp__hive" in json.loads(prompts.claude_settings())["permissions"]["allow"]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HYPERHIVE_AGENT", "HYPERHIVE_SOCKET", "HYPERHIVE_AGENT_STATE"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="--name / HYPERHIVE_AGENT"):
        AgentSettings.resolve()
    monkeypatch.setenv("HYPERHIVE_AGENT", "alice")
    monkeypatch.setenv("HYPERHIVE_ROLE", "manager")
    monkeypatch.setenv("HYPERHIVE_SOCKET", "/run/hive.sock")
    monkeypatch.setenv("HYPERHIVE_AGENT_STATE", "/state")
    settings = AgentSettings.resolve()
    assert settings.role is Role.MANAGER
    assert settings.paths.rate_limited == settings.state_dir / "hyperhive-rate-limited"
    monkeypatch.setenv("HYPERHIVE_ROLE", "king")
    with pytest.raises(ConfigError, match="agent or manager"):
        AgentSettings.resolve()


async def test_the_operators_pronouns_reach_the_agents_prompt_and_match_whoami(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9: the prompt said they/them while whoami said the daemon's --operator-pronouns."""
    backend = FakeBackend()
    settings = ContainerSettings(ensure_manager=False, stop_grace=2.0, shutdown_grace=1.0)
    with trio.fail_after(30):
        async with open_test_hive(
            short_tmp / "hive",
            backend=backend,
            containers=settings,
            operator_pronouns="she/her",  # what `serve --operator-pronouns` sets
        ) as hive:
            await hive.handles.agents.spawn("alice")
            report = hive.paths.agent_state_dir("alice") / "probe-report.json"
            while not report.exists():
                await trio.sleep(0.01)
            env = json.loads(report.read_text())["env"]
            async with hive.agent("alice") as alice:
                me = await alice.call(wire.Whoami())
    assert env["HYPERHIVE_OPERATOR_PRONOUNS"] == "she/her"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    prompt = prompts.system_prompt(AgentSettings.resolve())
    assert me.pronouns == "she/her"
    assert "she/her" in prompt
    assert "they/them" not in prompt


async def test_the_credential_watch_sees_claudes_own_login_appear(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    paths = AgentPaths(tmp_path / "state")
    paths.root.mkdir()
    with trio.fail_after(20):
        async with login.open_credential_watch(paths, {"HOME": str(home)}) as watch:
            assert watch.uses_inotify  # armed now, before ~/.claude exists
            (home / "unrelated.txt").write_text("x")
            (home / ".claude").mkdir()  # the first `claude auth login` makes the directory...
            assert await watch.wait(10)
            ((home / ".claude") / ".credentials.json").write_text("{}")  # ...then the file
            assert await watch.wait(10)
            login.save_credentials(paths, "oauth_token", "sk-ant-oat01-x")
            assert await watch.wait(10)


async def test_a_credential_stored_before_the_first_wait_is_not_missed(tmp_path: Path) -> None:
    """The watch's inotify is made by its first wait, not at start-up: a credential that
    arrives in between wakes that wait at once instead of after the next probe timer."""
    paths = AgentPaths(tmp_path)
    watch = login.CredentialWatch(login.credential_files(paths, {"HOME": str(tmp_path)}))
    try:
        login.save_credentials(paths, "api_key", "sk-x")
        with trio.fail_after(5):
            assert await watch.wait(3600)
        assert not await watch.wait(0.2)  # and nothing more since
    finally:
        watch.close()


async def test_without_inotify_the_credential_watch_compares_stat_results(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    paths = AgentPaths(tmp_path)
    files = login.credential_files(paths, {"HOME": str(tmp_path)})
    watch = login.CredentialWatch(files, use_inotify=False)  # as where inotify cannot be had
    assert not watch.uses_inotify
    assert not await watch.wait(30)

    async def later() -> None:
        await trio.sleep(5)
        login.save_credentials(paths, "api_key", "sk-x")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        start = trio.current_time()
        assert await watch.wait(3600)
    assert 5 <= trio.current_time() - start <= 8


# -- the serve command line ------------------------------------------------------------------


def test_serve_options_come_from_flags_then_the_environment(tmp_path: Path) -> None:
    env = {
        "HYPERHIVE_AGENT": "alice",
        "HYPERHIVE_SOCKET": str(tmp_path / "hive.sock"),
        "HYPERHIVE_AGENT_STATE": str(tmp_path / "state"),
        "HYPERHIVE_CLAUDE_MODE": "cold",
        "HYPERHIVE_CLAUDE_MAX_TURNS": "7",
        "HYPERHIVE_RECV_WAIT": "5",
    }
    config = serve_cli.parse(["--claude-max-turns", "9", "--runtime", "command"], env)
    assert config.settings.name == "alice"
    assert config.settings.socket == tmp_path / "hive.sock"
    assert config.runtime == "command"
    assert config.options.recv_wait == 5.0
    assert config.claude_options.warm is False
    assert config.claude_options.max_turns == 9
    defaults = serve_cli.parse([], {k: v for k, v in env.items() if "CLAUDE" not in k})
    assert defaults.claude_options == ClaudeOptions()
    with pytest.raises(ConfigError, match="warm or cold"):
        serve_cli.parse(["--claude-mode", "tepid"], env)
    with pytest.raises(SystemExit):
        serve_cli.parse([], {**env, "HYPERHIVE_CLAUDE_MAX_AGE": "soon"})


@pytest.mark.parametrize(
    "entry",
    [
        [sys.executable, "-m", "hyperhive", "agent", "serve", "--help"],
        [
            sys.executable,
            "-c",
            "from hyperhive.cli import main; main()",
            "agent",
            "serve",
            "--help",
        ],
    ],
    ids=["python -m hyperhive", "hyperhive command"],
)
def test_both_roads_to_agent_serve_take_the_same_options(entry: list[str]) -> None:
    done = subprocess.run(entry, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for option in serve_cli.OPTIONS:
        assert option.flag in done.stdout
        assert option.env in done.stdout


def test_the_deployed_model_is_the_default_and_the_pages_choice_wins(tmp_path: Path) -> None:
    settings = AgentSettings(
        name="alice", role="agent", socket=tmp_path / "s", state_dir=tmp_path, config_dir=tmp_path
    )
    runtime = ClaudeRuntime(settings, tmp_path / "claude")  # never started: only its choice
    assert runtime._wanted_model(TurnRequest("hi")) is None
    (tmp_path / "agent.toml").write_text('model = "claude-opus-4-1"\n')
    assert runtime._wanted_model(TurnRequest("hi")) == "claude-opus-4-1"
    assert runtime._wanted_model(TurnRequest("hi", model="haiku")) == "haiku"
    (tmp_path / "agent.toml").write_text("model = 5\n")  # broken: the spawn says why
    assert runtime._wanted_model(TurnRequest("hi")) is None


def test_the_operators_anthropic_model_stands_when_nothing_else_chose_one(tmp_path: Path) -> None:
    settings = AgentSettings(
        name="alice", role="agent", socket=tmp_path / "s", state_dir=tmp_path, config_dir=tmp_path
    )
    env = {"ANTHROPIC_MODEL": "us.anthropic.claude-gateway-model"}
    runtime = ClaudeRuntime(settings, tmp_path / "claude", env=env)
    # A resumed process gets it as --model, not "default", which would override the variable.
    assert runtime._wanted_model(TurnRequest("hi")) == "us.anthropic.claude-gateway-model"
    (tmp_path / "agent.toml").write_text('model = "claude-opus-4-1"\n')
    assert runtime._wanted_model(TurnRequest("hi")) == "claude-opus-4-1"
    assert runtime._wanted_model(TurnRequest("hi", model="haiku")) == "haiku"
