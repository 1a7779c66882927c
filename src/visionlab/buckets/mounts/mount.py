"""mount: the flow that mounts a bucket (or reuses, or heals, its mount) and links it.

Order matters: everything that can fail without side effects (name, link path, rclone, FUSE,
config, credentials, the bucket answering) runs before anything is created, cheap checks before
expensive ones; every later step undoes what it created when it fails. Staging meets this flow
at one seam: `staging.prepare` (the listing and the free-space check) after the cheap checks of
the preflight, `staging.attach` once the mount is there, `staging.wait` for --wait."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Union

# rclone, fuse, rcconf, credentials and profiles (with subprocess, configparser, http.client
# behind them) are imported inside the functions that start or stop rclone: --status, --list and
# the already-mounted path never need them, and they cost ~15 ms of start-up.
from ..errors import BucketsError, LinkConflict, MountFailed, RemoteMismatch
from ..health.liveness import PROBE_TIMEOUT, answers, mounted_remote
from ..records import layout, links, names, state
from ..records.lock import bucket_lock
from ..system import mounttable, procs, slurm
from ..system.rcconf import DEFAULT_REMOTE
from . import scopes, teardown
from .mountinfo import MountInfo, status

if TYPE_CHECKING:
    from ..records import profiles
    from ..system import rclone
SLOW_PROBE_TIMEOUT = 10.0  # before a live rclone whose mount did not answer is taken for hung

PathLike = Union[str, "os.PathLike[str]"]


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


class _Request(NamedTuple):
    """A mount request, checked and resolved before anything is created."""

    bucket: str
    remote: str
    profile: Optional[str]  # None: keep the mount's profile, or the default for a new mount
    link: Path
    paths: layout.BucketPaths
    held: bool = False  # the caller runs under the mount and releases it (holds)
    stage: bool = False  # --stage: the copy is planned (listed, checked) after the preflight
    stage_prefix: str = ""


def _resolve_root(root_dir: Optional[PathLike]) -> Path:
    if root_dir is None:
        return layout.default_root(slurm.current() is not None)
    text = os.fspath(root_dir)
    if not text or "\0" in text:
        raise BucketsError(f"invalid root directory {text!r}", "pass an existing or creatable path")
    return Path(os.path.abspath(os.path.expanduser(text)))


def _request(bucket_name: str, root_dir: Optional[PathLike], remote: str,
             profile: Optional[str], held: bool, stage: bool, stage_prefix: str) -> _Request:
    """Parse and check the arguments; nothing is created, nothing is asked of the network."""
    bucket = names.parse(bucket_name)
    if profile is not None:
        from ..records import profiles

        if not profiles.get(profile).read_only and stage:
            raise BucketsError(f"--stage needs a read-only mount, not profile '{profile}'",
                               "drop --profile (staging mounts with 'dataset'), or pick 'dataset'")
    link = _resolve_root(root_dir) / bucket
    layout.check_private_dir(layout.runtime_dir())
    paths = layout.paths_for(bucket, scopes.mount_scope(bucket, held))
    try:
        links.check(link, paths.mount_point)
    except LinkConflict:
        if not _may_share(link, paths, stage) and not scopes.dead_link_of_ours(link, paths) \
                and links.target_of(link) != str(layout.stage_paths(bucket).current):
            raise
    return _Request(bucket=bucket, remote=remote, profile=profile, link=link, paths=paths,
                    held=held, stage=stage, stage_prefix=stage_prefix)


def _may_share(link: Path, paths: layout.BucketPaths, stage: bool) -> bool:
    """A staged request may use a link another live mount of ours has (staging.may_share)."""
    if not stage:
        return False
    from .. import staging

    return staging.may_share(link, paths)


def _check_same_remote(req: _Request, entry: mounttable.MountEntry,
                       st: Optional[state.MountState]) -> None:
    remote = mounted_remote(entry, st)
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


def _register(req: _Request) -> None:
    """Under the lock: the link, and this process's hold when it runs under the mount (so a
    holder ending meanwhile never unmounts it under us)."""
    _register_link(req.paths, req.link, req.stage)
    if req.held:
        from . import holds

        holds.take(req.paths)


def _register_link(paths: layout.BucketPaths, link: Path, staged: bool = False) -> list[Path]:
    """Create the link (or take over one left by an ended job) and record it in the state file
    (caller holds the lock). A `staged` request's link that another live mount of ours has (on
    the node's copy, or on that read-only mount) is recorded as it is: it moves to the copy."""
    st = state.load(paths.state)
    target = Path(st.staged) if st and st.staged else paths.mount_point
    if st and st.staged and links.target_of(link) == st.staged:
        created: list[Path] = []
    else:
        shared = _may_share(link, paths, staged)
        try:
            old = scopes.dead_link_of_ours(link, paths)
        except LinkConflict:
            if not shared:
                raise
            old = ""
        kept = shared or (old and links.retarget(link, old, target))
        try:
            created = [] if kept else links.create(link, target)
        except LinkConflict:  # another job's staged mount made it just now: shared as well
            if not _may_share(link, paths, staged):
                raise
            created = []
    links.forget_taken(layout.taken_links(), link)
    if st and str(link) not in st.symlinks:
        state.save(paths.state, st._replace(symlinks=[*st.symlinks, str(link)]))
    return created


def _reuse_live(req: _Request, locked: bool = False,
                probed: Optional[tuple] = None) -> Optional[MountResult]:
    """A live mount only gains a link (no rclone, no network). Checked once without the lock
    (cheap), then again under it before anything is written."""
    paths = req.paths
    entry = mounttable.find(str(paths.mount_point))
    if not entry:
        return None
    st = state.load(paths.state)
    probed = probed or mounttable.probe(str(paths.mount_point), PROBE_TIMEOUT)
    if not answers(paths, st, probed)[0]:
        return None
    _check_same_remote(req, entry, st)
    if not locked:
        layout.ensure_runtime(paths)
        with bucket_lock(paths.lock):  # the same mount still there? (its answer stands)
            return _reuse_live(req, locked=True, probed=probed)
    st = state.load(paths.state)
    _check_same_profile(req, st)
    _register(req)
    return MountResult(scope=scopes.scope_label(paths.scope), bucket=req.bucket, remote=req.remote,
                       link=req.link, mount_point=paths.mount_point,
                       profile=st.profile if st else "unknown", newly_mounted=False)


class _Ready(NamedTuple):
    spec: rclone.MountSpec
    profile: profiles.Profile


def _preflight(req: _Request) -> _Ready:
    """Everything that can fail before anything is created: rclone, FUSE, the remote, the
    credentials and one request to the bucket."""
    from ..records import profiles
    from ..system import credentials, fuse, platform, rcconf, rclone

    binary = rclone.find_rclone()
    fuse.check()
    st = state.load(req.paths.state)
    profile = profiles.get(req.profile or (st.profile if st else profiles.DEFAULT_PROFILE))
    if profile.min_rclone:
        rclone.require_version(binary, profile.min_rclone, f"profile '{profile.name}'",
                               "or pick another --profile")
    config = rcconf.config_path(binary)
    credentials.check(req.remote, rcconf.remote_config(req.remote, config))
    rclone.probe_bucket(binary, config, req.remote, req.bucket)
    paths = req.paths
    spec = rclone.MountSpec(binary=binary, config=config, remote=req.remote, bucket=req.bucket,
                            mount_point=paths.mount_point, log=paths.log, cache=paths.cache,
                            socket=paths.socket, flags=profile.flags_for(platform.is_linux()))
    return _Ready(spec=spec, profile=profile)


def _start_or_heal(req: _Request, ready: _Ready) -> MountResult:
    """Under the lock: take a dead mount away (keeping its cache), start rclone, link."""
    paths = req.paths
    st = state.load(paths.state)
    entry = mounttable.find(str(paths.mount_point))
    if entry and st and procs.is_alive(st.pid):
        # Its rclone runs but did not answer the quick probe: a slow rclone under load, or a
        # hung one. Only a hung one is taken away (that kills it): ask again, longer.
        probed = mounttable.probe(str(paths.mount_point), SLOW_PROBE_TIMEOUT)
        if probed[0]:
            reused = _reuse_live(req, locked=True, probed=probed)
            if reused:
                return reused
    healed = bool(entry or st)
    if healed:
        teardown.discard_dead_mount(paths, st)
    teardown.clear_ended_jobs(paths)
    new = _start(ready.spec, ready.profile.name)
    if st:  # links that moved to a staged copy stay there: the copy does not need the mount
        new = new._replace(symlinks=links.alive(st.symlinks, *layout.link_targets(paths, st)),
                           staged=st.staged)
    state.save(paths.state, new)
    try:
        _register(req)
    except BaseException:
        teardown.take_down(paths, new, lazy=False)
        raise
    return MountResult(scope=scopes.scope_label(paths.scope), bucket=req.bucket, remote=req.remote,
                       link=req.link, mount_point=paths.mount_point, profile=ready.profile.name,
                       newly_mounted=True, healed=healed)


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
    req = _request(bucket_name, root_dir, remote_name, profile, held, stage, stage_prefix)
    plan = ready = None
    if req.stage:  # where the mount flow meets staging, with attach() below
        from .. import staging

        # The cheap checks (FUSE, credentials, one request to the bucket) before the listing,
        # which takes minutes for a big bucket; both before anything is created.
        ready = _preflight(req)
        plan = staging.prepare(req.remote, req.bucket, req.stage_prefix)
    result = _reuse_live(req)
    if not result:
        ready = ready or _preflight(req)
        layout.ensure_runtime(req.paths)
        with bucket_lock(req.paths.lock):
            result = _reuse_live(req, locked=True) or _start_or_heal(req, ready)
    if plan is not None:
        from .. import staging

        staging.attach(plan, req.paths)
    return result


def wait_staged(bucket_name: str, progress: Optional[Callable[[object], None]] = None,
                poll: float = 0.1, result: Optional[MountResult] = None) -> MountInfo:
    """Block until the bucket's staged copy is ready and the links of this process's mount are
    on it (a copy whose stager died is resumed); raise when it failed."""
    from .. import staging

    if result is not None:
        paths = layout.paths_for(result.bucket, layout.scope_of(result.mount_point))
        remote = result.remote
    else:
        bucket = names.parse(bucket_name)
        paths = layout.paths_for(bucket, scopes.existing_scope(bucket))
        st = state.load(paths.state)
        remote = st.remote if st else DEFAULT_REMOTE
    staging.wait(paths, remote, progress, poll)
    return status(paths.bucket)


def _start(spec: rclone.MountSpec, profile: str) -> state.MountState:
    """Start rclone and wait until its mount answers; on any failure undo what was created."""
    from ..system import rclone

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
        if not rclone.wait_rc(spec.socket):
            raise MountFailed("rclone mounted but its control socket does not answer",
                              f"see {spec.log}")
    except BaseException:
        teardown.undo_start(spec, pid, made_dir)
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
