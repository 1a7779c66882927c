"""sync and unmount: the flows that wait until what was written reached S3, then (unmount)
take the mount away: one bucket, every bucket of this user (`--all`), or every dead mount
(`--stale`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Union

# uploads, holds, staging and mountinfo are imported inside the functions that use them (the
# flows stay off the --status path: see mount.py).
from ..errors import BucketsError, NotMounted
from ..health.liveness import PROBE_TIMEOUT, answers, is_live, mounted_remote, still_serving
from ..records import layout, names, state
from ..records.lock import bucket_lock
from ..system import mounttable, procs
from . import scopes, teardown

if TYPE_CHECKING:
    from ..uploads import pending as uploads_mod

DRAIN_TIMEOUT = 600.0
Progress = Callable[["uploads_mod.UploadReport", float], None]


class UnmountResult(NamedTuple):
    bucket: str
    mount_point: str
    remote: Optional[str]
    was_stale: bool
    lazy: bool  # what was done: True only when the mount was busy and detached lazily
    removed_links: list[str]
    stranded: list[str] = []  # a dead mount's files never uploaded, kept in its cache


def sync(bucket_name: Optional[str] = None, timeout: float = DRAIN_TIMEOUT,
         progress: Optional[Callable[[str], uploads_mod.Progress]] = None,
         scope: Optional[str] = None) -> list[str]:
    """Wait until every upload queued so far reached S3: one bucket, or all live mounts of this
    user (inside a SLURM job: of this job). Returns the buckets synced; raises UploadsFailing /
    PendingUploads / NotMounted."""
    from ..uploads import pending as uploads

    layout.check_private_dir(layout.runtime_dir())
    if bucket_name is not None:
        bucket = names.parse(bucket_name)
        one = layout.paths_for(bucket, scopes.existing_scope(bucket) if scope is None else scope)
        if not is_live(one):
            raise NotMounted(f"{bucket} is not mounted (or its mount is dead)",
                             f"see 'mount-bucket --status {bucket}'")
        chosen = [one]
    else:
        found = scopes.all_paths(this_job_only=True)
        probes = mounttable.probe_all([str(p.mount_point) for p in found], PROBE_TIMEOUT)
        chosen = [p for p in found if is_live(p, probed=probes[str(p.mount_point)])]
    targets = []
    for paths in chosen:
        bucket = paths.bucket
        targets.append(bucket)
        try:
            uploads.wait_uploaded(paths, state.load(paths.state), timeout,
                                  progress(bucket) if progress else None)
        except OSError as exc:
            raise BucketsError(f"cannot ask rclone about {bucket}'s uploads ({exc})",
                               f"see 'mount-bucket --status {bucket}'") from exc
    return targets


def unmount(bucket_name: str, timeout: float = DRAIN_TIMEOUT, force: bool = False,
            progress: Optional[Progress] = None, scope: Optional[str] = None,
            release_hold: Optional[Path] = None) -> Optional[UnmountResult]:
    """Drain pending uploads, unmount, and remove the mount point and our symlinks.

    `release_hold`: drop this hold file first, and unmount only if no other live process
    holds the mount (decided under the bucket's lock); None when it was kept for them.
    """
    bucket = names.parse(bucket_name)
    paths = layout.paths_for(bucket, scopes.existing_scope(bucket) if scope is None else scope)
    base = layout.runtime_dir()
    not_mounted = NotMounted(f"{bucket} is not mounted", "see 'mount-bucket --list'")
    if not os.path.lexists(base):
        raise not_mounted
    layout.check_private_dir(base)
    if not os.path.lexists(paths.lock) and not mounttable.find(str(paths.mount_point)):
        raise not_mounted
    with bucket_lock(paths.lock):
        if release_hold is not None:
            from . import holds

            with contextlib.suppress(FileNotFoundError):
                release_hold.unlink()
            if holds.others(paths, release_hold):
                return None  # another process still runs under it
        result = _unmount_locked(paths, timeout, force, progress, not_mounted)
    from .. import staging

    staging.stop_for(bucket, paths.scope)  # a copy in progress ends with its mount (resumable)
    return result


def _unmount_locked(paths: layout.BucketPaths, timeout: float, force: bool,
                    progress: Optional[Progress], not_mounted: NotMounted) -> UnmountResult:
    bucket = paths.bucket
    st = state.load(paths.state)
    entry = mounttable.find(str(paths.mount_point))
    if not st and not entry:
        raise not_mounted
    remote = mounted_remote(entry, st) if entry else st.remote if st else None
    if entry and (answers(paths, st)[0] or still_serving(paths, st)):  # slow is not dead
        from ..uploads import pending as uploads

        try:
            uploads.wait_uploaded(paths, st, timeout, progress,
                                  again=f"unmount-bucket {bucket}")
        except OSError as exc:
            if st and st.pid and not procs.is_alive(st.pid):
                return _unmount_dead(paths, st, remote)  # rclone died just now
            if not force:
                left = uploads.unsaved(paths)
                named = f"; not yet uploaded: {', '.join(left)}" if left else ""
                raise BucketsError(
                    f"cannot ask rclone about pending uploads ({exc}){named}",
                    "the mount and its cache were left in place; run this again once rclone "
                    "answers, or use --force to unmount anyway (unsaved uploads may be lost)",
                ) from exc
        lazy = teardown.detach(paths, lazy_if_busy=force)
        removed = teardown.take_down(paths, st, lazy=lazy)
        left = [] if lazy else uploads.unsaved(paths)  # closed after the last look
        return UnmountResult(bucket=bucket, mount_point=str(paths.mount_point), remote=remote,
                             was_stale=False, lazy=lazy, removed_links=removed, stranded=left)
    return _unmount_dead(paths, st, remote)


def _unmount_dead(paths: layout.BucketPaths, st: Optional[state.MountState],
                  remote: Optional[str]) -> UnmountResult:
    """Unmount a dead mount; its cache (with any files never uploaded) stays for the next one."""
    removed, stranded = teardown.clean_dead(paths, st)
    return UnmountResult(bucket=paths.bucket, mount_point=str(paths.mount_point), remote=remote,
                         was_stale=True, lazy=False, removed_links=removed, stranded=stranded)


def left_unsaved(result: UnmountResult) -> BucketsError:
    """An unmount that left files never uploaded is no success: the error that names them."""
    shown = ", ".join(result.stranded[:10]) + (
        f" and {len(result.stranded) - 10} more" if len(result.stranded) > 10 else "")
    return BucketsError(f"{result.bucket}: {len(result.stranded)} file(s) never uploaded: {shown}",
                        "they are kept in the cache on this node; "
                        f"'mount-bucket {result.bucket}' uploads them")


def unmount_all(timeout: float = DRAIN_TIMEOUT, force: bool = False,
                progress: Optional[Callable[[str], Progress]] = None
                ) -> list[Union[UnmountResult, BucketsError]]:
    """Unmount every bucket of this user (inside a SLURM job: of this job); one failure does
    not stop the others."""
    if not os.path.lexists(layout.runtime_dir()):
        return []
    layout.check_private_dir(layout.runtime_dir())
    results: list[Union[UnmountResult, BucketsError]] = []
    for paths in scopes.own_paths():
        try:
            result = unmount(paths.bucket, timeout, force,
                             progress(paths.bucket) if progress else None, paths.scope)
            if result:
                results.append(result)
        except NotMounted:
            continue
        except BucketsError as exc:
            results.append(exc)
        except OSError as exc:  # one bucket's trouble must not stop the others
            results.append(BucketsError(f"{paths.bucket}: {exc.strerror or exc}",
                                        f"run 'unmount-bucket {paths.bucket}' again"))
    return results


def sweep_stale() -> list[UnmountResult]:
    """Clean every dead mount and orphaned rclone (by the pid in its state file) of this user,
    the dead mounts of ended SLURM jobs on this node included."""
    from . import mountinfo

    if not os.path.lexists(layout.runtime_dir()):
        return []
    layout.check_private_dir(layout.runtime_dir())
    cleaned = []
    for paths, info in mountinfo.described(scopes.all_paths()):
        if info.state != "stale":
            continue
        if mounttable.find(str(paths.mount_point)) and still_serving(paths, state.load(paths.state)):
            continue  # its rclone runs (slow, or hung): not dead; `unmount-bucket B` decides
        try:
            result = unmount(paths.bucket, scope=paths.scope)
        except NotMounted:
            continue
        if result:
            cleaned.append(result)
    return cleaned
