"""A test host of our own: a network namespace with a veth link to this host (root only).

`open_netns_host()` makes `hh-<pid>-<n>`, links it to the host through a veth pair
(10.213.N.1 on the host, 10.213.N.2 inside) and removes both afterwards. `listen_tcp` opens a
listening socket *inside* that namespace (from a short-lived thread that enters it), which
this process can then serve with trio: a server that an agent reaches "over the internet",
through the same path Claude's API would take (out of the agent's namespace through
slirp4netns into the host's routing), without the test's traffic leaving the machine.
Nothing here touches an address outside 10.213.0.0/16 or the namespaces it made.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import socket
import subprocess
import threading
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["NetnsHost", "netns_problem", "open_netns_host"]

_CLONE_NEWNET = 0x40000000
_counter = itertools.count(1)


def netns_problem() -> str | None:
    """None if this process can make test hosts, else why not."""
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "ip is not installed (apt-get install iproute2)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@attrs.frozen
class NetnsHost:
    name: str
    host_address: str  # this host's end of the veth
    address: str  # the test host's address, reachable from this host

    def listen_tcp(self, port: int = 0) -> socket.socket:
        """A listening TCP socket bound inside the namespace (port 0: the kernel picks)."""
        result: list[socket.socket | BaseException] = []

        def enter_and_listen() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.address, port))
                sock.listen(64)
                result.append(sock)
            except BaseException as exc:
                result.append(exc)

        thread = threading.Thread(target=enter_and_listen, name="hh-netns-listen")
        thread.start()
        thread.join()
        (outcome,) = result
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@contextlib.contextmanager
def open_netns_host() -> Iterator[NetnsHost]:
    """A fresh namespace with a veth link to this host, removed on exit."""
    number = next(_counter)
    name = f"hh-{os.getpid()}-{number}"
    subnet = (os.getpid() * 7 + number) % 250 + 2
    host_if, ns_if = f"hhv{os.getpid() % 100000}{number}h", f"hhv{os.getpid() % 100000}{number}n"
    host_address, address = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{host_address}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{address}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield NetnsHost(name, host_address, address)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_if)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", name)
