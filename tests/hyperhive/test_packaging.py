"""What the package ships: every package-data glob in pyproject.toml names files that exist."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_data_glob_matches_a_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]
    for package, patterns in globs.items():
        if package == "*":
            continue
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}: {pattern} matches nothing"


def test_docs_link_nothing_outside_the_repository() -> None:
    for page in (ROOT / "docs").glob("*.md"):
        text = page.read_text()
        assert "../shared" not in text, page.name
        assert "/work/" not in text, page.name
