"""Processes running under a mount (`mount-bucket B -- CMD`, a program using the Python API):
one file each, named by pid, in <state dir>/<bucket>.holds/. A hold is taken under the bucket's
lock together with the link (mounts._register), and the last holder of a SLURM job's mount that
it made unmounts it, deciding "last" under the same lock (mounts.unmount(release_hold=...)), so
a process that has just mounted never loses its mount to one that is just ending.

Outside SLURM a mount is this user's shared mount: nobody unmounts it on their way out.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Optional

from . import layout, procs
from .errors import BucketsError


def take(paths: layout.BucketPaths) -> Path:
    """Record this process as running under the mount (caller holds the bucket lock)."""
    layout.ensure_private_dir(paths.holds)
    hold = paths.holds / str(os.getpid())
    hold.touch(mode=0o600)
    return hold


def others(paths: layout.BucketPaths, mine: Path) -> bool:
    """Does any other live process hold the mount? Holds of processes that died are removed.
    (Caller holds the bucket lock.)"""
    try:
        entries = list(paths.holds.iterdir())
    except FileNotFoundError:
        return False
    found = False
    for entry in entries:
        if entry == mine:
            continue
        if entry.name.isdigit() and procs.is_alive(int(entry.name)):
            found = True
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
    return found


class Hold:
    """This process's hold on the mount of `result` (a mounts.MountResult)."""

    def __init__(self, result) -> None:
        self.result = result
        self.runtime = layout.runtime_dir()  # the environment it was made in
        self.paths = layout.paths_for(result.bucket, layout.scope_of(result.mount_point))
        self.file = self.paths.holds / str(os.getpid())

    def release(self, timeout: float, report: Callable[[str], None],
                progress: Optional[Callable] = None) -> bool:
        """Sync what was written, drop this hold, and unmount a SLURM job's mount this process
        made when no other process holds it. False when something failed (reported)."""
        from . import mounts
        from .lock import bucket_lock

        try:
            mounts.sync(self.result.bucket, timeout, progress, scope=self.paths.scope)
        except BucketsError as exc:
            report(f"error: {exc}")
            return False
        if self.result.newly_mounted and self.paths.scope:
            try:
                mounts.unmount(self.result.bucket, timeout, scope=self.paths.scope,
                               release_hold=self.file)
            except BucketsError as exc:
                report(f"error: {exc}")
                return False
            return True
        with bucket_lock(self.paths.lock), contextlib.suppress(FileNotFoundError):
            self.file.unlink()
        return True
