"""The sandbox's seccomp filter: what an agent can never ask the kernel for.

Compiled by libseccomp (Debian's `libseccomp2`, through the `pyseccomp` ctypes binding, which
follows the API of libseccomp's own Python bindings) into a classic BPF program that bwrap
loads with `--seccomp FD` just before it executes the agent. Everything not listed is allowed:
the other walls (namespaces, no capabilities, the mount allowlist) already confine what the
allowed calls can reach; this list removes the kernel surfaces a sandboxed program never needs
and that have a history of privilege escalations.

Denied calls fail with EPERM, so a program that probes for a feature sees "not permitted"
rather than dying. `clone3` fails with ENOSYS instead: its flags sit in a struct that a filter
cannot read, and ENOSYS makes the C library fall back to `clone`, whose namespace flags the
filter does check (each namespace flag), and `ioctl` refuses TIOCSTI and TIOCLINUX, which
push keystrokes into a terminal. A syscall made through another architecture's entry point (32-bit
`int 0x80` on x86-64) kills the process: the filter only knows the native table.

`DENIED` is the table the docs list (docs/security.md).
"""

from __future__ import annotations

import errno
import os
from typing import Any, Final

import attrs

__all__ = [
    "CLONE_NAMESPACE_FLAGS",
    "DENIED",
    "Denied",
    "SeccompUnavailable",
    "build_filter",
    "seccomp_problem",
]


@attrs.frozen
class Denied:
    syscalls: tuple[str, ...]
    why: str


_MOUNT_CALLS: Final = (
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
)  # fmt: skip
DENIED: Final = (
    Denied(("add_key", "keyctl", "request_key"), "kernel keyrings: no key of any user can be read"),
    Denied(_MOUNT_CALLS, "changing the mount table: the allowlist of mounts is fixed at start"),
    Denied(("unshare", "setns"), "new or other namespaces (user namespaces above all)"),
    Denied(("bpf",), "eBPF programs and maps"),
    Denied(("perf_event_open",), "performance counters (a side channel and an exploit surface)"),
    Denied(("kexec_load", "kexec_file_load", "reboot"), "replacing or stopping the kernel"),
    Denied(("swapon", "swapoff"), "swap"),
    Denied(("init_module", "finit_module", "delete_module"), "kernel modules"),
    Denied(("userfaultfd",), "user page-fault handling (a staple of kernel race exploits)"),
    Denied(("io_uring_setup", "io_uring_enter", "io_uring_register"), "io_uring"),
    Denied(("open_by_handle_at",), "opening files by handle, around the mount table"),
    Denied(("acct", "quotactl", "syslog", "vhangup", "lookup_dcookie"), "host administration"),
    Denied(
        ("settimeofday", "clock_settime", "clock_adjtime", "adjtimex"), "setting the host clock"
    ),
    Denied(("iopl", "ioperm"), "raw I/O ports"),
)
# clone(2) flags that create namespaces; clone with any of them is refused.
CLONE_NAMESPACE_FLAGS: Final = (
    0x10000000  # CLONE_NEWUSER
    | 0x00020000  # CLONE_NEWNS
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x00000080  # CLONE_NEWTIME
)
_TIOCSTI: Final = 0x5412  # push characters into a terminal's input
_TIOCLINUX: Final = 0x541C


class SeccompUnavailable(Exception):
    """libseccomp cannot be loaded here; the message says what to install."""


def _library() -> Any:
    try:
        import pyseccomp
    except (ImportError, RuntimeError, OSError) as exc:
        raise SeccompUnavailable(
            f"libseccomp is not usable ({exc}); install Debian's libseccomp2 "
            "(apt-get install libseccomp2) and the pyseccomp package"
        ) from exc
    return pyseccomp


def build_filter() -> bytes:
    """The compiled BPF program (native architecture), ready for bwrap's `--seccomp`.

    Raises:
        SeccompUnavailable: libseccomp cannot be loaded here.
    """
    sc = _library()
    deny = sc.ERRNO(errno.EPERM)
    bpf = sc.SyscallFilter(sc.ALLOW)
    for entry in DENIED:
        for name in entry.syscalls:
            bpf.add_rule(deny, name)
    flag = 1
    while flag <= CLONE_NAMESPACE_FLAGS:
        if flag & CLONE_NAMESPACE_FLAGS:
            bpf.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        flag <<= 1
    bpf.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (_TIOCSTI, _TIOCLINUX):
        bpf.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(write_fd, "wb") as sink:
            bpf.export_bpf(sink)
        with os.fdopen(read_fd, "rb") as source:
            read_fd = -1
            return source.read()
    finally:
        if read_fd >= 0:
            os.close(read_fd)


def seccomp_problem() -> str | None:
    """None if the filter can be built here, else a sentence saying why not."""
    try:
        build_filter()
    except SeccompUnavailable as exc:
        return str(exc)
    return None
