"""Ending and removing copies: stop a copy in progress (when the mount it was staged for goes away
and no other mount of the bucket is there), remove a finished copy, drop a bucket's stage dir."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path

from ..errors import LockTimeout
from ..records import layout, state
from ..system import mounttable, procs
from .record import STAGERS, copies, load, scopes
from .relink import keep_mount_link, links_back


def _is_stager(pid: int) -> bool:
    return bool(STAGERS & set(procs.command_line(pid).split())) and \
        procs.owner_uid(pid) == os.getuid()


def stop_for(bucket: str, scope: str) -> None:
    """The mount of `scope` went away: end a copy in progress that was staged for it, unless
    another mount of the bucket on this node is still there (another job may be waiting for the
    copy; if the copy's process ends with its job, a waiter resumes it), and move the stage
    dir's `mount` link to a mount still there."""
    if not layout.stage_paths(bucket).state.exists():
        return
    st = load(layout.stage_paths(bucket))
    if st and st.scope == scope and not _other_mounts(bucket, scope):
        stop(bucket)
    keep_mount_link(bucket)


def _other_mounts(bucket: str, scope: str) -> bool:
    """Is a mount of `bucket` in another scope still there (its rclone running)?"""
    for other in scopes():
        if other != scope:
            st = state.load(layout.paths_for(bucket, other).state)
            if st and procs.is_alive(st.pid):
                return True
    return False


def stop(bucket: str) -> None:
    """End a copy in progress (the stager and its rclone: one process group)."""
    st = load(layout.stage_paths(bucket))
    if st and st.state == "copying" and st.pid and procs.is_alive(st.pid) and _is_stager(st.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(st.pid, signal.SIGTERM)
        if not procs.wait_exit(st.pid, 10):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(st.pid, signal.SIGKILL)


def remove_copy(copy: Path) -> None:
    """Remove one finished copy: its read-only bind mount (root) first, then its files."""

    mounttable.unbind(str(copy))
    for dirpath, _dirs, _files in os.walk(copy):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o700)
    shutil.rmtree(copy, ignore_errors=True)


def drop(bucket: str) -> bool:
    """Remove a bucket's staged copy (a copy in progress is stopped first). True if one was there."""
    layout.check_private_dir(layout.stage_root())
    paths = layout.stage_paths(bucket)
    if not (paths.root / "stage.json").exists():
        return False
    stop(bucket)
    for scope in scopes():  # links still on the copy (other jobs') go back to their mounts
        mount = layout.paths_for(bucket, scope)
        if os.path.exists(mount.state):
            with contextlib.suppress(LockTimeout, OSError):
                links_back(mount, paths.current)
    for copy in copies(paths):
        remove_copy(copy)
    for dirpath, dirnames, _files in os.walk(paths.root):
        for name in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, name), 0o700)
    shutil.rmtree(paths.root, ignore_errors=True)
    return True
