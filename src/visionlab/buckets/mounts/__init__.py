"""The flows: mount, sync, unmount, status, and the parts they stand on. Callers use this face
(`mounts.mount`, `mounts.sync`, `mounts.unmount`, `mounts.status`, ...).

    mount       mount a bucket (or reuse, or heal, its mount) and link it
    unmount     sync, unmount one bucket, --all, --stale
    mountinfo   status / is_mounted / list_mounts: read-only
    scopes      which tree (the user's, a SLURM job's, a step's) a mount lives in
    holds       processes running under a mount (one file each)
    teardown    the ways a mount goes away, and the dead-mount clean-up

May import: staging, uploads, health, system, records, errors (lower floors only).
"""

from ..health.liveness import PROBE_TIMEOUT
from ..system.rcconf import DEFAULT_REMOTE
from .mount import MountResult, PathLike, mount, wait_staged
from .mountinfo import MountInfo, is_mounted, known_buckets, list_mounts, status
from .unmount import (
    DRAIN_TIMEOUT,
    Progress,
    UnmountResult,
    left_unsaved,
    sweep_stale,
    sync,
    unmount,
    unmount_all,
)

__all__ = [
    "DEFAULT_REMOTE", "DRAIN_TIMEOUT", "PROBE_TIMEOUT", "MountInfo", "MountResult", "PathLike",
    "Progress", "UnmountResult", "is_mounted", "known_buckets", "left_unsaved", "list_mounts",
    "mount", "status", "sweep_stale", "sync", "unmount", "unmount_all", "wait_staged",
]
