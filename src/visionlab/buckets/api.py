"""The Python API: mount_bucket / sync_bucket / unmount_bucket, over mounts/ (the flows),
staging/ (--stage) and jobs/exitdrain.py (what this process wrote reaches S3 before it exits)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .jobs import exitdrain
from .mounts import mount, unmount
from .mounts.mount import PathLike
from .mounts.unmount import DRAIN_TIMEOUT
from .system.rcconf import DEFAULT_REMOTE

__all__ = ["mount_bucket", "sync_bucket", "unmount_bucket"]


def mount_bucket(bucket_name: str, root_dir: Optional[PathLike] = None,
                 remote_name: str = DEFAULT_REMOTE, profile: Optional[str] = None,
                 stage: bool = False, wait: bool = False, stage_prefix: str = "") -> Path:
    """Mount `bucket_name` (once per user; inside a SLURM job, once per job) and return the
    symlink <root_dir>/<bucket>.

    What this process writes through it is uploaded before the process exits (exitdrain).
    `stage=True`: also copy it to node-local disk in the background (one copy per node, shared
    by every job and rank); with `wait=True`, return once this link points at the complete
    local copy (a copy whose job ended meanwhile is resumed here).
    """
    result = mount.mount(bucket_name, root_dir, remote_name, profile, held=True, stage=stage,
                          stage_prefix=stage_prefix)
    exitdrain.hold(result)
    if stage and wait:
        mount.wait_staged(result.bucket, result=result)
    return result.link


def sync_bucket(bucket_name: Optional[str] = None, timeout: float = DRAIN_TIMEOUT) -> list[str]:
    """Wait until every upload queued so far reached S3 (all of this user's mounts when no
    bucket is named). Raises UploadsFailing with rclone's error when uploads keep failing."""
    return unmount.sync(bucket_name, timeout)


def unmount_bucket(bucket_name: str, timeout: float = DRAIN_TIMEOUT, force: bool = False) -> None:
    """Unmount a bucket after every pending upload reached S3. Raises BucketsError naming the
    files when some never reached S3 (a dead mount's, kept in its cache for the next mount)."""
    result = unmount.unmount(bucket_name, timeout=timeout, force=force)
    if result and result.stranded:
        raise unmount.left_unsaved(result)
