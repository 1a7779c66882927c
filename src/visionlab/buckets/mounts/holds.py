"""Processes running under a mount (`mount-bucket B -- CMD`, a program using the Python API):
one file each, named by pid, in <state dir>/<bucket>.holds/. A hold is taken under the bucket's
lock together with the link (mount._register), and the last holder of a SLURM job's mount that
it made unmounts it, deciding "last" under the same lock (unmount.unmount(release_hold=...)), so
a process that has just mounted never loses its mount to one that is just ending.

Outside SLURM a mount is this user's shared mount: nobody unmounts it on their way out.
The release at a holder's end (sync, then maybe unmount) is jobs/release.py's Hold, above mounts/.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..records import layout
from ..system import procs


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
