"""Git as the manager runs it in its proposed repos, for tests of the approval flow.

`ManagerGit` is an ordinary git with a HOME of its own and none of the daemon's precautions
(hooks run, the repo's config is honoured): what the manager's model does with the Bash tool
in ``/agents/<name>/config``. Tests use it to commit a config change, and to plant traps the
daemon must not spring.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["ManagerGit"]


class ManagerGit:
    """Plain git with a HOME of its own, run synchronously (test set-up only)."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.git = shutil.which("git") or "git"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "manager",
            "GIT_AUTHOR_EMAIL": "manager@hive",
            "GIT_COMMITTER_NAME": "manager",
            "GIT_COMMITTER_EMAIL": "manager@hive",
        }

    def __call__(self, repo: Path, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [self.git, "-c", f"safe.directory={repo}", "-C", str(repo), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def init(self, repo: Path) -> None:
        """A new repository at `repo` on branch main."""
        repo.mkdir(parents=True, exist_ok=True)
        self(repo, "init", "--quiet", "--initial-branch=main")

    def commit(self, repo: Path, files: Mapping[str, str], message: str = "change") -> str:
        """Write `files` (relative paths), commit everything, return the new sha."""
        for name, text in files.items():
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self(repo, "add", "--all")
        self(repo, "commit", "--quiet", "--allow-empty", "-m", message)
        return self(repo, "rev-parse", "HEAD")
