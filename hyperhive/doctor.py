"""`hyperhive doctor`: can this host run a hive, and what to fix where it cannot.

Each check is a plain function of `Probes`, the host lookups it may make (the PATH it searches,
where /proc/sys is, the descriptor limit, the environment, ...), and returns one `Finding`:
``ok``, ``warn`` (the daemon has a fallback, named), ``fail`` (something essential is
missing: `doctor` exits 1) or ``skip`` (does not apply here). Tests build `Probes` with a part
taken away; `Probes.of_this_host` is the real machine.

The sandbox checks reuse the backend's own probes (`bwrap_works`, `seccomp_problem`,
`user_network_problem`, `find_delegated_cgroup`), so `doctor` and `serve` cannot disagree.
Login state is read from the agents' state directories the way the daemon reads their files
(`agent_files`: no symlink followed, size-capped); a credential's value is never printed.
The API check sends one minimal request (``max_tokens: 1``) to ``ANTHROPIC_BASE_URL`` (default
Anthropic's API).

Blocking throughout (subprocesses, one HTTP request): run it before any event loop.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from hyperhive.config import SOCKET_PATH_MAX, StatePaths
from hyperhive.containers import network
from hyperhive.containers.bwrap import SYSTEM_BIN, bwrap_works
from hyperhive.containers.limits import find_delegated_cgroup
from hyperhive.containers.seccomp import seccomp_problem
from hyperhive.core.agent_files import UnsafeFile, is_regular_file, read_capped

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

__all__ = [
    "CHECKS",
    "DEFAULT_MODEL",
    "Finding",
    "Probes",
    "exit_status",
    "run_checks",
    "to_json",
]

Status = Literal["ok", "warn", "fail", "skip"]
DEFAULT_MODEL: Final = "claude-haiku-4-5"
DEFAULT_BASE_URL: Final = "https://api.anthropic.com"
# A daemon raises its soft descriptor limit to the hard one; below these the hard one is short.
MIN_OPEN_FILES: Final = 1024
GOOD_OPEN_FILES: Final = 65536
_DAEMON_FILES: Final = 256  # its stores, listeners, dashboard, spare
_FILES_PER_AGENT: Final = 80  # 64 connections (docs/limits.md), its log, process pipes
_ENOUGH_AGENTS: Final = 50
_CREDENTIALS: Final = PurePosixPath("hyperhive-credentials.json")
_NEEDS_LOGIN: Final = PurePosixPath("hyperhive-needs-login")
_CLAUDE_OWN: Final = PurePosixPath("home/.claude/.credentials.json")
_CLAUDE_CODE_SYSTEM: Final = "You are Claude Code, Anthropic's official CLI for Claude."
_MAX_SHOWN: Final = 300


@attrs.frozen
class Finding:
    """One check's result: what was found, and what to do when it is not ``ok``."""

    check: str
    status: Status
    summary: str
    fix: str = ""


def _getrlimit_nofile() -> tuple[int, int]:
    return resource.getrlimit(resource.RLIMIT_NOFILE)


@attrs.frozen
class Probes:
    """Everything the checks look up on the host; a test replaces any part."""

    state_dir: Path
    env: Mapping[str, str]
    path: str  # searched for bwrap, slirp4netns, nsenter, ip, nft, claude
    euid: int
    proc_sys: Path = Path("/proc/sys")
    tun: Path = network.TUN
    system_bin: str = ""  # also searched for slirp4netns, nsenter, ip, nft (the daemon does)
    mountinfo: Path = Path("/proc/self/mountinfo")
    proc_cgroup: Path = Path("/proc/self/cgroup")
    open_files: Callable[[], tuple[int, int]] = _getrlimit_nofile
    bwrap_problem: Callable[[str], str | None] = bwrap_works
    seccomp_problem: Callable[[], str | None] = seccomp_problem
    model: str = DEFAULT_MODEL
    api: bool = True  # False: skip the request (offline)
    api_timeout: float = 30.0

    @classmethod
    def of_this_host(cls, state_dir: Path, **overrides: Any) -> Probes:
        """The real machine: this process's environment, PATH and uid."""
        env = dict(os.environ)
        return cls(
            state_dir=state_dir,
            env=env,
            path=env.get("PATH", os.defpath),
            system_bin=SYSTEM_BIN,
            euid=os.geteuid(),
            **overrides,
        )

    def which(self, program: str) -> str | None:
        return shutil.which(program, path=self.path)

    def host_tool(self, program: str) -> str | None:
        """A network tool as the daemon finds it: PATH, then `system_bin` (`bwrap.host_tool`)."""
        found = self.which(program)
        if found is None and self.system_bin:
            found = shutil.which(program, path=self.system_bin)
        return found


# -- the sandbox ------------------------------------------------------------------------------


def check_bubblewrap(probes: Probes) -> Finding:
    name = "bubblewrap"
    found = probes.which("bwrap")
    if found is None:
        return Finding(
            name,
            "fail",
            "bwrap is not on PATH: agents would run unsandboxed (the process backend)",
            "install it: apt-get install bubblewrap (Fedora: dnf install bubblewrap)",
        )
    problem = probes.bwrap_problem(found)
    if problem is not None:
        return Finding(
            name,
            "fail",
            problem,
            "bwrap must be able to create user, pid and network namespaces for this user; "
            "see the user namespaces check, or run the daemon as root (docs/security.md)",
        )
    return Finding(name, "ok", f"{_version(found) or found} builds the agents' sandbox")


def _version(program: str) -> str | None:
    try:
        done = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout else None


def check_user_namespaces(probes: Probes) -> Finding:
    name = "user namespaces"
    if probes.euid == 0:
        return Finding(
            name, "skip", "the daemon runs as root: bwrap needs none (each agent gets its own uid)"
        )
    # Each knob turns user namespaces off at 0.
    knobs = (
        (
            "user/max_user_namespaces",
            "user namespaces are disabled (user.max_user_namespaces = 0)",
            "sysctl -w user.max_user_namespaces=15000, and keep it in /etc/sysctl.d/",
        ),
        (
            "kernel/unprivileged_userns_clone",
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
            "sysctl -w kernel.unprivileged_userns_clone=1, and keep it in /etc/sysctl.d/",
        ),
    )
    for knob, summary, fix in knobs:
        if _read_int(probes.proc_sys / knob) == 0:
            return Finding(name, "fail", summary, fix)
    restricted = _read_int(probes.proc_sys / "kernel/apparmor_restrict_unprivileged_userns")
    if restricted == 1:
        return Finding(
            name,
            "warn",
            "AppArmor restricts unprivileged user namespaces "
            "(kernel.apparmor_restrict_unprivileged_userns = 1): bwrap works only with a "
            "profile that allows it (the bubblewrap check shows whether it does)",
            "if bubblewrap fails: give bwrap an AppArmor profile with `userns,`, or "
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        )
    return Finding(name, "ok", "unprivileged user namespaces are enabled")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def check_seccomp(probes: Probes) -> Finding:
    problem = probes.seccomp_problem()
    if problem is not None:
        return Finding(
            "seccomp",
            "warn",
            f"agents would run without the seccomp filter: {problem}",
            "apt-get install libseccomp2, and reinstall hyperhive (it pins pyseccomp)",
        )
    return Finding("seccomp", "ok", "libseccomp compiles the agents' filter")


def check_user_network(probes: Probes) -> Finding:
    name = "user-mode network"
    slirp = probes.host_tool("slirp4netns")
    problem = network.user_network_problem(
        slirp, privileged=probes.euid == 0, tun=probes.tun, uid=probes.euid
    )
    missing = [tool for tool in ("nsenter", "ip") if probes.host_tool(tool) is None]
    if problem is None and missing:
        problem = f"{' and '.join(missing)} not on PATH (the daemon sets the network up with them)"
    if problem is not None:
        fix = (
            network.TUN_FIX
            if str(probes.tun) in problem and "not usable" in problem
            else "apt-get install slirp4netns iproute2 util-linux"
        )
        return Finding(
            name,
            "warn",
            "agents with the network on would share the host's network and reach its "
            "loopback services (serve then puts the dashboard behind an operator token): "
            f"{problem}",
            fix,
        )
    return Finding(name, "ok", f"{slirp} gives each agent its own network namespace")


def check_nftables(probes: Probes) -> Finding:
    nft = probes.host_tool("nft")
    if nft is None:
        return Finding(
            "nftables",
            "warn",
            "nft is not on PATH: an agent with an egress allowlist would refuse to start",
            "apt-get install nftables",
        )
    return Finding("nftables", "ok", f"{nft} enforces egress allowlists")


_GIT_NEEDED: Final = (2, 29)  # rev-list --filter-print-omitted with blob:limit


def check_git(probes: Probes) -> Finding:
    name = "git"
    git = probes.which("git")
    fix = "apt-get install git (2.29 or later; Debian 12 has 2.39)"
    if git is None:
        return Finding(name, "warn", "git is not on PATH: no config change can be proposed", fix)
    try:
        done = subprocess.run(
            [git, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding(name, "warn", f"{git} --version did not run: {exc}", fix)
    words = done.stdout.split()
    version = words[2] if len(words) > 2 and words[:2] == ["git", "version"] else ""
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if len(numbers) < 2 or numbers < _GIT_NEEDED:
        shown = version or done.stdout.strip()[:_MAX_SHOWN] or "no version"
        return Finding(
            name, "warn", f"{git} is {shown}: config changes need git 2.29 or later", fix
        )
    return Finding(name, "ok", f"{git} {version} keeps the config repos (docs/approvals.md)")


def check_cgroup(probes: Probes) -> Finding:
    directory, why = find_delegated_cgroup(probes.mountinfo, probes.proc_cgroup)
    if directory is None:
        return Finding(
            "cgroup",
            "warn",
            f"memory and process limits would fall back to prlimit: {why}",
            "run the daemon under systemd with Delegate=yes (nix/module.nix does), or in a "
            "cgroup v2 subtree of its own with +memory +pids delegated",
        )
    return Finding("cgroup", "ok", f"agents get memory and process limits under {directory}")


# -- the daemon's own resources ---------------------------------------------------------------


def check_state_dir(probes: Probes) -> Finding:
    name = "state directory"
    paths = StatePaths(probes.state_dir)
    root = paths.root
    if len(os.fsencode(paths.agent_socket("x" * 11))) > SOCKET_PATH_MAX:
        return Finding(
            name,
            "fail",
            f"{root} is too long: agent socket paths would pass {SOCKET_PATH_MAX} bytes",
            "choose a shorter --state-dir (or HYPERHIVE_STATE_DIR)",
        )
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return Finding(name, "ok", f"{root} does not exist yet; `hyperhive serve` creates it 0700")
    except OSError as exc:
        return Finding(name, "fail", f"cannot look at {root}: {exc.strerror}", "check its parent")
    if not stat.S_ISDIR(info.st_mode):
        return Finding(name, "fail", f"{root} is not a directory", "choose another --state-dir")
    if info.st_uid != probes.euid:
        return Finding(
            name,
            "fail",
            f"{root} belongs to uid {info.st_uid}, not to this user (uid {probes.euid})",
            f"run as its owner, or chown -R {probes.euid} {root}",
        )
    loose = [f"{path} is {mode:04o}" for path, mode, want in _modes(paths) if mode & ~want & 0o777]
    if loose:
        return Finding(
            name,
            "fail",
            "readable by others: " + "; ".join(loose),
            f"chmod 700 on directories, 600 on files (serve tightens {root} itself at start)",
        )
    return Finding(name, "ok", f"{root}: 0700, its sqlite files and admin socket 0600")


def _modes(paths: StatePaths) -> Iterator[tuple[Path, int, int]]:
    """(path, mode, the widest mode allowed) for what the daemon keeps private."""
    # A root daemon hands the manager's socket directory to its group (2750, docs/security.md).
    for directory, widest in (
        (paths.root, 0o700),
        (paths.agents_dir, 0o700),
        (paths.manager_socket_dir, 0o750),
    ):
        with contextlib.suppress(OSError):
            yield directory, stat.S_IMODE(os.lstat(directory).st_mode), widest
    with contextlib.suppress(OSError):
        for entry in sorted(os.scandir(paths.root), key=lambda e: e.name):
            private = ".sqlite" in entry.name or entry.name == paths.admin_socket.name
            if private and not entry.is_dir(follow_symlinks=False):
                yield (
                    Path(entry.path),
                    stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode),
                    0o600,
                )


def check_open_files(probes: Probes) -> Finding:
    name = "descriptor limit"
    soft, hard = probes.open_files()
    limit = GOOD_OPEN_FILES * 4 if hard == resource.RLIM_INFINITY else hard
    room = max(0, (limit - _DAEMON_FILES) // _FILES_PER_AGENT)
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    fix = (
        f"raise the hard limit: LimitNOFILE={GOOD_OPEN_FILES} in the systemd unit "
        "(nix/module.nix sets it), or a `hard nofile` line in /etc/security/limits.conf"
    )
    if limit < MIN_OPEN_FILES:
        summary = f"hard open-file limit {shown}: one busy agent alone would exhaust it"
        return Finding(name, "fail", summary, fix)
    summary = (
        f"hard open-file limit {shown} (serve raises soft {soft} to it): room for about "
        f"{room} agents at their connection limit"
    )
    if room < _ENOUGH_AGENTS:
        return Finding(name, "warn", summary, fix)
    return Finding(name, "ok", summary)


# -- Claude -----------------------------------------------------------------------------------


def check_claude_binary(probes: Probes) -> Finding:
    name = "claude binary"
    claude = _claude_binary(probes)
    if claude is None:
        return Finding(
            name,
            "fail",
            "no claude binary: agents cannot take a turn",
            "reinstall hyperhive with its dependencies (claude-agent-sdk bundles claude), put "
            "claude on PATH, or set HYPERHIVE_CLAUDE_BIN",
        )
    version = _version(str(claude))
    if version is None:
        return Finding(
            name,
            "fail",
            f"{claude} does not run (`{claude} --version` failed)",
            "reinstall hyperhive (claude-agent-sdk), or point HYPERHIVE_CLAUDE_BIN at a claude "
            "that runs",
        )
    bundled = "_bundled" in claude.parts
    return Finding(name, "ok", f"{version}" + (" (bundled)" if bundled else f" at {claude}"))


def _claude_binary(probes: Probes) -> Path | None:
    if explicit := probes.env.get("HYPERHIVE_CLAUDE_BIN"):
        return Path(explicit)
    import importlib.util

    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "_bundled" / "claude"
        if bundled.is_file():
            return bundled
    found = probes.which("claude")
    return Path(found) if found else None


@attrs.frozen
class _Login:
    agent: str
    method: str | None  # "stored token", "stored API key", "claude login"; None: none
    problem: str = ""  # why a file there was refused


def _agents(paths: StatePaths) -> list[str]:
    """Registered agents (not tombstones), the manager first."""
    try:
        entries = [e for e in os.scandir(paths.agents_dir) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    names = sorted(
        e.name
        for e in entries
        if os.path.isfile(os.path.join(e.path, "agent.json"))
        and not os.path.lexists(os.path.join(e.path, "tombstone.json"))
    )
    return sorted(names, key=lambda n: n != "manager")


def _login_of(paths: StatePaths, agent: str) -> _Login:
    state = paths.agent_state_dir(agent)
    try:
        stored = _stored(state)
        if stored is not None:
            return _Login(agent, _STORED_LABEL[stored[0]])
        if is_regular_file(state, _CLAUDE_OWN):
            return _Login(agent, "claude login")
    except UnsafeFile as exc:
        return _Login(agent, None, str(exc))
    return _Login(agent, None)


_STORED_LABEL = {"oauth_token": "stored token", "api_key": "stored API key", "cloud": "cloud"}
# What `hyperhive login` may give an agent, in the order the API check prefers them.
_GIVEN = (
    ("ANTHROPIC_API_KEY", "api_key"),
    ("CLAUDE_CODE_OAUTH_TOKEN", "oauth_token"),
    ("ANTHROPIC_AUTH_TOKEN", "oauth_token"),
)


def _stored(state: Path) -> tuple[str, str, str] | None:
    """(kind, value, base URL or "") of an agent's stored credential: one it was given by
    `hyperhive login` or one it stored itself (its file is agent-writable: capped)."""
    data = read_capped(state, _CREDENTIALS, 64 * 1024, shown_as="/state")
    try:
        raw = json.loads(data or b"")
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    kind, value = raw.get("kind"), raw.get("value")
    if kind == "env" and isinstance(env := raw.get("env"), dict):
        base = env.get("ANTHROPIC_BASE_URL")
        base = base if isinstance(base, str) else ""
        for var, given in _GIVEN:
            if isinstance(found := env.get(var), str) and found:
                return given, found, base
        if env.get("CLAUDE_CODE_USE_BEDROCK") or env.get("CLAUDE_CODE_USE_VERTEX"):
            return "cloud", "", base
        return None
    if kind not in ("oauth_token", "api_key") or not isinstance(value, str) or not value:
        return None
    return kind, value, ""


def check_credentials(probes: Probes) -> Finding:
    name = "credentials"
    paths = StatePaths(probes.state_dir)
    logins = [_login_of(paths, agent) for agent in _agents(paths)]
    inherited = [k for k in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN") if probes.env.get(k)]
    note = (
        f" ({' and '.join(inherited)} in this shell does not reach agents: they never inherit "
        "the daemon's environment)"
        if inherited
        else ""
    )
    how = (
        "log them in: `hyperhive login` (the hive's credential, for every agent) or "
        "`hyperhive login NAME`, and paste an API key, what `claude setup-token` printed, or a "
        "gateway's NAME=VALUE lines; see docs/troubleshooting.md"
    )
    if not logins:
        return Finding(
            name,
            "warn",
            "no agents yet, so none is logged in (`serve` creates the manager, which then "
            f"needs one){note}",
            how,
        )
    missing = [login for login in logins if login.method is None]
    if missing:
        shown = ", ".join(
            login.agent + (f" ({login.problem})" if login.problem else "") for login in missing
        )
        return Finding(name, "fail", f"no Claude credential: {shown}{note}", how)
    methods = ", ".join(f"{login.agent}: {login.method}" for login in logins)
    return Finding(name, "ok", f"every agent has a credential ({methods})")


def check_api(probes: Probes) -> Finding:
    name = "Claude API"
    base = (probes.env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if not probes.api:
        return Finding(name, "skip", f"not asked (--no-api); would ask {base}")
    credential = _api_credential(probes)
    if credential is None:
        return Finding(
            name,
            "skip",
            f"no credential to ask {base} with (none in ANTHROPIC_API_KEY, "
            "CLAUDE_CODE_OAUTH_TOKEN or an agent's stored login)",
        )
    source, kind, value, given_base = credential
    if given_base and not probes.env.get("ANTHROPIC_BASE_URL"):
        base = given_base.rstrip("/")
    started = time.monotonic()
    try:
        status, body = _ask(base, kind, value, probes.model, probes.api_timeout)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        return Finding(
            name,
            "fail",
            f"cannot reach {base}: {_clip(str(reason))}",
            "check the network, a proxy (HTTPS_PROXY) or ANTHROPIC_BASE_URL; agents with the "
            "network off cannot reach it either",
        )
    took = f"{(time.monotonic() - started) * 1000:.0f} ms"
    return _judge_reply(name, base, source, status, body, probes.model, took)


def _api_credential(probes: Probes) -> tuple[str, str, str, str] | None:
    """(where it came from, api_key | oauth_token, the value, the base URL it was given with
    or ""), the environment first."""
    for var, kind in (
        ("ANTHROPIC_API_KEY", "api_key"),
        ("CLAUDE_CODE_OAUTH_TOKEN", "oauth_token"),
        ("ANTHROPIC_AUTH_TOKEN", "oauth_token"),
    ):
        if value := probes.env.get(var):
            return var, kind, value, ""
    paths = StatePaths(probes.state_dir)
    for agent in _agents(paths):
        try:
            stored = _stored(paths.agent_state_dir(agent))
        except UnsafeFile:
            continue
        if stored is not None and stored[0] != "cloud":
            return f"{agent}'s stored login", stored[0], stored[1], stored[2]
    return None


def _ask(base: str, kind: str, value: str, model: str, timeout: float) -> tuple[int, bytes]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "ping"}],
    }
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if kind == "api_key":
        headers["x-api-key"] = value
    else:
        headers["authorization"] = f"Bearer {value}"
        headers["anthropic-beta"] = "oauth-2025-04-20"
        body["system"] = _CLAUDE_CODE_SYSTEM  # what a subscription token is accepted for
    request = urllib.request.Request(
        f"{base}/v1/messages", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(64 * 1024)
    except TimeoutError as exc:
        raise OSError(errno.ETIMEDOUT, f"no answer within {timeout:.0f} s") from exc


def _judge_reply(
    name: str, base: str, source: str, status: int, body: bytes, model: str, took: str
) -> Finding:
    asked = f"{base} (with {source})"
    if status == 200:
        return Finding(name, "ok", f"{asked} answered in {took}")
    message = _error_message(body)
    if status in (401, 403):
        return Finding(
            name,
            "fail",
            f"{asked} refused the credential ({status}): {message}",
            "log in again with a fresh `claude setup-token` token or a valid API key",
        )
    if status == 404 and "model" in message.lower():
        return Finding(
            name,
            "warn",
            f"{asked} accepted the credential but not model {model!r}: {message}",
            "pass --model with a model your account has",
        )
    if status == 429 or status >= 500:
        return Finding(
            name,
            "warn",
            f"{asked} is busy ({status}): {message}; agents retry such answers",
            "try again later; a steady 429 means the account's rate limit is too low",
        )
    return Finding(
        name,
        "fail",
        f"{asked} answered {status}: {message}",
        "fix what the API says (for example the account's billing), then run doctor again",
    )


def _error_message(body: bytes) -> str:
    try:
        raw = json.loads(body)
        text = raw["error"]["message"]
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", errors="replace")
    return _clip(str(text))


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_SHOWN else flat[: _MAX_SHOWN - 1] + "…"


# -- a daemon on this state directory ---------------------------------------------------------


def check_daemon(probes: Probes) -> Finding:
    name = "daemon"
    paths = StatePaths(probes.state_dir)
    if _answers(paths.admin_socket):
        return Finding(name, "ok", f"running on {paths.admin_socket}")
    bind = probes.env.get("HYPERHIVE_DASHBOARD") or "127.0.0.1:7000"
    host, _, port = bind.rpartition(":")
    if port.isdigit() and _port_taken(host.strip("[]"), int(port)):
        return Finding(
            name,
            "warn",
            f"not running, and the dashboard's address {bind} is taken by another program",
            "serve elsewhere: hyperhive serve --dashboard 127.0.0.1:PORT (or --no-dashboard)",
        )
    return Finding(name, "skip", f"not running on {paths.admin_socket} (start: hyperhive serve)")


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(os.fspath(path))
        except OSError:
            return False
    return True


def _port_taken(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


# -- running them -----------------------------------------------------------------------------

CHECKS: Final[tuple[tuple[str, Callable[[Probes], Finding]], ...]] = (
    ("bubblewrap", check_bubblewrap),
    ("user namespaces", check_user_namespaces),
    ("seccomp", check_seccomp),
    ("user-mode network", check_user_network),
    ("nftables", check_nftables),
    ("git", check_git),
    ("cgroup", check_cgroup),
    ("state directory", check_state_dir),
    ("descriptor limit", check_open_files),
    ("daemon", check_daemon),
    ("claude binary", check_claude_binary),
    ("credentials", check_credentials),
    ("Claude API", check_api),
)


def run_checks(probes: Probes) -> list[Finding]:
    """Every check, in order; one that raises is a ``fail`` naming the error, not a crash."""
    findings = []
    for name, check in CHECKS:
        try:
            findings.append(check(probes))
        except Exception as exc:  # a doctor that crashes helps nobody
            findings.append(Finding(name, "fail", f"the check itself failed: {exc!r}"))
    return findings


def exit_status(findings: list[Finding]) -> int:
    """1 when anything essential failed, else 0 (warnings do not fail)."""
    return 1 if any(f.status == "fail" for f in findings) else 0


def to_json(findings: list[Finding]) -> dict[str, Any]:
    """`doctor --json`: ``{"ok": bool, "checks": [{"check","status","summary","fix"}]}``."""
    return {"ok": exit_status(findings) == 0, "checks": [attrs.asdict(f) for f in findings]}
