"""Starting and waiting: attach a mount to the copy in progress or start one (one stager per
bucket and node, under the stage lock), spawn the stager, take over a copy whose stager died,
and wait until this mount's links are on the complete copy."""

from __future__ import annotations

import os
import sys
import time

from ..errors import BucketsError, NotMounted
from ..records import layout
from ..records.lock import bucket_lock
from ..system import runner
from . import listing
from .plan import Plan
from .record import STAGER, StageState, copies, load, save
from .relink import keep_mount_link, move_links, switch_all

TAKEOVERS = 5  # a waiter restarts a copy whose stager died at most this many times


def attach(plan: Plan, mount: layout.BucketPaths) -> StageState:
    """The mount is there: join the copy in progress, or start one (one stager per bucket and
    node, decided under the stage's lock); when the copy in use is already up to date, the
    links move to it now."""
    paths = layout.stage_paths(plan.bucket)
    layout.ensure_private_dir(layout.stage_root())
    layout.ensure_private_dir(paths.root)
    with bucket_lock(paths.lock):
        keep_mount_link(plan.bucket, prefer=mount)
        return _start_locked(paths, plan, mount.scope)


def _start_locked(paths: layout.StagePaths, plan: Plan, mount_scope: str) -> StageState:
    bucket, prefix, totals = plan.bucket, plan.prefix, plan.totals
    running = load(paths)
    if running and running.state == "copying":
        return running  # one stager per bucket
    st = StageState(state="copying", files_total=totals.objects, bytes_total=totals.bytes,
                    path=str(paths.current), prefix=prefix, started_at=time.time(),
                    scope=mount_scope, remote=plan.remote)
    done = copies(paths)
    if (done and totals.unchanged and listing.identity(paths.listing) == plan.compared_with
            and os.path.realpath(paths.current) == str(done[-1])):
        # Unchanged since the copy in use was made (its listing is still the one the plan was
        # compared with): listed and compared, nothing to download, no copy process: the links
        # move now.
        switch_all(bucket, paths, done[-1])
        st = st._replace(state="ready", files_done=totals.objects, bytes_done=totals.bytes,
                         downloaded=0, warning=running.warning if running else "")
        save(paths, st)
        return st
    listing.save(plan.file, paths.listing.with_suffix(".new"))
    return _spawn(paths, bucket, st)


def _spawn(paths: layout.StagePaths, bucket: str, st: StageState) -> StageState:
    """Start the stager (caller holds the stage lock); it resumes whatever work/ holds."""
    save(paths, st)
    argv = [sys.executable, "-m", STAGER, bucket, st.remote, st.prefix,
            st.scope]
    pid = runner.spawn_detached(argv, str(paths.log))
    if pid is None:
        st = st._replace(state="failed", error="could not start the copy process")
    else:
        st = st._replace(pid=pid)
    save(paths, st)
    return st


def take_over(mount: layout.BucketPaths, remote: str) -> None:
    """The stager died (its job ended, or it was killed): start it again for `mount`, once
    however many waiters find it dead (under the stage lock). It resumes work/: nothing already
    downloaded is fetched again."""
    paths = layout.stage_paths(mount.bucket)
    with bucket_lock(paths.lock):
        found = load(paths)
        if not (found and found.died):
            return  # running again, or finished, meanwhile
        if not paths.listing.with_suffix(".new").exists():
            done = copies(paths)
            if not (done and paths.listing.exists()):
                raise BucketsError(f"staging {mount.bucket} cannot be resumed (its listing is "
                                   "gone)", f"run 'mount-bucket {mount.bucket} --stage' again")
            # It died after the copy was complete and in place, before its links all moved.
            switch_all(mount.bucket, paths, done[-1])
            save(paths, found._replace(state="ready", error=None, pid=0,
                                       files_done=found.files_total,
                                       bytes_done=found.bytes_total))
            return
        _spawn(paths, mount.bucket, found._replace(
            state="copying", pid=0, error=None, scope=mount.scope, remote=found.remote or remote))


def wait(mount: layout.BucketPaths, remote: str, progress=None, poll: float = 0.1) -> StageState:
    """Block until the bucket's copy is ready and this mount's links are on it. A copy whose
    stager died is taken over (resumed); a copy that failed otherwise raises."""
    paths = layout.stage_paths(mount.bucket)
    bucket, takeovers = mount.bucket, 0
    while True:
        found = load(paths)
        if found is None:
            raise NotMounted(f"{bucket} is not being staged", f"run 'mount-bucket {bucket} --stage'")
        if progress:
            progress(found)
        if found.state == "ready":
            move_links(mount, paths.current, timeout=180.0)
            return found
        if found.state == "failed":
            if found.died and takeovers < TAKEOVERS:
                takeovers += 1
                take_over(mount, remote)
                continue
            raise BucketsError(f"staging {bucket} failed: {found.error}",
                               f"the links stay on the mount; 'mount-bucket {bucket} --stage' "
                               "resumes the copy")
        time.sleep(poll)
