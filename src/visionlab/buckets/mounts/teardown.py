"""Taking mounts down: the three ways a mount goes away, and the dead-mount clean-up.

Three ways a mount goes away, each removing a known set of things:
  undo_start          a start that failed: our new rclone, its mount, the mount point if we
                      made it, the socket. State, links and cache were never touched.
  discard_dead_mount  a dead mount before healing or cleaning: the recorded rclone (if still
                      ours), the dead mount, the socket. Cache, state and links are kept.
  take_down           a mount going away for good: the mount, rclone, our links, the mount
                      point, state and socket. The cache is kept (it is the VFS cache).
clean_dead (unmounting a dead mount) and clear_ended_jobs (the dead mounts SLURM jobs that
ended left behind, before a new mount of the bucket) are built from the last two.

fuse, rclone and uploads are imported inside the functions that need them (see mount.py).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import BucketsError, BusyMount
from ..records import layout, links, state
from ..system import mounttable, procs
from . import scopes

if TYPE_CHECKING:
    from ..system import rclone


def undo_start(spec: rclone.MountSpec, pid: int, made_dir: bool) -> None:
    from ..system import fuse

    if pid and procs.is_alive(pid):
        procs.terminate(pid)
    if mounttable.find(str(spec.mount_point)):
        fuse.unmount(str(spec.mount_point), lazy=True)
    if made_dir:
        rmdir(spec.mount_point)
    state.remove(spec.socket)


def stop_recorded_rclone(paths: layout.BucketPaths, st: Optional[state.MountState]) -> None:
    """Stop the rclone in the state file, only if its command line proves it is ours."""
    from ..system import rclone

    if st and st.pid and rclone.is_mount_process(st.pid, st.remote, paths.bucket,
                                                 str(paths.mount_point)):
        procs.terminate(st.pid)


def discard_dead_mount(paths: layout.BucketPaths, st: Optional[state.MountState]) -> None:
    from ..system import fuse

    stop_recorded_rclone(paths, st)
    if mounttable.find(str(paths.mount_point)):
        result = fuse.unmount(str(paths.mount_point), lazy=False)
        if not result.ok:
            fuse.unmount(str(paths.mount_point), lazy=True)
    state.remove(paths.socket)


def detach(paths: layout.BucketPaths, lazy_if_busy: bool) -> bool:
    """Unmount the filesystem; True when that had to be lazy (busy, and allowed)."""
    from ..system import fuse

    target = str(paths.mount_point)
    if not mounttable.find(target):
        return False
    result = fuse.unmount(target, lazy=False)
    # Busy with no holder to name: a syscall still in flight (a probe that was waiting on a hung
    # rclone, say) holds the mount for a moment. Try again briefly before calling it busy.
    for _ in range(20):
        if result.ok or not mounttable.find(target):
            return False
        if not fuse.is_busy_error(result) or procs.holders(target, limit=1):
            break
        time.sleep(0.1)
        result = fuse.unmount(target, lazy=False)
    holder = procs.holders(target)
    if fuse.is_busy_error(result) or holder:
        if lazy_if_busy:
            fuse.unmount(target, lazy=True)
            return True
        who = ", ".join(procs.describe(h) for h in holder) or "a process"
        raise BusyMount(f"{target} is busy: used by {who}",
                        "close it (cd out of the bucket), or use --force for a lazy unmount")
    raise BucketsError(f"could not unmount {target}: {result.stderr.strip()}",
                       "try again, or use --force")


def take_down(paths: layout.BucketPaths, st: Optional[state.MountState], lazy: bool) -> list[str]:
    """After the filesystem is detached: wait for rclone, remove links, mount point, state."""
    if st and st.pid and not lazy and not procs.wait_exit(st.pid, 15):
        stop_recorded_rclone(paths, st)
    removed = links.remove_ours(scopes.unshared_links(paths, st),
                                *layout.link_targets(paths, st),
                                taken=layout.taken_links()) if st else []
    rmdir(paths.mount_point)
    rmdir(paths.holds)  # only when no process holds the mount any more (else not empty)
    state.remove(paths.state)
    state.remove(paths.socket)
    return removed


def rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)


def clean_dead(paths: layout.BucketPaths, st: Optional[state.MountState]) -> tuple[list[str], list[str]]:
    """Unmount a dead mount; its cache (with any files never uploaded) stays for the next one.
    Returns (our links removed, the files in its cache never uploaded)."""
    from ..uploads import pending as uploads

    discard_dead_mount(paths, st)
    removed = take_down(paths, st, lazy=False)
    return removed, uploads.unsaved(paths)


def clear_ended_jobs(paths: layout.BucketPaths) -> None:
    """Take away the dead mounts of `paths.bucket` left by SLURM jobs that ended on this node,
    with their links; a cache holding files never uploaded becomes the new mount's cache (if it
    has none of its own), so rclone uploads them once it starts.

    A scope counts as ended only when nobody holds its bucket lock (a job part-way through
    starting its mount holds it), its recorded rclone is gone, and its mount does not answer.
    """
    from ..health import liveness
    from ..records.lock import try_lock
    from ..uploads import pending as uploads

    for scope in layout.job_scopes():
        old = layout.paths_for(paths.bucket, scope)
        if scope == paths.scope or not os.path.exists(old.lock):
            continue
        with try_lock(old.lock) as free:
            if not free:
                continue  # that job is mounting or unmounting right now
            st = state.load(old.state)
            if st and procs.is_alive(st.pid):
                continue
            if liveness.is_live(old, st):
                continue
            if st or mounttable.find(str(old.mount_point)):
                discard_dead_mount(old, st)
                take_down(old, st, lazy=False)
            elif not uploads.unsaved(old):
                continue  # no mount, nothing unsaved: maybe a job creating its mount right now
            _adopt_cache(old, paths)
            state.remove(old.log)
            for directory in (old.cache.parent, old.mount_point.parent):
                rmdir(directory)


def _adopt_cache(old: layout.BucketPaths, paths: layout.BucketPaths) -> None:
    """An ended mount's cache with unsaved files becomes the new mount's (if that has none)."""
    import shutil

    from ..uploads import pending as uploads

    if not os.path.isdir(old.cache):
        return
    if uploads.unsaved(old) and not uploads.unsaved(paths):
        shutil.rmtree(paths.cache, ignore_errors=True)
        os.replace(old.cache, paths.cache)
    elif not uploads.unsaved(old):
        shutil.rmtree(old.cache, ignore_errors=True)
