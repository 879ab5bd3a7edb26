"""The hive's Claude credentials: kept by the daemon, handed to agents by reference.

``hyperhive login`` sends a credential (``NAME=VALUE`` variables: an API key, a ``claude
setup-token`` token, or a gateway's ``ANTHROPIC_BASE_URL`` with what Bedrock, Vertex or a proxy
needs) over the admin socket. It is stored once, under ``<state>/credentials/`` (0700; each
file 0600, the daemon's own, never bound into a sandbox):

- ``hive.json``: the hive's credential, for every agent without one of its own;
- ``<ref>.json``: a credential for named agents, and ``agents.json`` mapping each such agent to
  its ``<ref>`` (the reference; many agents may share one).

An agent is given the value it resolves to as ``hyperhive-credentials.json`` in its own state
directory (`agent_files.replace_private`: 0600, owned like the directory, renamed into place
so a link the agent planted is replaced, not written through): when it is logged in, and again
before each start. Its harness watches that file (docs/turn-loop.md, "Login"), so an agent
waiting for a login starts its pending work the moment the file lands, without a restart. A
file the agent wrote itself (``hyperhive agent login``) is left alone unless the operator names
that agent.

Logging an agent out (``hyperhive logout NAME``, the agent page's "log out":
`CredentialStore.revoke` and `remove_agent_credentials`) removes both ends: its grant becomes
"none" (so neither its own nor the hive's credential is given to it again, until the operator
logs it in by name) and the credential files in its state directory are unlinked without
following a symlink (``hyperhive-credentials.json``, and Claude's own
``home/.claude/.credentials.json`` of a browser login). ``hyperhive logout`` without a name
undoes ``login`` without one: `CredentialStore.forget_hive` drops ``hive.json``, and
`remove_daemon_credential` takes back the copy each agent using it was given (a file the agent
wrote itself stays, as ``login`` leaves it).

The values never reach a log, argv, an event, a config repo or another agent: `Credential`
shows names only, errors name variables, never values, and only the agent's own state
directory ever holds a copy. Blocking file work: run it through the daemon's offload.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final

from hyperhive import wire
from hyperhive.core.agent_files import UnsafeFile, read_capped, remove_file, replace_private
from hyperhive.errors import BadRequest, ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

__all__ = [
    "AGENT_FILE",
    "CLAUDE_FILE",
    "KINDS",
    "Credential",
    "CredentialStore",
    "parse_variables",
    "remove_agent_credentials",
    "remove_daemon_credential",
    "variables_from_text",
]

AGENT_FILE: Final = "hyperhive-credentials.json"  # in the agent's state dir (AgentPaths)
# Claude's own, from a browser login: under the agent's HOME (its state dir's home/).
CLAUDE_FILE: Final = PurePosixPath("home/.claude/.credentials.json")
# An agent's grant when the operator logged it out: no credential, not even the hive's.
_NONE: Final = "none"
_MAX_VALUE: Final = 8192
_FROM_DAEMON: Final = "daemon"


class Credential:
    """A credential's variables; printed, it shows their names only."""

    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._env))

    def as_env(self) -> dict[str, str]:
        """The values, for the agent's credentials file and nothing else."""
        return dict(self._env)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credential) and other._env == self._env

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Credential({', '.join(f'{name}=<hidden>' for name in self.names())})"

    __str__ = __repr__


def parse_variables(lines: Iterable[str]) -> Credential:
    """A credential from ``NAME=VALUE`` lines (what ``login`` carries).

    Raises:
        BadRequest: a line that is not ``NAME=VALUE``, a name a credential may not set, a
            value with a newline or NUL or too long, a name given twice, or no variable that
            authenticates; the text names the variable, never a value.
    """
    env: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if not sep or not name:
            raise BadRequest("each credential variable is NAME=VALUE")
        if not wire.CREDENTIAL_VARIABLE.fullmatch(name):
            raise BadRequest(
                f"{name[:64]!r} is not a variable a credential sets (ANTHROPIC_*, CLAUDE_CODE_*, "
                "AWS_*, CLOUD_ML_*, VERTEX_REGION_*, GOOGLE_CLOUD_*, HTTP(S)_PROXY, NO_PROXY)"
            )
        if not value or len(value) > _MAX_VALUE or any(c in value for c in "\n\r\0"):
            raise BadRequest(f"{name}: the value is empty, too long or holds a line break")
        if name in env:
            raise BadRequest(f"{name} is given twice")
        env[name] = value
    if not any(name in env for name in wire.AUTH_VARIABLES):
        some = ", ".join(wire.AUTH_VARIABLES)
        raise BadRequest(f"the credential authenticates nothing: give one of {some}")
    return Credential(env)


KINDS: Final = ("auto", "api-key", "token", "gateway")
_ASSIGNMENT: Final = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")


def variables_from_text(text: str, kind: str = "auto") -> list[str]:
    """What the operator typed or piped into ``hyperhive login``, as ``NAME=VALUE`` lines.

    ``api-key``: one word, the key. ``token``: what ``claude setup-token`` printed (pasted
    whole, or the token alone). ``gateway``: ``NAME=VALUE`` lines, an env file (``export``,
    quotes, blank and ``#`` lines allowed): ``ANTHROPIC_BASE_URL`` and what Bedrock, Vertex or
    the proxy needs. ``auto``: lines of ``NAME=VALUE`` are a gateway, an ``sk-ant-oat`` word
    a token, anything else an API key.

    Raises:
        ConfigError: nothing usable; the text says what was expected (never the input).
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if kind == "auto":
        if lines and all(_ASSIGNMENT.fullmatch(line) for line in lines):
            kind = "gateway"
        else:
            kind = "token" if "sk-ant-oat" in text else "api-key"
    if kind == "gateway":
        found = []
        for line in lines:
            match = _ASSIGNMENT.fullmatch(line)
            if match is None:
                raise ConfigError("a gateway is given as NAME=VALUE lines (an env file)")
            name, value = match.groups()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found.append(f"{name}={value}")
        return found
    if kind == "token":
        from hyperhive.agent.login import parse_setup_token

        return [f"CLAUDE_CODE_OAUTH_TOKEN={parse_setup_token(text)}"]
    if kind != "api-key":
        raise ConfigError(f"unknown credential kind {kind!r}; choose one of {', '.join(KINDS)}")
    words = text.split()
    if len(words) != 1:
        raise ConfigError("an API key is one word; nothing else on the line")
    return [f"ANTHROPIC_API_KEY={words[0]}"]


class CredentialStore:
    """The files under ``<state>/credentials``; every method blocks (offload it)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def store(self, credential: Credential, agents: Iterable[str] = ()) -> None:
        """Keep `credential` as the hive's (no `agents`) or as the named agents' own."""
        self._ensure()
        names = sorted(set(agents))
        if not names:
            self._write("hive.json", {"env": credential.as_env()})
            return
        ref = f"c-{secrets.token_hex(6)}"
        self._write(f"{ref}.json", {"env": credential.as_env()})
        grants = self._grants()
        grants.update(dict.fromkeys(names, ref))
        self._write("agents.json", grants)
        self._drop_unreferenced(set(grants.values()))

    def has_own(self, name: str) -> bool:
        """Whether `name` was given a credential of its own (not the hive's), or logged out."""
        return name in self._grants()

    def revoke(self, name: str) -> None:
        """Log `name` out: no credential of its own and not the hive's, until it is named in
        a `store` again."""
        self._ensure()
        grants = self._grants()
        grants[name] = _NONE
        self._write("agents.json", grants)
        self._drop_unreferenced(set(grants.values()))

    def forget_hive(self) -> bool:
        """Drop the hive's credential; whether there was one."""
        try:
            (self._root / "hive.json").unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ConfigError(f"cannot remove the hive's credential: {exc.strerror}") from exc
        return True

    def resolve(self, name: str) -> Credential | None:
        """The credential `name` uses: its own, else the hive's, else None (and None for an
        agent logged out)."""
        ref = self._grants().get(name)
        if ref == _NONE:
            return None
        found = self._read(f"{ref}.json") if ref else None
        if found is None:
            found = self._read("hive.json")
        env = found.get("env") if isinstance(found, dict) else None
        if not isinstance(env, dict) or not env:
            return None
        return Credential({str(k): str(v) for k, v in env.items()})

    def forget(self, name: str) -> None:
        """Drop `name`'s own credential reference (it is destroyed)."""
        grants = self._grants()
        if grants.pop(name, None) is not None:
            self._write("agents.json", grants)
            self._drop_unreferenced(set(grants.values()))

    def provide(self, name: str, state_dir: Path, *, overwrite: bool = False) -> bool:
        """Give agent `name` the credential it resolves to, in its state directory; True if
        a file was written. A credentials file the agent wrote itself stays unless
        `overwrite` (the operator named this agent).

        Raises:
            UnsafeFile: the state directory is not a plain directory of the agent's.
        """
        credential = self.resolve(name)
        if credential is None or not state_dir.is_dir():
            return False
        if not overwrite and _agents_own(state_dir):
            return False
        body = {"kind": "env", "env": credential.as_env(), "from": _FROM_DAEMON}
        replace_private(state_dir, AGENT_FILE, json.dumps(body).encode(), shown_as="/state")
        return True

    # -- files --------------------------------------------------------------------------------

    def _ensure(self) -> None:
        try:
            self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self._root, 0o700)
        except OSError as exc:
            raise ConfigError(f"cannot keep credentials in {self._root}: {exc.strerror}") from exc

    def _grants(self) -> dict[str, str]:
        found = self._read("agents.json")
        if not isinstance(found, dict):
            return {}
        return {str(k): str(v) for k, v in found.items() if isinstance(v, str)}

    def _read(self, name: str) -> object:
        try:
            return json.loads((self._root / name).read_bytes())
        except (OSError, ValueError):
            return None

    def _write(self, name: str, value: object) -> None:
        path = self._root / name
        scratch = path.with_name(f".{name}.new")
        try:
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as file:
                json.dump(value, file)
            os.replace(scratch, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                scratch.unlink()
            raise ConfigError(f"cannot store a credential in {self._root}: {exc.strerror}") from exc

    def _drop_unreferenced(self, refs: set[str]) -> None:
        for path in self._root.glob("c-*.json"):
            if path.stem not in refs:
                with contextlib.suppress(OSError):
                    path.unlink()


def remove_agent_credentials(state_dir: Path) -> list[str]:
    """Unlink the credential files in an agent's state directory, never through a symlink (a
    link planted there is removed itself); the ones removed, as the agent sees them.

    Raises:
        UnsafeFile: a path on the way is a symlink or not a directory, or a directory sits
            where a file should.
    """
    removed = []
    for relative in (PurePosixPath(AGENT_FILE), CLAUDE_FILE):
        if remove_file(state_dir, relative, shown_as="/state"):
            removed.append(f"/state/{relative}")
    return removed


def remove_daemon_credential(state_dir: Path) -> list[str]:
    """Unlink the agent's credentials file if the daemon wrote it (never through a symlink);
    ``["/state/hyperhive-credentials.json"]`` if it did, else ``[]``. A file the agent wrote
    itself, and Claude's own from a browser login, stay.

    Raises:
        UnsafeFile: a path on the way is a symlink or not a directory.
    """
    if not _from_daemon(state_dir):
        return []
    relative = PurePosixPath(AGENT_FILE)
    return [f"/state/{relative}"] if remove_file(state_dir, relative, shown_as="/state") else []


def _from_daemon(state_dir: Path) -> bool:
    """Whether the agent's credentials file is a plain file the daemon wrote."""
    return _written_by(state_dir) == _FROM_DAEMON


def _agents_own(state_dir: Path) -> bool:
    """Whether the agent's credentials file exists and is not one the daemon wrote."""
    return _written_by(state_dir) not in (None, _FROM_DAEMON)


def _written_by(state_dir: Path) -> str | None:
    """Who wrote the agent's credentials file: ``"daemon"``, ``""`` (the agent, or nobody
    says), or None when there is no file worth keeping (absent, a link, too big, not JSON)."""
    try:
        raw = read_capped(state_dir, PurePosixPath(AGENT_FILE), 65536)
    except UnsafeFile:
        return None  # not a plain file: replacing it is what the rename does
    if raw is None:
        return None
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    origin = found.get("from") if isinstance(found, dict) else None
    return origin if isinstance(origin, str) else ""
