"""Planning a copy before anything is created: the listing of what --stage copies, and the
free-space check (bytes and inodes, each with a margin), evicting unused copies of other buckets
when that makes the bytes fit."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import NamedTuple

from ..errors import BucketsError
from ..records import layout, state
from ..system import rclone
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


def new_folders(path: str, previous: str) -> int:
    """Folders of `path` that `previous` (the listing's line before) is not in: summed over a
    listing sorted by path, the number of folders it holds (a folder's objects are one run of
    the sorted listing); an upper bound when it is not sorted."""
    folders = path.split("/")[:-1]
    before = previous.split("/")[:-1]
    same = 0
    while same < min(len(folders), len(before)) and folders[same] == before[same]:
        same += 1
    return len(folders) - same


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


def listing_key(objects: list[rclone.ObjectInfo]) -> list[list]:
    return sorted([o.path, o.size, o.modified] for o in objects)


class Plan(NamedTuple):
    """A --stage request, checked before anything is created."""

    bucket: str
    remote: str
    prefix: str
    objects: list  # rclone.ObjectInfo of what the copy holds


def prepare(remote: str, bucket: str, prefix: str) -> Plan:
    """The listing of what --stage copies, after checking it fits: before anything is created."""
    from ..system import credentials, rcconf

    binary = rclone.find_rclone()
    config = rcconf.config_path(binary)
    credentials.check(remote, rcconf.remote_config(remote, config))
    prefix = prefix.strip("/")
    return Plan(bucket, remote, prefix, plan(binary, config, remote, bucket, prefix))


def plan(binary: str, config: Path, remote: str, bucket: str, prefix: str
         ) -> list[rclone.ObjectInfo]:
    """List what to copy and check it fits (with a margin) before anything is created."""
    layout.check_private_dir(layout.stage_root())  # never act on a directory others control
    objects = rclone.list_objects(binary, config, remote, bucket, prefix)
    paths = layout.stage_paths(bucket)
    have = {}
    with contextlib.suppress(OSError, ValueError):
        have = {(p, s, m) for p, s, m in json.loads(paths.listing.read_text())["objects"]}
    needed = sum(o.size for o in objects if (o.path, o.size, o.modified) not in have)
    previous = ""
    inodes = 0
    for o in sorted(objects):
        inodes += new_folders(o.path, previous) + ((o.path, o.size, o.modified) not in have)
        previous = o.path
    check_inodes(bucket, prefix, inodes)
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
    return objects


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
