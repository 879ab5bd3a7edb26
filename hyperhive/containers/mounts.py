"""The sandbox's filesystem, as an allowlist: what the agent sees, and nothing else of the host.

- the system: `/usr` read-only, and `/bin`, `/sbin`, `/lib*` as the host has them (symlinks
  into `/usr` on merged-/usr hosts, read-only binds otherwise); `/nix/store` on a Nix host;
- a minimal `/etc`: the entries in `ETC_ALLOWED` that exist (resolver and name service
  configuration, certificates, the dynamic linker's cache, alternatives, time zone), read-only,
  plus four files the daemon writes for the agent: `passwd` and `group` (root, nobody and the
  agent itself, HOME /state/home), `hosts` and, with the user-mode network, `resolv.conf`.
  Never shadow, gshadow, sudoers, ssh host keys or anything else of the host's `/etc`;
- the Python and the installed hyperhive the harness runs from (`runtime_binds`), read-only at
  their own paths, with hyperhive's bytecode compiled first (`compile_runtime`): a sandbox
  cannot write ``__pycache__``, and a harness that compiles its modules at every start takes
  a tenth of a second longer to serve (docs/performance.md);
- `/state` (read-write), `/config` (read-only), `/run/hyperhive` (the socket directory), a
  private `/tmp` and `/dev/shm` (size-capped tmpfs), `/dev`, `/proc`;
- whatever the agent's `sandbox.json` binds on top.

No `/root`, `/home`, `/srv`, `/opt`, `/var`, `/mnt`, no other checkout or hive: they are not
hidden, they were never mounted.
"""

from __future__ import annotations

import compileall
import functools
import os
import sys
from pathlib import Path
from typing import Final

__all__ = [
    "ETC_ALLOWED",
    "MANAGER_GITCONFIG",
    "SYSTEM_LINKS",
    "compile_runtime",
    "etc_entries",
    "runtime_binds",
    "system_entries",
    "write_etc",
]

SYSTEM_LINKS: Final = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_ALLOWED: Final = (
    "alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "crypto-policies",
    "debian_version", "gai.conf", "gitconfig", "host.conf", "inputrc", "ld.so.cache",
    "ld.so.conf", "ld.so.conf.d", "localtime", "magic", "mime.types", "nsswitch.conf",
    "os-release", "pki", "protocols", "services", "ssl", "terminfo", "timezone",
)  # fmt: skip
GENERATED: Final = ("passwd", "group", "hosts", "resolv.conf", "gitconfig")
# The manager's /etc/gitconfig: it commits in its proposed repos as itself, and reads the
# applied repos (bound read-only, owned by the daemon) without git calling them dubious.
MANAGER_GITCONFIG: Final = (
    "[user]\n\tname = manager\n\temail = manager@hyperhive\n"
    "[safe]\n\tdirectory = *\n"
    "[init]\n\tdefaultBranch = main\n"
)

# (name, symlink target or None) for a top-level host entry
SystemEntry = tuple[str, str | None]


def system_entries(root: Path = Path("/")) -> list[SystemEntry]:
    """`/usr` and the host's `/bin`, `/lib*` links or directories (and `/nix`'s store)."""
    entries: list[SystemEntry] = [("usr", None)]
    for name in SYSTEM_LINKS:
        path = root / name
        if path.is_symlink():
            entries.append((name, os.readlink(path)))
        elif path.is_dir():
            entries.append((name, None))
    if (root / "nix" / "store").is_dir():
        entries.append(("nix/store", None))
    return entries


def etc_entries(etc: Path = Path("/etc")) -> list[SystemEntry]:
    """The allowed `/etc` entries that exist here (symlinks kept as symlinks)."""
    entries: list[SystemEntry] = []
    for name in ETC_ALLOWED:
        path = etc / name
        if path.is_symlink():
            entries.append((name, os.readlink(path)))
        elif path.exists():
            entries.append((name, None))
    return entries


def runtime_binds() -> list[Path]:
    """The directories the harness runs from that `/usr` does not already cover.

    The harness is this same interpreter running this same package: its installation
    (`sys.base_prefix`), its virtualenv (`sys.prefix`, which also holds the bundled `claude`
    binary) and the package directories of an editable install. Each is bound read-only at
    its own path; a directory inside another one is covered by it.
    """
    import actors
    import hyperhive

    candidates = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.executable).resolve().parent.parent,
        Path(hyperhive.__file__).resolve().parent,
        Path(actors.__file__).resolve().parent,
    }
    usr = Path("/usr")
    needed = {
        path.absolute()
        for path in candidates
        if path.exists() and path.absolute() != usr and usr not in path.absolute().parents
    }
    return [p for p in sorted(needed) if not any(o in p.parents for o in needed)]


@functools.cache
def compile_runtime() -> None:
    """Write the bytecode of hyperhive's own packages where it is missing or stale, once per
    daemon (an editable checkout has none for what only the harness imports; an installed one
    was compiled by pip). A directory the daemon cannot write is left as it is. Blocking."""
    import actors
    import hyperhive

    for package in (hyperhive, actors):
        compileall.compile_dir(Path(str(package.__file__)).parent, quiet=2)


def write_etc(
    directory: Path,
    *,
    name: str,
    uid: int,
    gid: int,
    user_network: bool,
    gitconfig: str | None = None,
) -> dict[str, Path]:
    """Write the generated `/etc` files for agent `name` into `directory` (daemon-owned).

    With `gitconfig` the sandbox's `/etc/gitconfig` is that text instead of the host's.
    Returns the file for each sandbox `/etc` name. Blocking: run off the trio thread.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    users = {0: ("root", "/root"), 65534: ("nobody", "/nonexistent")}
    users.setdefault(uid, ("agent", "/state/home"))
    passwd = "".join(
        f"{user}:x:{number}:{number if number != 65534 else 65534}:{user}:{home}:/bin/sh\n"
        for number, (user, home) in sorted(users.items())
    )
    groups = {0: "root", 65534: "nogroup"}
    groups.setdefault(gid, "agent")
    group = "".join(f"{label}:x:{number}:\n" for number, label in sorted(groups.items()))
    hosts = f"127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.1.1 {name}\n"
    files = {"passwd": passwd, "group": group, "hosts": hosts}
    if user_network:
        from hyperhive.containers.network import DNS_ADDRESS

        files["resolv.conf"] = f"nameserver {DNS_ADDRESS}\n"
    if gitconfig is not None:
        files["gitconfig"] = gitconfig
    else:
        (directory / "gitconfig").unlink(missing_ok=True)
    written = {}
    for label, text in files.items():
        path = directory / label
        scratch = path.with_name(label + ".tmp")
        scratch.write_text(text)
        scratch.chmod(0o644)
        os.replace(scratch, path)
        written[label] = path
    return written
