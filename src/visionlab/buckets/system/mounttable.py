"""The OS mount table (/proc/self/mountinfo on Linux, `mount` on macOS) and a liveness probe."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from typing import NamedTuple, Optional


class MountEntry(NamedTuple):
    source: str  # e.g. "s3_remote:teamspace-lrm" (rclone's --devname)
    mount_point: str
    fstype: str  # e.g. "fuse.rclone", "nfs" (FUSE-T), "macfuse"


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 2:
            continue
        entries.append(MountEntry(_unescape(tail[1]), _unescape(fields[4]), tail[0]))
    return entries


_MACOS_LINE = re.compile(r"^(?P<source>.+?) on (?P<mp>/.*) \((?P<opts>[^()]*)\)$")


def parse_macos_mount(text: str) -> list[MountEntry]:
    """Parse macOS `mount` output: "<source> on <mount point> (<fstype>, <options>...)"."""
    entries = []
    for line in text.splitlines():
        match = _MACOS_LINE.match(line.strip())
        if not match:
            continue
        fstype = match.group("opts").split(",")[0].strip()
        source = match.group("source")
        # FUSE-T serves its mounts over a local NFS server: "fuse-t:/<source> on ... (nfs, ...)".
        if source.startswith("fuse-t:/"):
            source = source[len("fuse-t:/") :]
        entries.append(MountEntry(source, match.group("mp"), fstype))
    return entries


def read_table() -> list[MountEntry]:
    if sys.platform == "darwin":
        from . import runner

        result = runner.run(["/sbin/mount"], timeout=5)
        return parse_macos_mount(result.stdout)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def canonical(path: str) -> str:
    """The path as the mount table spells it: macOS shows /tmp as /private/tmp.

    Only the parent is resolved: resolving the mount point itself would stat a possibly dead mount.
    """
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(parent), name)


def find(mount_point: str, table: Optional[list[MountEntry]] = None) -> Optional[MountEntry]:
    """The last (topmost) entry mounted at `mount_point`, or None."""
    want = canonical(mount_point)
    found = None
    for entry in table if table is not None else read_table():
        if entry.mount_point == want:
            found = entry
    return found


def names_under(directory: str) -> list[str]:
    """Names of the mount points directly inside `directory`."""
    root = canonical(directory)
    found = []
    for entry in read_table():
        parent, name = os.path.split(entry.mount_point)
        if parent == root:
            found.append(name)
    return found


def probe_all(paths: list[str], timeout: float = 2.0) -> dict[str, tuple[bool, str]]:
    """Probe several paths at once: the whole call takes about `timeout` at most.

    Each stat runs in a daemon thread, abandoned if it never answers (a hung FUSE daemon); a
    thread pool would instead be joined at interpreter exit and hang the caller.
    """
    outcome: dict[str, tuple[bool, str]] = {}

    def _stat(path: str) -> None:
        try:
            os.stat(path)
            outcome[path] = (True, "")
        except OSError as exc:
            outcome[path] = (False, exc.strerror or str(exc))

    workers = [threading.Thread(target=_stat, args=(p,), name="visionlab-buckets-probe",
                                daemon=True) for p in paths]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    return {p: outcome.get(p, (False, f"no answer within {timeout:g}s")) for p in paths}


def probe(path: str, timeout: float = 2.0) -> tuple[bool, str]:
    """Does the filesystem at `path` answer a stat within `timeout` seconds? (alive, reason).

    A dead FUSE daemon answers ENOTCONN at once; a hung one never answers.
    """
    return probe_all([path], timeout)[path]


# Read-only bind mounts (Linux, root): a staged copy made read-only for root too. Files of mode
# 0444 stop everyone but root; a read-only mount stops root as well (EROFS).


def bind_read_only(path: str) -> str:
    """Mount `path` read-only onto itself; '' when done, else why not (then it stays as it was)."""
    from . import runner

    first = runner.run(["mount", "--bind", path, path], timeout=30)
    if not first.ok:
        return first.stderr.strip() or f"mount --bind exited {first.returncode}"
    second = runner.run(["mount", "-o", "remount,bind,ro", path], timeout=30)
    if not second.ok:
        runner.run(["umount", path], timeout=30)
        return second.stderr.strip() or f"mount -o remount,bind,ro exited {second.returncode}"
    return ""


def unbind(path: str) -> None:
    """Take every bind mount off `path` (lazily: readers of files open in it keep reading)."""
    from . import runner

    while find(path):
        if not runner.run(["umount", "-l", path], timeout=30).ok:
            return


def hard_link_tree(source: str, dest: str) -> bool:
    """Make `dest` a tree of hard links to the files of `source` (symlinks kept). A read-only
    bind mount on `source` forbids hard links out of it (EXDEV): then the links are made in a
    private mount namespace where it is not mounted. False when that is not possible."""
    from . import runner

    if not find(source):
        return False
    script = 'umount -l "$1" && cp -a --link "$1" "$2"'
    return runner.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                       "sh", source, dest], timeout=3600).ok
