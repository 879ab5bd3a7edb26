"""Network on: the agent's own network namespace, reaching out through slirp4netns.

bwrap always unshares the network. With the network on, once bwrap reports the sandbox (and
before the agent's program runs: bwrap waits on `--block-fd`), the daemon starts
`slirp4netns` on the sandbox's namespace. slirp4netns is a user-mode TCP/IP stack: it opens
real sockets on the host for the agent's connections, so the agent reaches whatever the host
can reach (Claude's API) while the host's loopback (`--disable-host-loopback`), its abstract
unix sockets and its `/proc/net` stay out of sight: all of those belong to the host's network
namespace, and the agent is not in it. Inside, the agent sees `tap0` (10.0.2.100/24), the
gateway 10.0.2.2 and slirp's DNS forwarder 10.0.2.3 (the sandbox's resolv.conf points there).

slirp4netns runs `--enable-sandbox --enable-seccomp` (its own mount namespace with only /etc
and /run, a syscall filter, capabilities dropped) and is tied to the daemon by `--exit-fd`:
the daemon holds the other end of a pipe, so when the daemon dies, however it dies, the pipe
closes and slirp4netns exits. It also stops with the sandbox. Under an unprivileged daemon it
runs inside the user namespace that owns the agent's network namespace (bwrap's outer one,
where the daemon's uid is 0 and the agent's nested namespace is a child), entered with
nsenter before it starts; it still opens the host's `/dev/net/tun` as the daemon's user, so
that device must be usable by it (`user_network_problem`, `TUN_FIX`).

With an egress allowlist (`SandboxSettings.egress`), an nftables table inside the agent's
namespace drops every other destination before slirp4netns ever sees the packet: the agent
has no capability in that namespace and cannot change the table. Hostnames are resolved when
the agent starts; DNS to 10.0.2.3 stays allowed so names resolve.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from hyperhive.containers import _spawn
from hyperhive.errors import StartFailed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hyperhive.containers.sandbox import EgressRule

__all__ = [
    "DNS_ADDRESS",
    "GATEWAY_ADDRESS",
    "READY_SECONDS",
    "TUN",
    "TUN_FIX",
    "UserNetwork",
    "nft_ruleset",
    "resolve_rules",
]

GATEWAY_ADDRESS: Final = "10.0.2.2"
AGENT_ADDRESS: Final = "10.0.2.100/24"
MTU: Final = 65520
DNS_ADDRESS: Final = "10.0.2.3"
READY_SECONDS: Final = 10.0
RELAY_LINES: Final = 50  # per slirp4netns run, into the daemon's log
RELAY_LINE_CHARS: Final = 300
LOGGER = logging.getLogger("hyperhive.containers")
_NS_GET_USERNS: Final = 0xB701


def nft_ruleset(
    rules: Sequence[tuple[EgressRule, tuple[str, ...]]], table: str = "hyperhive_egress"
) -> str:
    """The nftables table enforcing `rules` (each with its hostname's addresses) in a netns.

    Two such tables (different `table` names) both filter every packet: a destination must
    be accepted by each (the operator's allowlist and the approved one)."""
    lines = [
        f"table inet {table} {{",
        "  chain output {",
        "    type filter hook output priority 0; policy drop;",
        '    oif "lo" accept',
        f"    ip daddr {DNS_ADDRESS} udp dport 53 accept",
        f"    ip daddr {DNS_ADDRESS} tcp dport 53 accept",
    ]
    for rule, resolved in rules:
        ports = f"{rule.first_port}-{rule.last_port}"
        for network in rule.networks(resolved):
            for proto in ("tcp", "udp"):
                lines.append(f"    ip daddr {network} {proto} dport {ports} accept")
    lines += [
        "    meta l4proto tcp reject with tcp reset",
        "    reject with icmpx type admin-prohibited",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def resolve_rules(rules: Sequence[EgressRule]) -> list[tuple[EgressRule, tuple[str, ...]]]:
    """Each rule with its hostname's IPv4 addresses (blocking DNS: run off the trio thread).

    Raises:
        StartFailed: a hostname does not resolve (an allowlist nobody can use is an error).
    """
    resolved = []
    for rule in rules:
        addresses: tuple[str, ...] = ()
        if rule.is_hostname:
            try:
                infos = socket.getaddrinfo(rule.host, None, socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                raise StartFailed(f"egress: {rule.host} does not resolve ({exc})") from exc
            addresses = tuple(sorted({str(info[4][0]) for info in infos}))
        resolved.append((rule, addresses))
    return resolved


async def relay_to_daemon_log(stream: trio.abc.ReceiveStream, label: str) -> None:
    """Log slirp4netns's lines (from `stream`, its stderr) to the daemon's log, bounded.

    At most `RELAY_LINES` lines of at most `RELAY_LINE_CHARS` each, unprintable characters
    replaced; the rest is read and dropped, so slirp4netns never blocks on a full pipe.
    Returns at the end of the stream (slirp4netns exited), closing it.
    """
    logged, pending = 0, b""
    async with stream:
        while data := await stream.receive_some(65536):
            *lines, pending = (pending + data).split(b"\n")
            pending = pending[-RELAY_LINE_CHARS * 4 :]  # a line without an end stays bounded
            for raw in lines:
                logged += 1
                if logged <= RELAY_LINES:
                    text = raw.decode("utf-8", errors="replace")[:RELAY_LINE_CHARS]
                    printable = "".join(c if c.isprintable() else "?" for c in text)
                    LOGGER.info("slirp4netns for %s: %s", label, printable)
                elif logged == RELAY_LINES + 1:
                    LOGGER.info("slirp4netns for %s: (further lines dropped)", label)


class UserNetwork:
    """slirp4netns on one sandbox's network namespace (see the module docstring).

    Its stderr goes to `log_fd` (the agent's log), or with `log_fd` None to the daemon's log
    through `relay_to_daemon_log`, run in `nursery` (a build: its log holds only the build's
    output).
    """

    def __init__(
        self,
        slirp4netns: str,
        *,
        log_fd: int | None,
        privileged: bool,
        nursery: trio.Nursery | None = None,
        label: str = "",
        nsenter: str = "nsenter",
    ) -> None:
        if log_fd is None and nursery is None:
            raise ValueError("slirp4netns's output needs a log fd or a nursery to relay it")
        self._slirp = slirp4netns
        self._nsenter = nsenter
        self._log_fd = log_fd
        self._privileged = privileged
        self._nursery = nursery
        self._label = label
        self.proc: _spawn.SpawnedProcess | None = None
        self._exit_write: int | None = None

    async def start(self, init_pid: int) -> None:
        """Attach to the namespace of the sandbox whose pid 1 is `init_pid`; return when up.

        Raises:
            StartFailed: slirp4netns could not configure the namespace.
        """
        if not self._privileged:
            await _user_maps_written(init_pid)
        net_fd = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fds = [net_fd]
        try:
            # No --configure: slirp4netns would bring `lo` up too, racing bwrap, which does
            # that itself; `configure` sets tap0 up once slirp4netns has created it.
            argv = [
                self._slirp, f"--mtu={MTU}", "--disable-host-loopback",
                "--enable-sandbox", "--enable-seccomp",
            ]  # fmt: skip
            if not self._privileged:
                # The namespace's owner is bwrap's outer user namespace (the sandbox itself
                # runs in a nested one), where the daemon's uid is 0. slirp4netns runs in it
                # from the start (nsenter, found from the netns itself): its own
                # `--userns-path` joins it only in the child that opens the tap, while the
                # parent's sandbox (`--enable-sandbox`) then fails with "setegid(0)".
                user_fd = fcntl.ioctl(net_fd, _NS_GET_USERNS)
                fds.append(user_fd)
                argv = [
                    self._nsenter, f"--user=/proc/self/fd/{user_fd}", "--preserve-credentials",
                    "--", *argv,
                ]  # fmt: skip
            exit_read, self._exit_write = os.pipe2(os.O_CLOEXEC)
            ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
            fds += [exit_read, ready_write]
            argv += [
                f"--exit-fd={exit_read}", f"--ready-fd={ready_write}",
                "--netns-type=path", f"/proc/self/fd/{net_fd}", "tap0",
            ]  # fmt: skip
            stderr, relay_write = self._log_fd, None
            if stderr is None:
                relay_read, relay_write = os.pipe2(os.O_CLOEXEC)
                stderr = relay_write
                assert self._nursery is not None
                stream = trio.lowlevel.FdStream(relay_read)
                self._nursery.start_soon(relay_to_daemon_log, stream, self._label)
            try:
                self.proc = await _spawn.open_process(
                    argv, stdout=subprocess.DEVNULL, stderr=stderr, pass_fds=fds
                )
            finally:
                for fd in fds:
                    os.close(fd)
                fds = []
                if relay_write is not None:
                    os.close(relay_write)  # the relay ends when slirp4netns does
            await self._wait_ready(ready_read)
        finally:
            for fd in fds:
                os.close(fd)

    async def _wait_ready(self, ready_read: int) -> None:
        stream = trio.lowlevel.FdStream(ready_read)
        try:
            with trio.move_on_after(READY_SECONDS):
                if await stream.receive_some(16) == b"1":
                    return
            where = "the daemon's log" if self._log_fd is None else "the agent's log"
            raise StartFailed(f"slirp4netns did not bring the agent's network up (see {where})")
        finally:
            await stream.aclose()

    async def configure(self, init_pid: int, *, nsenter: str, ip: str) -> None:
        """Address and route tap0 inside the sandbox's namespace (what `--configure` does).

        Raises:
            StartFailed: ip refused.
        """
        batch = (
            f"link set tap0 mtu {MTU} up\n"
            f"addr add {AGENT_ADDRESS} dev tap0\n"
            f"route add default via {GATEWAY_ADDRESS} dev tap0\n"
        )
        await self._in_namespace(init_pid, [ip, "-batch"], batch, nsenter=nsenter, what="ip")

    async def apply_egress(self, init_pid: int, ruleset: str, *, nsenter: str, nft: str) -> None:
        """Load `ruleset` into the sandbox's network namespace.

        Raises:
            StartFailed: nft refused it.
        """
        await self._in_namespace(init_pid, [nft, "-f"], ruleset, nsenter=nsenter, what="nft")

    async def _in_namespace(
        self, init_pid: int, command: list[str], script: str, *, nsenter: str, what: str
    ) -> None:
        """Run `command SCRIPT_FILE` in the sandbox's network namespace."""
        net_fd = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fds = [net_fd]
        try:
            argv = [nsenter, f"--net=/proc/self/fd/{net_fd}"]
            if not self._privileged:
                fds.append(fcntl.ioctl(net_fd, _NS_GET_USERNS))
                argv += [f"--user=/proc/self/fd/{fds[1]}", "--preserve-credentials"]
            with tempfile.NamedTemporaryFile("w", prefix="hh-net-") as scratch:
                scratch.write(script)
                scratch.flush()
                done = await _spawn.run_process([*argv, *command, scratch.name], pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()[-400:]
            raise StartFailed(f"{what} could not set up the agent's network: {detail}")

    async def aclose(self) -> None:
        """Stop slirp4netns (closing its exit fd) and reap it; idempotent."""
        if self._exit_write is not None:
            os.close(self._exit_write)
            self._exit_write = None
        if self.proc is not None:
            with trio.move_on_after(2.0, shield=True):
                await self.proc.wait()
            self.proc.kill()
            with trio.move_on_after(5.0, shield=True):
                await self.proc.wait()
            self.proc = None


TUN: Final = Path("/dev/net/tun")
TUN_FIX: Final = (
    "as root: chmod 0666 /dev/net/tun (the mode udev gives it on Debian, Ubuntu and Fedora; "
    "a host without udev, like many VMs and containers, leaves it 0600 and resets it at boot: "
    'keep it with a udev rule KERNEL=="tun", MODE="0666", or a tmpfiles.d line), or run '
    "the daemon as root"
)


async def _user_maps_written(init_pid: int) -> None:
    """Wait until the sandbox's user namespace maps the daemon's uid and gid.

    Unprivileged, bwrap's child writes its own maps after bwrap has reported its pid; a
    process joining the namespace before then is nobody there and may not enter its network
    namespace (slirp4netns: "setns(CLONE_NEWNET): Operation not permitted").

    Raises:
        StartFailed: the maps were not written within `READY_SECONDS`.
    """
    with trio.move_on_after(READY_SECONDS):
        for _ in itertools.count():  # nothing to wait on but the file: poll, briefly
            if _maps_written(init_pid):
                return
            await trio.sleep(0.005)
    raise StartFailed(f"bwrap did not map the sandbox's user within {READY_SECONDS}s")


def _maps_written(pid: int) -> bool:
    """Whether `pid`'s user namespace has its uid and gid maps (a /proc read: instant)."""
    try:
        return all(
            Path(f"/proc/{pid}/{name}").read_bytes().strip() for name in ("uid_map", "gid_map")
        )
    except OSError as exc:
        raise StartFailed(f"the sandbox ended before its network was set up ({exc})") from exc


def user_network_problem(
    slirp4netns: str | None, *, privileged: bool, tun: Path = TUN, uid: int | None = None
) -> str | None:
    """None if slirp4netns can serve agents here, else why not.

    Unprivileged, slirp4netns opens `tun` as the daemon's user (`uid`, default this process's:
    the user namespace it enters gives it no right over a root-owned device); `TUN_FIX` says
    how to open it up.
    """
    if slirp4netns is None:
        return "slirp4netns is not installed (apt-get install slirp4netns)"
    try:
        info = tun.stat()
    except OSError:
        return f"{tun} does not exist (the kernel has no tun support)"
    if not privileged and not _usable(tun, info, os.geteuid() if uid is None else uid):
        mode = stat.S_IMODE(info.st_mode)
        return (
            f"{tun} is mode {mode:04o}, owned by uid {info.st_uid}: not usable by this user "
            "(slirp4netns needs it)"
        )
    with contextlib.suppress(OSError):
        resolv = Path("/etc/resolv.conf")
        if resolv.is_symlink():
            target = resolv.resolve()
            if not any(p in target.parents for p in (Path("/etc"), Path("/run"))):
                return f"/etc/resolv.conf links outside /etc and /run ({target})"
    return None


def _usable(tun: Path, info: os.stat_result, uid: int) -> bool:
    """Whether `uid` may open `tun` read-write (a check for another uid reads the mode bits)."""
    if uid == os.geteuid():
        return os.access(tun, os.R_OK | os.W_OK)
    if uid == 0:
        return True
    if info.st_uid == uid:
        return info.st_mode & 0o600 == 0o600
    return info.st_mode & 0o006 == 0o006
