"""mount_bucket / unmount_bucket / is_mounted / list_mounts: the orchestration.

Order matters: everything that can fail without side effects (name, link path, rclone, FUSE,
config, credentials, the bucket answering) runs before anything is created; every later step
undoes what it created when it fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Union

from . import layout, links, mounttable, names, procs, state

# rclone, runner and profiles (with subprocess, configparser, http.client behind them) are imported
# inside the functions that start or stop rclone: --status, --list and the already-mounted path
# never need them, and they cost ~15 ms of start-up (bench/results.md, fast paths).
from .errors import (
    BucketsError,
    BusyMount,
    MountFailed,
    NotMounted,
    PendingUploads,
    RemoteMismatch,
)
from .lock import bucket_lock

if TYPE_CHECKING:
    from . import profiles, runner

DEFAULT_REMOTE = "s3_remote"
PROBE_TIMEOUT = 2.0
DRAIN_TIMEOUT = 600.0

PathLike = Union[str, "os.PathLike[str]"]
Progress = Callable[[dict[str, object], float], None]


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

    def to_dict(self) -> dict:
        return self._asdict()


class MountResult(NamedTuple):
    link: Path
    mount_point: Path
    remote: str
    newly_mounted: bool
    healed: bool = False


class UnmountResult(NamedTuple):
    bucket: str
    mount_point: str
    remote: Optional[str]
    was_stale: bool
    lazy: bool
    removed_links: list[str]


# ---------------------------------------------------------------------------- status


def _answers(paths: layout.BucketPaths, st: Optional[state.MountState],
             probed: Optional[tuple] = None) -> tuple:
    """(alive, reason): the mount answers a stat in time and its recorded rclone still runs."""
    alive, reason = probed or mounttable.probe(str(paths.mount_point), PROBE_TIMEOUT)
    if alive and st and st.pid and not procs.is_alive(st.pid):
        return False, f"rclone (pid {st.pid}) is gone"
    return alive, reason


def _info(bucket: str, paths: layout.BucketPaths, timeout: float,
          probed: Optional[tuple] = None) -> MountInfo:
    st = state.load(paths.state)
    entry = mounttable.find(str(paths.mount_point))
    remote, pid, profile = (st.remote, st.pid, st.profile) if st else (None, None, None)
    symlinks = links.alive(st.symlinks, paths.mount_point) if st else []
    condition, reason = "not-mounted", ""
    if entry:
        remote = entry.source.rsplit(":", 1)[0] if ":" in entry.source else remote
        alive, reason = _answers(paths, st, probed or mounttable.probe(str(paths.mount_point), timeout))
        condition = "alive" if alive else "stale"
    elif st:
        condition, reason = "stale", "not in the mount table (rclone exited)"
    return MountInfo(bucket, condition, str(paths.mount_point), remote, pid, profile, symlinks,
                     reason)


def status(bucket_name: str, timeout: float = PROBE_TIMEOUT) -> MountInfo:
    """The state of one bucket's mount, answered within about `timeout` seconds."""
    bucket = names.parse(bucket_name)
    layout.check_private_dir(layout.runtime_dir())
    return _info(bucket, layout.paths_for(bucket), timeout)


def is_mounted(bucket_name: str) -> bool:
    """True only when the bucket is in the mount table AND its mount answers a stat in time."""
    return status(bucket_name).state == "alive"


def _known_buckets() -> list[str]:
    base = layout.runtime_dir()
    found = set()
    meta = base / "buckets"
    if meta.is_dir():
        found.update(p.stem for p in meta.glob("*.json"))
    mount_root = mounttable.canonical(str(base / "rclone"))
    for entry in mounttable.read_table():
        parent, name = os.path.split(entry.mount_point)
        if parent == mount_root:
            found.add(name)
    return sorted(found)


def list_mounts(timeout: float = PROBE_TIMEOUT) -> list[MountInfo]:
    """Every bucket of this user with a mount or a state file; probes run in parallel."""
    base = layout.runtime_dir()
    if not os.path.lexists(base):
        return []
    layout.check_private_dir(base)
    buckets = _known_buckets()
    paths = {b: layout.paths_for(b) for b in buckets}
    probes = mounttable.probe_all([str(p.mount_point) for p in paths.values()], timeout)
    return [_info(b, paths[b], timeout, probes[str(paths[b].mount_point)]) for b in buckets]


# ---------------------------------------------------------------------------- mount


def _resolve_root(root_dir: Optional[PathLike]) -> Path:
    if root_dir is None:
        return layout.default_root()
    text = os.fspath(root_dir)
    if not text or "\0" in text:
        raise BucketsError(f"invalid root directory {text!r}", "pass an existing or creatable path")
    return Path(os.path.abspath(os.path.expanduser(text)))


def _check_same_remote(bucket: str, entry: mounttable.MountEntry, remote: str) -> None:
    wanted = f"{remote}:{bucket}"
    if entry.source != wanted:
        other = entry.source.rsplit(":", 1)[0]
        raise RemoteMismatch(
            f"{bucket} is already mounted from {entry.source}, not {wanted}",
            f"use --remote {other}, or run 'unmount-bucket {bucket}' first",
        )


def _check_same_profile(bucket: str, st: Optional[state.MountState], profile: Optional[str]) -> None:
    if profile and st and st.profile != profile:
        raise BucketsError(
            f"{bucket} is already mounted with profile '{st.profile}', not '{profile}'",
            f"run 'unmount-bucket {bucket}' first, or drop --profile",
        )


def _register_link(paths: layout.BucketPaths, link: Path) -> list[Path]:
    """Create the link and record it in the state file (caller holds the lock)."""
    created = links.create(link, paths.mount_point)
    st = state.load(paths.state)
    if st and str(link) not in st.symlinks:
        state.save(paths.state, st._replace(symlinks=[*st.symlinks, str(link)]))
    return created


def mount(bucket_name: str, root_dir: Optional[PathLike] = None,
          remote_name: str = DEFAULT_REMOTE, profile: Optional[str] = None) -> MountResult:
    """Mount (or reuse the mount of) a bucket and link it at <root_dir>/<bucket>."""
    from . import profiles

    bucket = names.parse(bucket_name)
    if profile is not None:
        profiles.get(profile)
    root = _resolve_root(root_dir)
    link = root / bucket
    paths = layout.paths_for(bucket)
    target = paths.mount_point
    layout.check_private_dir(layout.runtime_dir())
    links.check(link, target)

    # Fast path: a live mount only gains a link (no rclone, no network).
    entry = mounttable.find(str(target))
    if entry and _answers(paths, state.load(paths.state))[0]:
        _check_same_remote(bucket, entry, remote_name)
        layout.ensure_runtime(paths)
        with bucket_lock(paths.lock):
            if mounttable.find(str(target)) == entry:
                _check_same_profile(bucket, state.load(paths.state), profile)
                _register_link(paths, link)
                return MountResult(link, target, remote_name, newly_mounted=False)

    # Preflight: everything that can fail before anything is created.
    from . import rclone

    binary = rclone.find_rclone()
    rclone.check_fuse()
    cfg = rclone.remote_config(remote_name)
    rclone.check_credentials(remote_name, cfg)
    config = rclone.config_path()
    rclone.probe_bucket(binary, remote_name, bucket, config)

    layout.ensure_runtime(paths)
    with bucket_lock(paths.lock):
        st = state.load(paths.state)
        entry = mounttable.find(str(target))
        healed = False
        if entry and _answers(paths, st)[0]:
            _check_same_remote(bucket, entry, remote_name)  # someone mounted it meanwhile
            _check_same_profile(bucket, st, profile)
            _register_link(paths, link)
            return MountResult(link, target, remote_name, newly_mounted=False)
        if entry or st:
            _clear_stale(paths, st, entry)
            healed = True
        chosen = profiles.get(profile or (st.profile if st else profiles.DEFAULT_PROFILE))
        new = _start(binary, remote_name, bucket, paths, config, chosen)
        new = new._replace(symlinks=links.alive(st.symlinks, target) if st else [])
        state.save(paths.state, new)
        try:
            _register_link(paths, link)
        except BaseException:
            _stop(paths, new, lazy=False)
            raise
    return MountResult(link, target, remote_name, newly_mounted=True, healed=healed)


def mount_bucket(bucket_name: str, root_dir: Optional[PathLike] = None,
                 remote_name: str = DEFAULT_REMOTE, profile: Optional[str] = None) -> Path:
    """Mount `bucket_name` (once per user) and return the symlink <root_dir>/<bucket>."""
    return mount(bucket_name, root_dir, remote_name, profile).link


def _start(binary: str, remote: str, bucket: str, paths: layout.BucketPaths, config: Path,
           profile: profiles.Profile) -> state.MountState:
    from . import rclone, runner

    target = paths.mount_point
    made_dir = not os.path.lexists(target)
    if made_dir:
        os.mkdir(target, 0o700)
    state.remove(paths.socket)
    offset = paths.log.stat().st_size if paths.log.exists() else 0
    argv = rclone.mount_argv(binary, remote, bucket, target, config, paths.log, paths.cache,
                             paths.socket, profile.flags)
    pid = 0
    try:
        pid = runner.spawn_daemon(argv, str(paths.log))
        error = _wait_mounted(paths, pid, timeout=60)
        if error:
            detail = rclone.log_error(paths.log, offset) or error
            raise MountFailed(f"rclone could not mount {remote}:{bucket}: {detail}",
                              f"see the full log: {paths.log}")
        _wait_rc(paths.socket)
    except BaseException:
        _abort_start(paths, pid, made_dir)
        raise
    return state.MountState(
        bucket=bucket, remote=remote, mount_point=str(target), pid=pid,
        socket=str(paths.socket), cache_dir=str(paths.cache), log_file=str(paths.log),
        profile=profile.name, started_at=time.time(),
    )


def _wait_mounted(paths: layout.BucketPaths, pid: int, timeout: float) -> str:
    """Wait until rclone's mount is in the table and answers; '' when it does, else why not."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if mounttable.find(str(paths.mount_point)):
            alive, reason = mounttable.probe(str(paths.mount_point), 10)
            return "" if alive else f"the new mount does not answer ({reason})"
        if not procs.is_alive(pid):
            return "rclone exited before the mount was ready"
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return f"the mount was not ready after {timeout:g}s"


def _wait_rc(socket_path: Path) -> None:
    """rclone's control socket must answer: unmount relies on it to drain uploads."""
    from . import rclone

    for _ in range(100):
        try:
            rclone.rc_call(socket_path, "core/pid", timeout=2)
            return
        except OSError:
            time.sleep(0.05)
    raise MountFailed("rclone mounted but its control socket does not answer",
                      f"see {socket_path.with_suffix('.log')}")


def _abort_start(paths: layout.BucketPaths, pid: int, made_dir: bool) -> None:
    """Undo a failed start: stop our rclone, unmount, remove what we created."""
    if pid and procs.is_alive(pid):
        procs.terminate(pid)
    if mounttable.find(str(paths.mount_point)):
        _fuse_unmount(str(paths.mount_point), lazy=True)
    if made_dir:
        _rmdir(paths.mount_point)
    state.remove(paths.socket)


# ---------------------------------------------------------------------------- unmount


def _fuse_unmount(mount_point: str, lazy: bool) -> runner.Result:
    from . import rclone, runner

    if sys.platform == "darwin":
        argv = ["/sbin/umount", "-f", mount_point] if lazy else ["/sbin/umount", mount_point]
    else:
        argv = [*rclone.fusermount(), "-uz" if lazy else "-u", mount_point]
    return runner.run(argv, timeout=30)


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _kill_ours(st: Optional[state.MountState], source: str) -> None:
    """Stop the rclone recorded in the state file, if it is still ours and running."""
    if st and st.pid and procs.is_our_rclone(st.pid, source, st.mount_point):
        procs.terminate(st.pid)


def _clear_stale(paths: layout.BucketPaths, st: Optional[state.MountState],
                 entry: Optional[mounttable.MountEntry]) -> None:
    """Take a dead mount away; keep its cache (it may hold files not yet uploaded)."""
    source = entry.source if entry else f"{st.remote}:{paths.bucket}" if st else ""
    _kill_ours(st, source)
    if mounttable.find(str(paths.mount_point)):
        result = _fuse_unmount(str(paths.mount_point), lazy=False)
        if not result.ok:
            _fuse_unmount(str(paths.mount_point), lazy=True)
    state.remove(paths.socket)


def _drain(paths: layout.BucketPaths, timeout: float, progress: Optional[Progress]) -> None:
    """Wait until rclone has uploaded everything written through the mount."""
    from . import rclone

    deadline = time.monotonic() + timeout
    last_push = 0.0
    while True:
        now = time.monotonic()
        if now - last_push > 2.0:
            rclone.expedite_uploads(paths.socket)
            last_push = now
        pending = rclone.pending_uploads(paths.socket)
        total = int(pending["in_progress"]) + int(pending["queued"])  # type: ignore[arg-type]
        if total == 0:
            return
        remaining = deadline - now
        if progress:
            progress(pending, max(remaining, 0.0))
        if remaining <= 0:
            shown = ", ".join(pending["names"][:10]) or "unknown files"  # type: ignore[index]
            more = len(pending["names"]) - 10  # type: ignore[arg-type]
            if more > 0:
                shown += f" and {more} more"
            raise PendingUploads(
                f"{total} upload(s) still pending after {timeout:g}s: {shown}",
                "the mount and its cache were left in place; check the S3 endpoint and run "
                "unmount-bucket again (or a longer --timeout)",
            )
        time.sleep(0.2)


def _stop(paths: layout.BucketPaths, st: Optional[state.MountState], lazy: bool) -> list[str]:
    """Unmount, wait for rclone, remove mount point, our links and the state."""
    target = paths.mount_point
    if mounttable.find(str(target)):
        result = _fuse_unmount(str(target), lazy=lazy)
        if not result.ok and mounttable.find(str(target)):
            holder = procs.holders(str(target))
            who = ", ".join(procs.describe(h) for h in holder) or "a process"
            if "busy" in result.stderr.lower() or holder:
                raise BusyMount(
                    f"{target} is busy: used by {who}",
                    "close it (cd out of the bucket), or use --force for a lazy unmount",
                )
            raise BucketsError(f"could not unmount {target}: {result.stderr.strip()}",
                               "try again, or use --force")
    if st and st.pid and not lazy and not procs.wait_exit(st.pid, 15):
        _kill_ours(st, f"{st.remote}:{paths.bucket}")
    removed = links.remove_ours(st.symlinks, target) if st else []
    _rmdir(target)
    state.remove(paths.state)
    state.remove(paths.socket)
    return removed


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
        remote = st.remote if st else entry.source.rsplit(":", 1)[0] if entry else None
        alive = bool(entry) and _answers(paths, st)[0]
        if alive:
            try:
                _drain(paths, timeout, progress)
            except OSError as exc:
                if not force:
                    raise BucketsError(
                        f"cannot ask rclone about pending uploads ({exc})",
                        "use --force to unmount anyway (unsaved uploads may be lost)",
                    ) from exc
            removed = _stop(paths, st, lazy=force and _busy(paths))
            return UnmountResult(bucket, str(paths.mount_point), remote, False, force, removed)
        _clear_stale(paths, st, entry)
        removed = _stop(paths, st, lazy=False)
        return UnmountResult(bucket, str(paths.mount_point), remote, True, False, removed)


def _busy(paths: layout.BucketPaths) -> bool:
    return bool(procs.holders(str(paths.mount_point), limit=1))


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
