"""Resolving secret references: values for the caller, names for everyone else."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import pytest

from hyperhive.config_repo.agent_toml import SecretRef, parse_agent_toml
from hyperhive.config_repo.secrets import MAX_SECRET, resolve_secrets
from hyperhive.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

VALUE = "s3cr3t-value-do-not-print"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    (path / "team").mkdir(parents=True)
    (path / "team" / "db").write_text(VALUE + "\n")
    return path


def _file(path: Path) -> SecretRef:
    return SecretRef("file", str(path))


def test_env_and_file_references_resolve(root: Path) -> None:
    refs = {"TOKEN": SecretRef("env", "HIVE_TOKEN"), "DB": _file(root / "team" / "db")}
    secrets = resolve_secrets(refs, environ={"HIVE_TOKEN": "tok"}, file_roots=[root])
    assert secrets.as_env() == {"TOKEN": "tok", "DB": VALUE}  # one trailing newline dropped
    assert secrets.names() == ["DB", "TOKEN"]
    assert len(secrets) == 2


def test_printing_or_logging_shows_names_only(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    secrets = resolve_secrets({"DB": _file(root / "team" / "db")}, environ={}, file_roots=[root])
    logging.getLogger("test").warning("resolved %s / %r / %s", secrets, secrets, [secrets])
    assert repr(secrets) == "Secrets(DB=<hidden>)"
    assert VALUE not in caplog.text
    assert "DB=<hidden>" in caplog.text


def _refused(refs: dict[str, SecretRef], roots: list[Path], match: str) -> str:
    with pytest.raises(ConfigError, match=match) as caught:
        resolve_secrets(refs, environ={"SET": VALUE}, file_roots=roots)
    assert VALUE not in str(caught.value)
    return str(caught.value)


def test_a_missing_variable_is_a_sentence(root: Path) -> None:
    _refused({"T": SecretRef("env", "UNSET")}, [root], "secret T: env:UNSET is not set")


def test_files_outside_the_roots_are_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text(VALUE)
    _refused({"T": _file(outside)}, [root], "outside the secret directories")
    _refused({"T": _file(outside)}, [], "none are configured")
    _refused({"T": _file(root)}, [root], "outside the secret directories")


def test_symlinks_below_the_root_are_never_followed(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text(VALUE)
    (root / "link").symlink_to(target)
    _refused({"T": _file(root / "link")}, [root], "symlink")
    (root / "dirlink").symlink_to(tmp_path)
    _refused({"T": _file(root / "dirlink" / "target")}, [root], "symlink")


def test_special_large_and_binary_files_are_refused(root: Path) -> None:
    os.mkfifo(root / "fifo")
    _refused({"T": _file(root / "fifo")}, [root], "not a regular file")
    (root / "big").write_bytes(b"x" * (MAX_SECRET + 1))
    _refused({"T": _file(root / "big")}, [root], "larger than 64 KiB")
    (root / "bin").write_bytes(b"\xff\xfe")
    _refused({"T": _file(root / "bin")}, [root], "not UTF-8")
    (root / "nul").write_bytes(b"a\0b")
    _refused({"T": _file(root / "nul")}, [root], "NUL")
    _refused({"T": _file(root / "absent")}, [root], "cannot open file:")


def test_a_config_never_holds_a_value_only_where_to_find_it() -> None:
    config = parse_agent_toml('[secrets]\nDB = "file:/run/credentials/db"\n')
    assert str(config.secrets["DB"]) == "file:/run/credentials/db"
    with pytest.raises(ConfigError, match=r"secrets\.DB: is not a secret reference") as caught:
        parse_agent_toml(f'[secrets]\nDB = "{VALUE}"\n')
    assert VALUE not in str(caught.value)
