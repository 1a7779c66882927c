"""status / is_mounted / list_mounts / known_buckets: what the mounts of this user are now.

Read-only: nothing here starts, stops or writes anything. uploads and staging are imported only
when a mount has a state file or a staged copy (see mount.py on the fast paths).
"""

from __future__ import annotations

import os
from typing import NamedTuple, Optional

from ..health.liveness import PROBE_TIMEOUT, answers, mounted_remote
from ..records import layout, links, names, state
from ..system import mounttable, procs
from .scopes import all_paths, ended_job_stranded, existing_scope, known, scope_label


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


def _info(bucket: str, paths: layout.BucketPaths, timeout: float,
          probed: Optional[tuple] = None) -> MountInfo:
    st = state.load(paths.state)
    entry = mounttable.find(str(paths.mount_point))
    remote, pid, profile = (st.remote, st.pid, st.profile) if st else (None, None, None)
    symlinks = links.alive(st.symlinks, *layout.link_targets(paths, st)) if st else []
    condition, reason = "not-mounted", ""
    if entry:
        remote = mounted_remote(entry, st)
        alive, reason = answers(paths, st, probed or mounttable.probe(str(paths.mount_point), timeout))
        condition = "alive" if alive else "stale"
    elif st:
        condition, reason = "stale", "not in the mount table (rclone exited)"
    if condition == "stale" and st and paths.scope and not procs.is_alive(st.pid):
        reason = f"{scope_label(paths.scope)} ended"
    info = MountInfo(bucket=bucket, state=condition, mount_point=str(paths.mount_point),
                     remote=remote, pid=pid, profile=profile, symlinks=symlinks, reason=reason,
                     scope=scope_label(paths.scope))
    info = _with_stage(info)
    return _with_uploads(info, paths, st, timeout) if st else info


def _with_stage(info: MountInfo) -> MountInfo:
    stage_state = layout.stage_paths(info.bucket).state
    if not os.path.exists(stage_state):
        return info
    from .. import staging

    found = staging.load(layout.stage_paths(info.bucket))
    if not found:
        return info
    return info._replace(stage=found.to_dict(),
                         stage_note=found.describe(info.bucket))


def _with_uploads(info: MountInfo, paths: layout.BucketPaths, st: state.MountState,
                  timeout: float) -> MountInfo:
    """Add what the mount still has to upload (alive), or left unsaved in its cache (dead)."""
    from ..uploads import pending as uploads

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
    scope = existing_scope(bucket)
    info = _info(bucket, layout.paths_for(bucket, scope), timeout)
    if info.state != "alive" and not info.stranded:
        ended = ended_job_stranded(bucket, scope)
        if ended:  # a SLURM job that wrote through its own mount ended before uploading
            info = _with_stranded(info, [f for _scope, files in ended for f in files])
    return info


def is_mounted(bucket_name: str) -> bool:
    """True only when the bucket is in the mount table AND its mount answers a stat in time."""
    return status(bucket_name).state == "alive"


def known_buckets() -> list[str]:
    """Buckets of this user with a state file or a mount, in any scope (no network)."""
    return sorted({b for scope in ["", *layout.job_scopes()] for b in known(scope)})


def list_mounts(timeout: float = PROBE_TIMEOUT) -> list[MountInfo]:
    """Every mount of this user (its own, and its SLURM jobs' on this node), alive or not, and
    every state file; probes run in parallel."""
    base = layout.runtime_dir()
    if not os.path.lexists(base):
        return []
    layout.check_private_dir(base)
    return [info for _paths, info in described(all_paths(), timeout)]


def described(paths: list[layout.BucketPaths], timeout: float = PROBE_TIMEOUT
              ) -> list[tuple[layout.BucketPaths, MountInfo]]:
    """Each of `paths` with its MountInfo (probes in parallel)."""
    probes = mounttable.probe_all([str(p.mount_point) for p in paths], timeout)
    return [(p, _info(p.bucket, p, timeout, probes[str(p.mount_point)])) for p in paths]
