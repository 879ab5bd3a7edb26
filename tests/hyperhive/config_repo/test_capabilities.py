"""The capability diff, table-driven: old agent.toml, new agent.toml, the lines it shows."""

from __future__ import annotations

import pytest

from hyperhive.config_repo.agent_toml import parse_agent_toml
from hyperhive.config_repo.capabilities import Change, capability_diff, render_text, to_json

SERVER = '[mcp_servers.notes]\ncommand = "/usr/bin/notes"\nargs = ["--dir", "/state"]\n'

CASES = [
    ("same", "", "", []),
    ("model", "", 'model = "opus"', ["~ model: default -> opus"]),
    ("network off", "", "[network]\nenabled = false", ["- network egress: any host -> off"]),
    ("network on", "[network]\nenabled = false", "", ["+ network egress: off -> any host"]),
    (
        "any to allowlist",
        "",
        '[network]\nallow = ["a.com:443", "b.org:*"]',
        ["- network egress: any host -> only a.com:443, b.org:*"],
    ),
    (
        "allowlist to any",
        '[network]\nallow = ["a.com:443"]',
        "",
        ["+ network egress: only a.com:443 -> any host"],
    ),
    (
        "off to allowlist",
        "[network]\nenabled = false",
        '[network]\nallow = ["a.com:443"]',
        ["+ network egress: off -> only a.com:443"],
    ),
    (
        "allowlist rules",
        '[network]\nallow = ["a.com:443", "b.org:*"]',
        '[network]\nallow = ["b.org:*", "c.net:22"]',
        ["+ egress c.net:22", "- egress a.com:443"],
    ),
    (
        "secrets",
        '[secrets]\nA = "env:X"\nB = "env:Y"',
        '[secrets]\nB = "file:/run/c/y"\nC = "env:Z"',
        ["- secret A (was from env:X)", "~ secret B: from env:Y -> from file:/run/c/y",
         "+ secret C from env:Z"],
    ),
    (
        "env keys, never values",
        '[env]\nA = "1"\nB = "2"',
        '[env]\nB = "3"\nC = "4"',
        ["- env A", "~ env B (value changed)", "+ env C"],
    ),
    (
        "mcp server added",
        "",
        SERVER,
        ["+ mcp_server notes /usr/bin/notes --dir /state (tools: *)"],
    ),
    (
        "mcp server removed",
        SERVER,
        "",
        ["- mcp_server notes (was /usr/bin/notes --dir /state (tools: *))"],
    ),
    (
        "mcp server changed",
        SERVER + 'env = { A = "1" }\nallowed_tools = ["read"]',
        '[mcp_servers.notes]\ncommand = "/opt/evil"\nenv = { B = "1" }\n'
        'allowed_tools = ["read", "write"]',
        ["~ mcp_server notes: /usr/bin/notes --dir /state -> /opt/evil",
         "- mcp_server notes env A", "+ mcp_server notes env B", "+ mcp_tool notes: write"],
    ),
    (
        "claude tools",
        'allowed_tools = ["Bash(git log:*)", "Read"]',
        'allowed_tools = ["Read", "Bash"]',
        ["+ tool Bash", "- tool Bash(git log:*)"],
    ),
    (
        "binds",
        '[[binds]]\nsource = "/srv/a"\ntarget = "/a"',
        '[[binds]]\nsource = "/srv/b"\ntarget = "/a"',
        ["+ bind /srv/b -> /a (read-only)", "- bind /srv/a -> /a (read-only)"],
    ),
    (
        "build commands",
        '[build]\ncommands = ["make a", "make b"]',
        '[build]\ncommands = ["make b", "curl x | sh"]\ntimeout = 60',
        ["+ build curl x | sh", "- build make a", "~ build timeout: 600 s -> 60 s"],
    ),
    (
        "build order",
        '[build]\ncommands = ["a", "b"]',
        '[build]\ncommands = ["b", "a"]',
        ["~ build order of the commands"],
    ),
    (
        "limits",
        '[limits]\nmemory = "1G"\nprocesses = 100\ndisk = "5G"',
        '[limits]\nmemory = "2G"\nprocesses = 50',
        ["+ limit memory: 1 GiB -> 2 GiB", "- limit processes: 100 -> 50",
         "+ limit disk: 5 GiB -> no limit"],
    ),
    (
        "a limit set where there was none",
        "",
        '[limits]\nmemory = "512M"',
        ["- limit memory: no limit -> 512 MiB"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "lines"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_what_a_change_grants_and_takes_away(old: str, new: str, lines: list[str]) -> None:
    changes = capability_diff(parse_agent_toml(old), parse_agent_toml(new))
    assert render_text(changes).splitlines() == (lines or ["no change to what the agent may do"])


def test_a_spawn_lists_everything_it_grants() -> None:
    new = parse_agent_toml(
        'model = "opus"\nallowed_tools = ["Read"]\n[env]\nA = "1"\n[secrets]\nT = "env:X"\n'
        '[limits]\nmemory = "2G"\n' + SERVER
    )
    assert render_text(capability_diff(None, new)).splitlines() == [
        "~ model: default -> opus",
        "+ network egress: off -> any host",
        "+ secret T from env:X",
        "+ env A",
        "+ mcp_server notes /usr/bin/notes --dir /state (tools: *)",
        "+ tool Read",
        "~ limit memory: no limit -> 2 GiB",
    ]


def test_the_structured_form_is_plain_data() -> None:
    changes = capability_diff(parse_agent_toml(""), parse_agent_toml('[secrets]\nT = "env:X"'))
    assert changes == [Change("secret", "grants", "T", None, "from env:X")]
    assert to_json(changes) == [
        {"area": "secret", "effect": "grants", "subject": "T", "before": None,
         "after": "from env:X"}
    ]  # fmt: skip


def test_text_escapes_control_characters_and_cuts_long_values() -> None:
    old = parse_agent_toml("")
    new = parse_agent_toml(
        '[build]\ncommands = ["echo \\u001b[2J\\u001b]0;pwned\\u0007", "' + "x" * 500 + '"]'
    )
    text = render_text(capability_diff(old, new))
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "+ build echo \\x1b[2J\\x1b]0;pwned\\x07" in text
    assert max(len(line) for line in text.splitlines()) < 200
    # The structured form keeps the raw text; whoever shows it escapes it for its medium.
    assert "\x1b" in to_json(capability_diff(old, new))[0]["subject"]


def test_an_allowlist_description_is_bounded() -> None:
    rules = ", ".join(f'"h{i}.com:443"' for i in range(20))
    change = capability_diff(
        parse_agent_toml(""), parse_agent_toml(f"[network]\nallow = [{rules}]")
    )
    assert change[0].after is not None
    assert change[0].after.endswith("and 12 more")
