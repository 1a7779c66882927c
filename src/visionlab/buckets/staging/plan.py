"""Planning a copy before anything is created: the listing of what --stage copies, and the
free-space check (bytes and inodes, each with a margin), evicting unused copies of other buckets
when that makes the bytes fit."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import IO, NamedTuple

from ..errors import BucketsError
from ..records import layout, state
from ..system import rclone
from . import listing
from .record import load
from .removal import drop

MARGIN = 0.05  # free space needed beyond the bytes to download
MARGIN_MIN = 256 << 20
INODE_MARGIN = 0.05  # free inodes needed beyond one per file and folder to create
INODE_MARGIN_MIN = 1024  # and the stage dir's own files


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(_existing(path)).free


def _free_inodes(path: Path) -> int:
    """Inodes this user may still create there; -1 where the filesystem has no fixed number
    (f_files 0: btrfs, some network filesystems)."""
    found = os.statvfs(_existing(path))
    return found.f_favail if found.f_files else -1


def check_inodes(bucket: str, prefix: str, needed: int) -> None:
    """Refuse (one line, before anything is created) a copy whose files and folders do not fit
    in the inodes free in the stage dir, with a margin."""
    free = _free_inodes(layout.stage_root())
    want = needed + max(int(needed * INODE_MARGIN), INODE_MARGIN_MIN)
    if 0 <= free < want:
        raise BucketsError(
            f"{bucket}{'/' + prefix if prefix else ''} does not fit: {needed:,} files and folders "
            f"to create (+{want - needed:,} margin), {free:,} inodes free in {layout.stage_root()}",
            f"free inodes there, set {layout.STAGE_ENV} to a node-local disk with more inodes, "
            "or stage one prefix with --stage-prefix",
        )


class Plan(NamedTuple):
    """A --stage request, checked before anything is created."""

    bucket: str
    remote: str
    prefix: str
    file: IO[str]  # the listing (staging.listing's format), an unnamed temp file
    totals: listing.Totals
    compared_with: tuple  # the copy in use's listing when compared (listing.identity)


def prepare(remote: str, bucket: str, prefix: str) -> Plan:
    """The listing of what --stage copies, after checking it fits: before anything is created."""
    from ..system import credentials, rcconf

    binary = rclone.find_rclone()
    config = rcconf.config_path(binary)
    credentials.check(remote, rcconf.remote_config(remote, config))
    prefix = prefix.strip("/")
    return plan(binary, config, remote, bucket, prefix)


def plan(binary: str, config: Path, remote: str, bucket: str, prefix: str) -> Plan:
    """List what to copy (streamed to an unnamed temp file, compared with the copy in use's
    listing as it comes) and check it fits (bytes and inodes, with a margin) before anything is
    created."""
    layout.check_private_dir(layout.stage_root())  # never act on a directory others control
    paths = layout.stage_paths(bucket)
    old = listing.identity(paths.listing)
    objects = rclone.list_objects(binary, config, remote, bucket, prefix)
    found, totals = listing.write(objects, prefix, _existing(layout.stage_root()), paths.listing)
    try:
        check_inodes(bucket, prefix, totals.inodes)
        _check_bytes(bucket, prefix, totals.needed)
    except BaseException:
        found.close()
        raise
    return Plan(bucket, remote, prefix, found, totals, old)


def _check_bytes(bucket: str, prefix: str, needed: int) -> None:
    free = _free_bytes(layout.stage_root())
    want = needed + max(int(needed * MARGIN), MARGIN_MIN)
    if want > free:
        free = _evict_unused(bucket, want, free)
    if want > free:
        raise BucketsError(
            f"{bucket}{'/' + prefix if prefix else ''} does not fit: {needed / 1e9:,.2f} GB to copy "
            f"(+{(want - needed) / 1e9:,.2f} GB margin), {free / 1e9:,.2f} GB free in "
            f"{layout.stage_root()}",
            f"free space there, set {layout.STAGE_ENV} to a bigger node-local disk, or stage one "
            "prefix with --stage-prefix",
        )


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _in_use(bucket: str) -> bool:
    """Does a mount of ours (any scope) have its links on this bucket's staged copy?"""

    for scope in ["", *layout.job_scopes()]:
        st = state.load(layout.paths_for(bucket, scope).state)
        if st and st.staged:
            return True
    return False


def _evict_unused(bucket: str, want: int, free: int) -> int:
    """Staged copies are a cache: when `want` bytes do not fit, remove the least recently used
    copies no link uses (other buckets'), oldest first, but only if that makes it fit."""
    root = layout.stage_root()
    candidates = []
    for entry in root.iterdir() if root.is_dir() else []:
        if entry.name == bucket or entry.is_symlink() or not entry.is_dir():
            continue
        if entry.stat().st_uid != os.getuid() or not (entry / "stage.json").is_file():
            continue  # not a staged copy of ours: never evicted
        found = load(layout.stage_paths(entry.name))
        if (found and found.state == "copying") or _in_use(entry.name):
            continue
        candidates.append((found.updated_at if found else 0.0, entry.name, _size(entry)))
    if free + sum(size for *_rest, size in candidates) < want:
        return free
    for _used, name, _size_of in sorted(candidates):
        drop(name)
        free = _free_bytes(root)
        if free >= want:
            break
    return free
