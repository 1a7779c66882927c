"""Staged copies (`mount-bucket B --stage`): the bucket (or one prefix of it) copied to
node-local disk in the background while the mount serves reads, then every link of the bucket
moved to the copy at once. This module plans a copy (listing, free space), starts the stager
process, reads and ends its state; stager.py is the process itself.

One copy per node and user, shared by every mount of the bucket on the node (this user's own,
and each SLURM job's or step's): concurrent --stage calls start one stager (the stage lock);
when the copy is ready, the links of every read-only mount of the bucket move to it (each
under its mount's lock); a waiter (--wait) makes sure its own links are on it, and takes over a
copy whose stager died (its job ended) by resuming the work directory.

The mount flow calls this module at one seam: `prepare` before anything is created (listing,
free space, may the link be shared), `attach` once the mount is there, `wait` for --wait.

    <stage root>/<bucket>/         $VISIONLAB_BUCKETS_STAGE_DIR, else <runtime>/stage
      current -> copy-<n>          the verified copy the links point at (swapped atomically)
      copy-<n>/                    read-only: files 0444, directories 0555
      work/                        the copy being made; kept when interrupted (resumed)
      stage.json  listing.json  copy.log  copy.sock  stage.lock
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple, Optional

from . import layout, links, mounttable, procs, rclone, runner, state
from .errors import BucketsError, LockTimeout, NotMounted
from .lock import bucket_lock

MARGIN = 0.05  # free space needed beyond the bytes to download
MARGIN_MIN = 256 << 20
TAKEOVERS = 5  # a waiter restarts a copy whose stager died at most this many times
SWITCH_LOCK_TIMEOUT = 30.0  # the stager waits this long for a mount's lock to move its links


class StageState(NamedTuple):
    state: str  # "copying", "ready" or "failed"
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    path: str = ""  # the local copy (the `current` symlink the links point at)
    error: Optional[str] = None
    prefix: str = ""
    pid: int = 0  # the stager process
    downloaded: int = 0  # objects fetched by the last run (0: the copy was up to date)
    scope: str = ""  # the scope of the mount it was staged for (its unmount stops the copy)
    started_at: float = 0.0
    updated_at: float = 0.0
    remote: str = ""
    died: bool = False  # (not saved) "failed" because the stager was killed: a waiter resumes it
    warning: str = ""  # e.g. root could not make the copy read-only (no bind mounts here)

    def to_dict(self) -> dict:
        keys = ("state", "files_done", "files_total", "bytes_done", "bytes_total", "path", "error")
        return {k: getattr(self, k) for k in keys}

    def describe(self, bucket: str) -> str:
        """One line for --status / --list."""
        size = f"{self.bytes_done / 1e6:,.0f}/{self.bytes_total / 1e6:,.0f} MB"
        if self.state == "copying":
            return f"staging: {self.files_done}/{self.files_total} files, {size} -> {self.path}"
        if self.state == "ready":
            note = f" — warning: {self.warning}" if self.warning else ""
            return (f"staged: {self.files_total} files, {self.bytes_total / 1e6:,.0f} MB local at "
                    f"{self.path}{note}")
        return f"staging failed: {self.error} — 'mount-bucket {bucket} --stage' resumes it"


def load(paths: layout.StagePaths) -> Optional[StageState]:
    try:
        with open(paths.state, encoding="utf-8") as f:
            data = json.load(f)
        found = StageState(**data)
    except (OSError, ValueError, TypeError):
        return None
    if found.state == "copying" and found.pid and not procs.is_alive(found.pid):
        return found._replace(state="failed", died=True,
                              error=f"the copy process (pid {found.pid}) ended before finishing "
                              "(killed, or its SLURM job ended)")
    return found


def save(paths: layout.StagePaths, st: StageState) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=paths.root, prefix=".stage.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(st._replace(updated_at=time.time(), died=False)._asdict(), f)
    os.replace(tmp, paths.state)


def _free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def _listing_key(objects: list[rclone.ObjectInfo]) -> list[list]:
    return sorted([o.path, o.size, o.modified] for o in objects)


class Plan(NamedTuple):
    """A --stage request, checked before anything is created."""

    bucket: str
    remote: str
    prefix: str
    objects: list  # rclone.ObjectInfo of what the copy holds


def prepare(remote: str, bucket: str, prefix: str) -> Plan:
    """The listing of what --stage copies, after checking it fits: before anything is created."""
    from . import credentials, rcconf

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
    from . import state

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


def copies(paths: layout.StagePaths) -> list[Path]:
    """The finished copies of a bucket, oldest first."""
    return sorted(paths.root.glob("copy-*"), key=lambda p: int(p.name.split("-")[1]))


def _read_only(profile: str) -> bool:
    from . import profiles

    try:
        return profiles.get(profile).read_only
    except BucketsError:
        return False


def _scopes() -> list[str]:
    return ["", *layout.job_scopes()]


def may_share(link: Path, mine: layout.BucketPaths) -> bool:
    """May a staged mount use `link` that another mount of ours has? Yes when it points at the
    node's copy (it outlives every job), or at another live read-only mount of this bucket (it
    moves to the copy once ready, and to this mount if that one goes first). "Live" here is
    in the mount table with its rclone running, not a stat probe: under load a probe can time
    out here and answer in time for the caller's next check, which would then refuse the link."""
    target = links.target_of(link)
    if target and target == str(layout.stage_paths(mine.bucket).current):
        return True
    for scope in _scopes():
        other = layout.paths_for(mine.bucket, scope)
        if scope != mine.scope and target == str(other.mount_point):
            st = state.load(other.state)
            return bool(st and _read_only(st.profile) and procs.is_alive(st.pid)
                        and mounttable.find(target))
    return False


def move_links(mount: layout.BucketPaths, current: Path,
               timeout: float = SWITCH_LOCK_TIMEOUT) -> None:
    """Under the mount's lock: each link of a read-only mount that points at a mount of ours
    (this one, or another job's it shares) moves to `current` (one atomic rename), a link that
    another mount's end took away is made again, and the mount is marked staged."""
    with bucket_lock(mount.lock, timeout):
        st = state.load(mount.state)
        if not st or not _read_only(st.profile):
            return
        ours = {str(layout.paths_for(mount.bucket, scope).mount_point) for scope in _scopes()}
        for link in map(Path, st.symlinks):
            target = links.target_of(link)
            if target in ours:
                links.replace(link, current)
            elif not os.path.lexists(link) and link.parent.is_dir():
                with contextlib.suppress(OSError):
                    os.symlink(current, link)
        if st.staged != str(current):
            state.save(mount.state, st._replace(staged=str(current)))


def _links_back(mount: layout.BucketPaths, current: Path) -> None:
    """Under the mount's lock: its links on `current` move back to the mount (one atomic
    rename each), before the copy goes away."""
    with bucket_lock(mount.lock, SWITCH_LOCK_TIMEOUT):
        st = state.load(mount.state)
        if not st or not st.staged:
            return
        for link in st.symlinks:
            links.retarget(Path(link), str(current), mount.mount_point)
        state.save(mount.state, st._replace(staged=""))


def switch_all(bucket: str, paths: layout.StagePaths, new_copy: Path) -> None:
    """Point `current` at the new copy (one atomic rename), then the links of every read-only
    mount of the bucket on this node, in every scope, at `current` (each one atomic): no link is
    ever missing or half-copied. A mount busy beyond the timeout moves its links later (its
    waiter, or its next --stage)."""
    links.replace(paths.current, new_copy.name)
    for scope in _scopes():
        mount = layout.paths_for(bucket, scope)
        if os.path.exists(mount.state):
            with contextlib.suppress(LockTimeout, OSError):
                move_links(mount, paths.current)


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


def keep_mount_link(bucket: str, prefer: Optional[layout.BucketPaths] = None) -> None:
    """Keep the stage dir's `mount` link (what a prefix copy's other entries lead through) on a
    live mount of the bucket: `prefer`, else any scope's. Called when a mount joins and when
    one goes away; a mount that answers is left as it is."""
    from .liveness import is_live

    paths = layout.stage_paths(bucket)
    target = links.target_of(paths.mount)
    if not target and prefer is None:
        return  # no prefix copy made yet: nothing leads through it
    candidates = [prefer] if prefer else []
    candidates += [layout.paths_for(bucket, scope) for scope in _scopes()]
    for mount in candidates:
        if target == str(mount.mount_point) and is_live(mount):
            return
    for mount in candidates:
        if os.path.exists(mount.state) and is_live(mount):
            links.replace(paths.mount, mount.mount_point)
            return


def _start_locked(paths: layout.StagePaths, plan: Plan, mount_scope: str) -> StageState:
    bucket, prefix, objects = plan.bucket, plan.prefix, plan.objects
    running = load(paths)
    if running and running.state == "copying":
        return running  # one stager per bucket
    listing = {"prefix": prefix, "objects": _listing_key(objects)}
    total = sum(o.size for o in objects)
    st = StageState(state="copying", files_total=len(objects), bytes_total=total,
                    path=str(paths.current), prefix=prefix, started_at=time.time(),
                    scope=mount_scope, remote=plan.remote)
    done = copies(paths)
    with contextlib.suppress(OSError, ValueError):
        if (done and json.loads(paths.listing.read_text()) == listing
                and os.path.realpath(paths.current) == str(done[-1])):
            # Unchanged since the copy in use was made: listed and compared, nothing to
            # download, no copy process: the links move now.
            switch_all(bucket, paths, done[-1])
            st = st._replace(state="ready", files_done=len(objects), bytes_done=total,
                             downloaded=0, warning=running.warning if running else "")
            save(paths, st)
            return st
    with open(paths.listing.with_suffix(".new"), "w", encoding="utf-8") as f:
        json.dump(listing, f)
    return _spawn(paths, bucket, st)


def _spawn(paths: layout.StagePaths, bucket: str, st: StageState) -> StageState:
    """Start the stager (caller holds the stage lock); it resumes whatever work/ holds."""
    save(paths, st)
    argv = [sys.executable, "-m", "visionlab.buckets.stager", bucket, st.remote, st.prefix,
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


def _is_stager(pid: int) -> bool:
    return "visionlab.buckets.stager" in procs.command_line(pid) and \
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
    for other in _scopes():
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
    from . import mounttable

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
    for scope in _scopes():  # links still on the copy (other jobs') go back to their mounts
        mount = layout.paths_for(bucket, scope)
        if os.path.exists(mount.state):
            with contextlib.suppress(LockTimeout, OSError):
                _links_back(mount, paths.current)
    for copy in copies(paths):
        remove_copy(copy)
    for dirpath, dirnames, _files in os.walk(paths.root):
        for name in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, name), 0o700)
    shutil.rmtree(paths.root, ignore_errors=True)
    return True
