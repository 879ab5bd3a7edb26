"""The operator token serve makes when agents share the host's network (`web.launch`)."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest

from hyperhive.containers.settings import ContainerSettings
from hyperhive.errors import ConfigError
from hyperhive.web.launch import generated_token, serve_children

if TYPE_CHECKING:
    from pathlib import Path


def test_the_token_is_made_once_0600_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dashboard-token"
    token = generated_token(path)
    assert len(token) >= 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert generated_token(path) == token  # a restarted daemon keeps the operator's login


def test_a_link_or_a_short_token_in_its_place_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("a-token-long-enough-to-pass\n")
    link = tmp_path / "dashboard-token"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="cannot read"):
        generated_token(link)
    link.unlink()
    link.write_text("short\n")
    with pytest.raises(ConfigError, match="shorter than 16"):
        generated_token(link)


def test_serve_makes_a_token_only_when_agents_share_the_network(tmp_path: Path) -> None:
    path = tmp_path / "dashboard-token"
    common = {
        "dashboard": "127.0.0.1:0",
        "token_file": None,
        "demo": False,
        "say": lambda text: None,
        "generated_token_file": path,
    }
    serve_children(ContainerSettings(), agents_share_network=False, **common)  # type: ignore[arg-type]
    assert not path.exists()
    serve_children(ContainerSettings(), agents_share_network=True, **common)  # type: ignore[arg-type]
    assert path.exists()
