"""Claude's login state: probe it, and store credentials the login flow collects.

The harness never runs a turn without credentials: it probes first, and while there are none
it writes the ``hyperhive-needs-login`` sentinel in the state directory (the host turns that
into a login prompt on the agent's page) and leaves its inbox untouched.

Credentials, in the order Claude itself prefers them:

1. ``ANTHROPIC_API_KEY`` or ``CLAUDE_CODE_OAUTH_TOKEN`` in the harness's environment;
2. a token or key entered through the login flow (`save_credentials`), kept in
   ``hyperhive-credentials.json`` (mode 0600) in the state directory and passed to each turn
   as the same environment variables — a per-agent token never shares a refresh token with
   another container (research note, §2.8);
3. whatever ``claude auth status`` reports under ``$HOME/.claude`` (a browser login).

While logged out the harness does not poll ``claude auth status`` on a timer: it waits on the
files credentials land in (`open_credential_watch`: inotify on their directories, a cheap
``stat`` poll where inotify is unavailable) and probes again the moment one changes, with a
slow backstop probe that backs off to half an hour.

Nothing here logs a credential.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from hyperhive.errors import ConfigError
from hyperhive.value import value
from hyperhive.wire.harness import AUTH_VARIABLES, CREDENTIAL_VARIABLE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from hyperhive.agent.settings import AgentPaths

__all__ = [
    "CredentialWatch",
    "LoginState",
    "credential_files",
    "open_credential_watch",
    "parse_setup_token",
    "probe",
    "save_credentials",
    "stored_credentials",
]

_ENV_OF: Final = {"oauth_token": "CLAUDE_CODE_OAUTH_TOKEN", "api_key": "ANTHROPIC_API_KEY"}
_PROBE_TIMEOUT: Final = 30.0
_STAT_POLL: Final = 2.0  # only where inotify is unavailable: a few stat calls, no process


@value
class LoginState:
    logged_in: bool
    method: str  # "api_key" | "oauth_token" | "claude.ai" | "none" | "unknown"
    detail: str = ""


def stored_credentials(paths: AgentPaths) -> dict[str, str]:
    """The environment variables for credentials entered through the login flow, or handed
    to the agent by the daemon (``"kind": "env"``: ``hyperhive login``), or none."""
    try:
        raw = json.loads(paths.credentials.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    if not isinstance(raw, dict):
        return {}
    if raw.get("kind") == "env":
        env = raw.get("env")
        if not isinstance(env, dict):
            return {}
        return {
            name: value
            for name, value in env.items()
            if isinstance(value, str) and value and CREDENTIAL_VARIABLE.fullmatch(name)
        }
    kind, value = raw.get("kind"), raw.get("value")
    if kind not in _ENV_OF or not isinstance(value, str) or not value:
        return {}
    return {_ENV_OF[kind]: value}


def parse_setup_token(text: str) -> str:
    """The token in what `claude setup-token` printed (pasted whole or just the token).

    Raises:
        ConfigError: no token-looking word in the text.
    """
    words = [w.strip("`'\".,") for w in text.split()]
    tokens = [w for w in words if w.startswith("sk-ant-")]
    if tokens:
        return tokens[-1]
    if len(words) == 1 and len(words[0]) >= 20:
        return words[0]
    raise ConfigError("no token found: paste the token `claude setup-token` printed")


def save_credentials(paths: AgentPaths, kind: str, value: str) -> None:
    """Store an OAuth token (``oauth_token``) or API key (``api_key``) for later turns.

    Raises:
        ConfigError: unknown kind, an empty value, or the file cannot be written.
    """
    if kind not in _ENV_OF:
        raise ConfigError(f"credential kind must be oauth_token or api_key, not {kind!r}")
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise ConfigError("a credential is one word with no spaces")
    tmp = paths.credentials.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"kind": kind, "value": value}, f)
        os.replace(tmp, paths.credentials)
    except OSError as exc:
        raise ConfigError(f"cannot store credentials in {paths.root}: {exc.strerror}") from exc


async def probe(claude: Path, env: Mapping[str, str]) -> LoginState:
    """Whether a turn would have credentials, without spending a model call.

    An API key, OAuth token, gateway auth token or a cloud provider switched on in `env`
    counts as logged in (Claude does not check them before the first request); otherwise
    ``claude auth status --json`` decides.
    """
    for variable, method in AUTH_VARIABLES.items():
        if env.get(variable):
            return LoginState(True, method)
    try:
        with trio.fail_after(_PROBE_TIMEOUT):
            done = await trio.run_process(
                [str(claude), "auth", "status", "--json"],
                env=dict(env),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    except (OSError, trio.TooSlowError) as exc:
        return LoginState(False, "unknown", f"claude auth status failed: {exc}")
    try:
        status = json.loads(done.stdout or b"{}")
    except json.JSONDecodeError:
        status = {}
    logged_in = bool(status.get("loggedIn")) and done.returncode == 0
    method = str(status.get("authMethod") or ("unknown" if logged_in else "none"))
    return LoginState(logged_in, method, "" if logged_in else "claude has no credentials")


def credential_files(paths: AgentPaths, env: Mapping[str, str]) -> tuple[Path, ...]:
    """Where credentials appear: the login flow's file, Claude's own, and its config file."""
    home = Path(env.get("HOME") or "~").expanduser()
    config_dir = (
        Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else home / ".claude"
    )
    return (paths.credentials, config_dir / ".credentials.json", home / ".claude.json")


class CredentialWatch:
    """Wakes a waiter when one of `files` is created, replaced, written or removed.

    Watches each file's directory with inotify, or the nearest existing ancestor when the
    directory does not exist yet (``~/.claude`` appears on the first login), and re-arms as
    directories appear. Without inotify (not Linux, or out of watches) it compares ``stat``
    results every couple of seconds instead.

    The inotify instance is made by the first `wait` (the harness waits only while logged out),
    not at start-up: loading it costs a library lookup the harness need not pay to be serving
    (docs/performance.md). A change between start-up and that first wait is caught by the
    ``stat`` fingerprint taken at start.
    """

    _MASK: Final = (
        0x100 | 0x200 | 0x08 | 0x40 | 0x80 | 0x04
    )  # CREATE DELETE CLOSE_WRITE MOVED ATTRIB

    def __init__(self, files: tuple[Path, ...], *, use_inotify: bool = True) -> None:
        self.files = files
        self._inotify: Any = None  # inotify_simple.INotify, which ships no types
        self._opened = not use_inotify
        self._watched: dict[int, Path] = {}
        self._at_start = self._fingerprint()

    def _open(self) -> bool:
        """Make the inotify instance (once); whether the files changed since start-up."""
        if self._opened:
            return False
        self._opened = True
        try:
            from inotify_simple import INotify

            self._inotify = INotify(nonblocking=True)
        except (ImportError, OSError):
            self._inotify = None
        self._arm()
        return self._fingerprint() != self._at_start

    @property
    def uses_inotify(self) -> bool:
        self._open()
        return self._inotify is not None

    def _arm(self) -> None:
        if self._inotify is None:
            return
        for path in self.files:
            target = path.parent
            while not target.is_dir() and target != target.parent:
                target = target.parent
            if target in self._watched.values():
                continue
            try:
                wd = self._inotify.add_watch(target, self._MASK)
            except OSError:
                continue
            self._watched[wd] = target

    def _fingerprint(self) -> tuple[tuple[int, int, int] | None, ...]:
        def one(path: Path) -> tuple[int, int, int] | None:
            try:
                st = os.stat(path)
            except OSError:
                return None
            return (st.st_ino, st.st_size, st.st_mtime_ns)

        return tuple(one(path) for path in self.files)

    async def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for a change; True if one came."""
        if self._open():
            return True
        with trio.move_on_after(seconds):
            if self._inotify is None:
                before = self._fingerprint()
                # Polling is the point here: nothing else can tell us a file changed.
                while self._fingerprint() == before:  # noqa: ASYNC110
                    await trio.sleep(_STAT_POLL)
                return True
            fd = self._inotify.fileno()
            while True:
                await trio.lowlevel.wait_readable(fd)
                events = self._inotify.read(timeout=0)
                self._arm()  # a directory on the way may have appeared
                if any(self._relevant(event) for event in events):
                    return True
        return False

    def _relevant(self, event: object) -> bool:
        name = getattr(event, "name", "")
        base = self._watched.get(getattr(event, "wd", -1))
        if base is None or not name:
            return False
        changed = base / name
        return any(changed == f or changed in f.parents for f in self.files)

    def close(self) -> None:
        if self._inotify is not None:
            with contextlib.suppress(OSError):
                self._inotify.close()


@contextlib.asynccontextmanager
async def open_credential_watch(
    paths: AgentPaths, env: Mapping[str, str]
) -> AsyncIterator[CredentialWatch]:
    """A `CredentialWatch` on `credential_files`; closed on exit."""
    watch = CredentialWatch(credential_files(paths, env))
    try:
        yield watch
    finally:
        watch.close()
