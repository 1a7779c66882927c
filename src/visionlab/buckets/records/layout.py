"""Where things live, and creating the private directories safely.

    <runtime>/                     0700, ours, not a symlink (default /tmp/<user>)
      rclone/<bucket>/             the mount point
      buckets/<bucket>.lock|.json|.log|.sock
      buckets/cache/<bucket>/      rclone's VFS cache for that bucket
      buckets/completion/<remote>.json   the cached bucket listing for shell completion
      buckets/taken/<hash>         a link our code removed (a mount going away): only such a
                                   link is made again when a staged copy becomes ready
      jobs/<scope>/rclone|buckets/...  the same, for the mounts of one SLURM job (scope "<job>")
                                   or one srun step ("<job>.<step>"): they live as long as it

The one module that knows these paths: others ask it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional

from ..errors import UnsafePath

if TYPE_CHECKING:
    from .state import MountState

RUNTIME_ENV = "VISIONLAB_BUCKETS_RUNTIME_DIR"
STAGE_ENV = "VISIONLAB_BUCKETS_STAGE_DIR"
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100


def user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def runtime_dir() -> Path:
    override = os.environ.get(RUNTIME_ENV)
    if override:
        return Path(os.path.abspath(os.path.expanduser(override)))
    return Path("/tmp") / user_name()


def default_root(in_slurm_job: bool) -> Path:
    """~/s3_buckets, or <runtime>/s3_buckets inside a SLURM job (home is often a slow NFS).
    Whether we are in one is system.slurm's to say (`slurm.current()`), not this module's."""
    if in_slurm_job:
        return runtime_dir() / "s3_buckets"
    return Path.home() / "s3_buckets"


class BucketPaths(NamedTuple):
    bucket: str
    scope: str
    mount_point: Path
    lock: Path
    state: Path
    log: Path
    socket: Path
    cache: Path
    holds: Path  # one file per process running under the mount (`mount-bucket B -- CMD`)


def scope_dir(scope: str = "") -> Path:
    """The tree of one scope: "" for this user's own mounts, else a SLURM job's or step's."""
    return runtime_dir() / "jobs" / scope if scope else runtime_dir()


def scope_of(mount_point: Path) -> str:
    """The scope a mount point of ours belongs to ('' for this user's own)."""
    parent = Path(mount_point).parent.parent
    return parent.name if parent.parent == runtime_dir() / "jobs" else ""


def job_scopes() -> list[str]:
    """The SLURM scopes with a tree under the runtime dir (running jobs or ended ones)."""
    jobs = runtime_dir() / "jobs"
    try:
        return sorted(p.name for p in jobs.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def state_dir(scope: str = "") -> Path:
    return scope_dir(scope) / "buckets"


def mount_root(scope: str = "") -> Path:
    """The directory holding the mount points (only mount points live there)."""
    return scope_dir(scope) / "rclone"


def paths_for(bucket: str, scope: str = "") -> BucketPaths:
    base = scope_dir(scope)
    meta = state_dir(scope)
    return BucketPaths(
        bucket=bucket,
        scope=scope,
        mount_point=base / "rclone" / bucket,
        lock=meta / f"{bucket}.lock",
        state=meta / f"{bucket}.json",
        log=meta / f"{bucket}.log",
        socket=meta / f"{bucket}.sock",
        cache=meta / "cache" / bucket,
        holds=meta / f"{bucket}.holds",
    )


def link_targets(paths: BucketPaths, st: Optional[MountState]) -> list[Path]:
    """What our links of this mount point at: the mount, and a staged copy once they moved."""
    return [paths.mount_point, *([Path(st.staged)] if st and st.staged else [])]


def recorded_buckets(scope: str = "") -> list[str]:
    """Buckets with a state file (a mount of ours, alive or not)."""
    meta = state_dir(scope)
    return sorted(p.stem for p in meta.glob("*.json")) if meta.is_dir() else []


def taken_links() -> Path:
    """The record of the links our code removed when a mount went away (one file per link),
    the only vanished links a staged copy may make again: one the user removed stays removed."""
    return state_dir() / "taken"


def completion_cache(remote: str) -> Path:
    """The cached bucket listing of `remote` for shell completion (not a state file)."""
    return state_dir() / "completion" / f"{remote}.json"


class StagePaths(NamedTuple):
    """A bucket's local copy (`--stage`): <stage root>/<bucket>/..."""

    root: Path
    current: Path  # a symlink to the verified copy in use: links point here
    work: Path  # the copy being made (kept across interruptions: the next stage resumes)
    state: Path
    listing: Path  # the listing the copy is checked against
    log: Path
    socket: Path
    lock: Path
    mount: Path  # a symlink to a live mount of the bucket: a prefix copy's other entries use it


def stage_root() -> Path:
    """Node-local disk for staged copies: $VISIONLAB_BUCKETS_STAGE_DIR, else <runtime>/stage."""
    override = os.environ.get(STAGE_ENV)
    if override:
        return Path(os.path.abspath(os.path.expanduser(override)))
    return runtime_dir() / "stage"


def stage_paths(bucket: str) -> StagePaths:
    base = stage_root() / bucket
    return StagePaths(root=base, current=base / "current", work=base / "work",
                      state=base / "stage.json", listing=base / "listing.json",
                      log=base / "copy.log", socket=base / "copy.sock", lock=base / "stage.lock",
                      mount=base / "mount")


def check_private_dir(path: Path) -> None:
    """Raise UnsafePath unless `path` is a real directory, ours, with no access for others."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(
            f"{path} is a symlink; refusing to follow it",
            f"remove it, or set {RUNTIME_ENV} to a directory you own",
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path} is not a directory", f"remove it, or set {RUNTIME_ENV}")
    if st.st_uid != os.getuid():
        raise UnsafePath(
            f"{path} is owned by uid {st.st_uid}, not by you",
            f"set {RUNTIME_ENV} to a directory you own",
        )
    if st.st_mode & 0o077:
        raise UnsafePath(
            f"{path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o})",
            f"run 'chmod 700 {path}', or set {RUNTIME_ENV}",
        )


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and missing parents below an existing one) as 0700 dirs, then check it."""
    check_private_dir(path)
    if not os.path.lexists(path):
        parent = path.parent
        if not parent.exists():
            ensure_private_dir(parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    check_private_dir(path)
    return path


def ensure_runtime(paths: BucketPaths) -> None:
    """Create the runtime tree for one bucket, checking every directory we own on the way."""
    base = runtime_dir()
    ensure_private_dir(base)
    if paths.scope:
        ensure_private_dir(base / "jobs")
        ensure_private_dir(scope_dir(paths.scope))
    for sub in (paths.mount_point.parent, paths.state.parent, paths.cache.parent):
        ensure_private_dir(sub)
    ensure_private_dir(paths.cache)
    if len(str(paths.socket)) > _MAX_SOCKET_PATH:
        raise UnsafePath(
            f"runtime path too long for rclone's control socket: {paths.socket}",
            f"set {RUNTIME_ENV} to a shorter directory",
        )
