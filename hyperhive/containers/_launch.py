"""The first program of every sandbox: what bwrap cannot set, then exec bwrap. Stdlib only.

The daemon runs it (from its spawner thread) as

    python -I -S -B _launch.py PLAN -- PROGRAM ARGS...

where PLAN is one JSON object; every key is optional:

    {"go_fd": 7,                           first read one byte from this fd; at its end
                                           (the daemon gave the start up) run nothing
     "keyring": true,                      join a fresh anonymous session keyring
     "rlimits": {"NPROC": [512, 512]},     setrlimit, by RLIMIT_ name (the prlimit fallback)
     "cgroup": "/sys/fs/cgroup/.../alice", move into this cgroup (the cgroup v2 limits)
     "uid": 1900001, "gid": 1900001,       become this host user: an empty capability bounding
                                           set, no supplementary groups, setresgid, setresuid,
                                           no inheritable capabilities left
     "cwd": "/state"}                      then change into this directory (as that user)

then sets no_new_privs and executes PROGRAM in the same process. A root daemon runs it twice
per agent: outside the sandbox (keyring, limits, cgroup), so that bwrap's --die-with-parent
ties the sandbox to the daemon's spawner thread, and again as the sandbox's payload (the uid
step), with bwrap's seccomp filter already loaded and only the setuid capabilities kept.
Every sandboxed agent's payload starts with it for `go_fd` (an unprivileged daemon's only for
that): bwrap's `--block-fd` lets the payload run at the pipe's end too.
A step that fails ends the launch with status 127 and one line on stderr (the agent's log):
a half-walled sandbox never starts.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import sys

_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_KEYCTL_JOIN_SESSION_KEYRING = 1
_CAPABILITY_VERSION_3 = 0x20080522
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 271, "s390x": 280}


def _fail(what: str, exc: BaseException | str) -> None:
    sys.stderr.write(f"hyperhive launch: {what}: {exc}\n")
    sys.stderr.flush()
    os._exit(127)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result < 0:
        code = ctypes.get_errno()
        _fail(what, os.strerror(code))


def _join_fresh_keyring(libc: ctypes.CDLL) -> None:
    number = _SYS_KEYCTL.get(platform.machine())
    if number is None:
        _fail("keyring", f"no keyctl syscall number known for {platform.machine()}")
        return
    libc.syscall.restype = ctypes.c_long
    _check(
        libc.syscall(ctypes.c_long(number), ctypes.c_long(_KEYCTL_JOIN_SESSION_KEYRING), None),
        "keyring",
    )


def _set_limits(limits: dict[str, list[int]]) -> None:
    for name, (soft, hard) in limits.items():
        try:
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (soft, hard))
        except (AttributeError, ValueError, OSError) as exc:
            _fail(f"limit {name}", exc)


def _join_cgroup(path: str) -> None:
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as procs:
            procs.write(f"{os.getpid()}\n")
    except OSError as exc:
        _fail(f"cgroup {path}", exc)


def _become(libc: ctypes.CDLL, uid: int, gid: int) -> None:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            last_cap = int(handle.read())
    except (OSError, ValueError):
        last_cap = 63
    for cap in range(last_cap + 1):
        _check(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        _fail(f"becoming uid {uid}", exc)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
        _fail("becoming uid", "the ids did not change")
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (two words each): none
    _check(libc.capset(header, data), "clearing capabilities")


def _await_go(fd: int) -> None:
    try:
        got = os.read(fd, 1)
        os.close(fd)
    except OSError as exc:
        _fail("waiting for the daemon", exc)
    if got != b"1":
        _fail("start", "the daemon gave this start up; nothing runs")


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        _fail("usage", "_launch.py PLAN -- PROGRAM ARGS...")
    try:
        plan = json.loads(argv[1])
    except ValueError as exc:
        _fail("plan", exc)
    if plan.get("go_fd") is not None:
        _await_go(int(plan["go_fd"]))
    libc = _libc()
    if plan.get("keyring"):
        _join_fresh_keyring(libc)
    _set_limits(plan.get("rlimits") or {})
    if plan.get("cgroup"):
        _join_cgroup(plan["cgroup"])
    if plan.get("uid") is not None:
        _become(libc, int(plan["uid"]), int(plan["gid"]))
    if plan.get("cwd"):
        try:
            os.chdir(plan["cwd"])
        except OSError as exc:
            _fail(f"cannot enter {plan['cwd']}", exc)
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    program = argv[3:]
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        _fail(f"cannot run {program[0]}", exc)


if __name__ == "__main__":
    main(sys.argv)
