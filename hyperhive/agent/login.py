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

Nothing here logs a credential.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Final

import attrs
import trio

from hyperhive.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from hyperhive.agent.settings import AgentPaths

__all__ = ["LoginState", "parse_setup_token", "probe", "save_credentials", "stored_credentials"]

_ENV_OF: Final = {"oauth_token": "CLAUDE_CODE_OAUTH_TOKEN", "api_key": "ANTHROPIC_API_KEY"}
_PROBE_TIMEOUT: Final = 30.0


@attrs.frozen
class LoginState:
    logged_in: bool
    method: str  # "api_key" | "oauth_token" | "claude.ai" | "none" | "unknown"
    detail: str = ""


def stored_credentials(paths: AgentPaths) -> dict[str, str]:
    """The environment variables for credentials entered through the login flow (or none)."""
    try:
        raw = json.loads(paths.credentials.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(raw, dict):
        return {}
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

    An API key or OAuth token in `env` counts as logged in (Claude does not check either
    before the first request); otherwise ``claude auth status --json`` decides.
    """
    if env.get("ANTHROPIC_API_KEY"):
        return LoginState(True, "api_key")
    if env.get("CLAUDE_CODE_OAUTH_TOKEN"):
        return LoginState(True, "oauth_token")
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
