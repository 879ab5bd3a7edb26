"""agent.toml: what parses, into what, and the one-line-per-problem errors for what does not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperhive.config_repo.agent_toml import (
    MAX,
    AgentConfig,
    Bind,
    Build,
    EgressRule,
    Limits,
    McpServer,
    Network,
    SecretRef,
    egress_text,
    parse_agent_toml,
    structure_agent_config,
    to_sandbox_settings,
)
from hyperhive.containers.sandbox import SandboxSettings
from hyperhive.errors import ConfigError

FULL = """
model = "claude-sonnet-4-5"
allowed_tools = ["Bash(git log:*)", "WebFetch", "mcp__notes__read"]

[network]
enabled = true
allow = ["api.github.com:443", "Mirror.Example.org:*", "10.0.0.0/8:5432-5440", "*:53",
         "192.168.1.7:22"]

[env]
LOG_LEVEL = "debug"
"WITH_QUOTES" = "a \\"b\\""

[secrets]
GITHUB_TOKEN = "env:HIVE_GITHUB_TOKEN"
DB_PASSWORD = "file:/run/credentials/hyperhive.service/db"

[mcp_servers.notes]
command = "/usr/bin/notes-mcp"
args = ["--dir", "/state/notes"]
env = { NOTES_FORMAT = "md" }
allowed_tools = ["read_*", "search"]

[mcp_servers.plain]
command = "plain-mcp"

[[binds]]
source = "/srv/datasets"
target = "/data"

[build]
commands = ["pip install --target /tools/py requests", "npm ci --prefix /tools/js"]
timeout = 900

[limits]
memory = "2G"
processes = 512
disk = 10737418240
"""


def test_a_full_config_parses_into_typed_settings() -> None:
    config = parse_agent_toml(FULL)
    assert config == AgentConfig(
        model="claude-sonnet-4-5",  # type: ignore[arg-type]
        network=Network(
            True,
            (
                EgressRule("api.github.com", 443, 443),
                EgressRule("mirror.example.org"),
                EgressRule("10.0.0.0/8", 5432, 5440),
                EgressRule("*", 53, 53),
                EgressRule("192.168.1.7", 22, 22),
            ),
        ),
        env={"LOG_LEVEL": "debug", "WITH_QUOTES": 'a "b"'},  # type: ignore[dict-item]
        secrets={  # type: ignore[dict-item]
            "GITHUB_TOKEN": SecretRef("env", "HIVE_GITHUB_TOKEN"),
            "DB_PASSWORD": SecretRef("file", "/run/credentials/hyperhive.service/db"),
        },
        mcp_servers={  # type: ignore[dict-item]
            "notes": McpServer(
                "/usr/bin/notes-mcp",  # type: ignore[arg-type]
                ("--dir", "/state/notes"),  # type: ignore[arg-type]
                {"NOTES_FORMAT": "md"},  # type: ignore[dict-item]
                ("read_*", "search"),  # type: ignore[arg-type]
            ),
            "plain": McpServer("plain-mcp"),  # type: ignore[arg-type]
        },
        allowed_tools=("Bash(git log:*)", "WebFetch", "mcp__notes__read"),  # type: ignore[arg-type]
        binds=(Bind("/srv/datasets", "/data"),),  # type: ignore[arg-type]
        build=Build(
            ("pip install --target /tools/py requests", "npm ci --prefix /tools/js"),  # type: ignore[arg-type]
            900,
        ),
        limits=Limits(memory=2 << 30, processes=512, disk=10 << 30),
    )
    assert [egress_text(rule) for rule in config.network.allow] == [
        "api.github.com:443", "mirror.example.org:*", "10.0.0.0/8:5432-5440", "*:53",
        "192.168.1.7:22",
    ]  # fmt: skip
    assert str(config.secrets["DB_PASSWORD"]) == "file:/run/credentials/hyperhive.service/db"


SANDBOX_CASES = [
    ("", {}),
    ('[network]\nallow = ["api.github.com:443", "10.0.0.0/8:*"]',
     {"egress": ["api.github.com:443", "10.0.0.0/8:*"]}),
    ('[[binds]]\nsource = "/srv/a"\ntarget = "/a"',
     {"binds": [{"source": "/srv/a", "target": "/a"}]}),
    ('[limits]\nmemory = "2G"\nprocesses = 64\ndisk = "10G"',
     {"memory_max": "2G", "pids_max": 64, "disk_quota": "10G"}),
]  # fmt: skip


@pytest.mark.parametrize(("text", "sandbox_json"), SANDBOX_CASES)
def test_the_sandbox_part_is_what_the_bwrap_backend_reads(
    text: str, sandbox_json: dict[str, object]
) -> None:
    # The same settings written as the operator's sandbox.json: what the backend enforces today.
    expected = SandboxSettings.from_json(sandbox_json)
    assert to_sandbox_settings(parse_agent_toml(text)) == expected


def test_an_empty_file_is_all_defaults() -> None:
    config = parse_agent_toml("")
    assert config == AgentConfig()
    assert config.network == Network(enabled=True, allow=())
    assert config.build.timeout == 600
    assert config.limits == Limits(None, None, None)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("model = 5", "model: expected a string, got an integer"),
        ('model = "a b"', "model: 'a b' is not a model name"),
        ("[network]\nenabled = 1", "network.enabled: expected true or false, got an integer"),
        ('[network]\nallow = ["a:1", "b:2", "c"]', "network.allow[2]: 'c' is not HOST:PORT"),
        ('[network]\nallow = ["x.com:70000"]', "network.allow[0]: ports '70000' must lie"),
        ('[network]\nallow = ["x.com:9-3"]', "must lie within 1-65535, low to high"),
        ('[network]\nallow = ["x.com:http"]', "'http' is not a port, a range A-B or *"),
        ('[network]\nallow = ["bad_host!:1"]', "'bad_host!' is neither an IPv4 address"),
        ('[network]\nallow = ["*.github.com:443"]', "wildcard hostnames cannot be enforced"),
        ('[network]\nallow = ["[2001:db8::1]:443"]', "neither an IPv4 address or network"),
        ('[network]\nallow = "x.com:1"', "network.allow: expected an array, got a string"),
        ('[network]\nenabled = false\nallow = ["x.com:1"]', "network.allow: set network.enabled"),
        ("network = 3", "network: expected a table, got an integer"),
        ("[env]\nA = 1", "env.A: expected a string, got an integer"),
        ('[env]\n"1A" = "x"', "env.1A: '1A' is not a variable name"),
        ('[env]\n"A B" = "x"', 'env."A B": \'A B\' is not a variable name'),
        ('[env]\nHOME = "/x"', "env.HOME: the hive sets this variable itself"),
        ('[env]\nHYPERHIVE_ROLE = "manager"', "env.HYPERHIVE_ROLE: the hive sets this variable"),
        ('[env]\nA = "a\\u0000b"', "env.A: must not contain a NUL character"),
        (f'[env]\nA = "{"x" * 4097}"', "env.A: longer than 4096 characters"),
        ('[secrets]\nT = "ghp_realtoken"', "secrets.T: is not a secret reference"),
        ('[secrets]\nT = "file:relative/x"', "secrets.T: 'relative/x' is not a clean absolute"),
        ('[secrets]\nT = "file:/a/../etc/shadow"', "is not a clean absolute path"),
        ('[secrets]\nT = "env:lower-case"', "secrets.T: is not a secret reference"),
        ('[env]\nT = "x"\n[secrets]\nT = "env:T"', "secrets.T: also set in env"),
        ("[mcp_servers.x]\nargs = []", "mcp_servers.x.command: required key is missing"),
        ('[mcp_servers.x]\ncommand = " "', "mcp_servers.x.command: must not be empty"),
        ('[mcp_servers.hive]\ncommand = "x"', "mcp_servers.hive: that name is the hive's own"),
        ('[mcp_servers.Bad]\ncommand = "x"', "mcp_servers.Bad: 'Bad' is not a server name"),
        ('[mcp_servers.x]\ncommand = "x"\nallowed_tools = ["a b"]',
         "mcp_servers.x.allowed_tools[0]: 'a b' is not a tool name"),
        ('[mcp_servers.x]\ncommand = "x"\nextra = 1', "mcp_servers.x: unknown key extra"),
        ('allowed_tools = ["Bash", "rm -rf"]', "allowed_tools[1]: 'rm -rf' is not a Claude tool"),
        ('[[binds]]\nsource = "/a"', "binds[0].target: required key is missing"),
        ('[[binds]]\nsource = "/a"\ntarget = "/state"', "binds[0].target: /state is the hive's"),
        ('[[binds]]\nsource = "/a"\ntarget = "/config/x"', "/config/x is the hive's own mount"),
        ('[[binds]]\nsource = "/a"\ntarget = "/tools"', "/tools is the hive's own mount"),
        ('[[binds]]\nsource = "/a"\ntarget = "/usr"', "/usr is the hive's own mount"),
        ('[[binds]]\nsource = "/a"\ntarget = "/run"', "/run is the hive's own mount"),
        ('[[binds]]\nsource = "/"\ntarget = "/x"', "binds[0].source: '/' is not a clean"),
        ('[[binds]]\nsource = "/a/"\ntarget = "/x"', "binds[0].source: '/a/' is not a clean"),
        ('[[binds]]\nsource = "/a"\ntarget = "/x"\n[[binds]]\nsource = "/b"\ntarget = "/x"',
         "binds[1].target: /x is bound twice"),
        ('[build]\ncommands = "make"', "build.commands: expected an array, got a string"),
        ("[build]\ntimeout = 5", "build.timeout: must be between 10 and 7200 seconds"),
        ('[limits]\nmemory = "lots"', "limits.memory: 'lots' is not a size"),
        ('[limits]\nmemory = "1K"', "limits.memory: must be between 64M and 1T"),
        ("[limits]\nprocesses = true", "limits.processes: expected an integer, got a boolean"),
        ("[limits]\nprocesses = 1", "limits.processes: must be between 16 and 65536 processes"),
        ("[limits]\ncpu = 2", "limits: unknown key cpu"),
        ("netwrok = {}", "agent.toml: unknown key netwrok"),
        ("[network", "agent.toml: not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_file_names_the_field(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_agent_toml(text)
    message = str(caught.value)
    assert error in message
    assert all(line.startswith("agent.toml: ") for line in message.splitlines())


def test_every_problem_is_reported_at_once() -> None:
    text = '[env]\nA = 1\nB = 2\n[network]\nallow = [1, "x"]\n'
    with pytest.raises(ConfigError) as caught:
        parse_agent_toml(text)
    message = str(caught.value)
    assert message.splitlines() == [
        "agent.toml: network.allow[0]: expected a host:port string, got an integer",
        "agent.toml: network.allow[1]: 'x' is not HOST:PORT (say api.anthropic.com:443)",
        "agent.toml: env.A: expected a string, got an integer",
        "agent.toml: env.B: expected a string, got an integer",
    ]


@pytest.mark.parametrize(
    ("section", "count"),
    [("env", MAX["env"]), ("secrets", MAX["secrets"]), ("mcp_servers", MAX["mcp_servers"])],
)
def test_tables_are_bounded(section: str, count: int) -> None:
    def entry(index: int) -> object:
        if section == "env":
            return "v"
        if section == "secrets":
            return f"env:S{index}"
        return {"command": "x"}

    names = [f"k{i}" if section == "mcp_servers" else f"K{i}" for i in range(count + 1)]
    structure_agent_config({section: {name: entry(i) for i, name in enumerate(names[:-1])}})
    with pytest.raises(ConfigError, match=rf"^agent.toml: {section}: at most {count} entries"):
        structure_agent_config({section: {name: entry(i) for i, name in enumerate(names)}})


def test_arrays_are_bounded() -> None:
    rules = [f"h{i}.example.com:443" for i in range(MAX["allow"] + 1)]
    with pytest.raises(ConfigError, match=r"network.allow: at most 64 entries \(found 65\)"):
        structure_agent_config({"network": {"allow": rules}})
    server = {"command": "x", "args": ["a"] * (MAX["mcp_args"] + 1)}
    with pytest.raises(ConfigError, match=r"mcp_servers\.s\.args: at most 64 entries"):
        structure_agent_config({"mcp_servers": {"s": server}})


def test_the_output_is_capped_at_a_readable_number_of_problems() -> None:
    env = {f"V{i}": i for i in range(100)}
    with pytest.raises(ConfigError) as caught:
        structure_agent_config({"env": env})
    lines = str(caught.value)
    assert len(lines.splitlines()) == MAX["problems"] + 1
    assert lines.splitlines()[-1] == "agent.toml: ... and 80 more problems"


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["env:X", "file:/a/b", "x.com:443", "2G", "/a", "*"]),
)  # fmt: skip
_keys = st.sampled_from(
    ["model", "network", "enabled", "allow", "env", "secrets", "mcp_servers", "command", "args",
     "allowed_tools", "binds", "source", "target", "build", "commands", "timeout", "limits",
     "memory", "processes", "disk", "X", "y", "hive"]
)  # fmt: skip
_tree = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)


@given(st.dictionaries(_keys, _tree, max_size=6))
def test_any_table_parses_or_fails_with_a_sentence(raw: dict[str, object]) -> None:
    message = ""
    try:
        config = structure_agent_config(raw)
    except ConfigError as exc:
        message = str(exc)
    else:
        assert isinstance(config, AgentConfig)
    assert all(line.startswith("agent.toml: ") for line in message.splitlines())
