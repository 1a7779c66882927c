"""Scopes: which tree (this user's own, a SLURM job's, an srun step's) a mount lives in.

Outside SLURM a bucket has one mount per user. Inside a SLURM job the mount is the job's own
(scope "<job>"): SLURM kills every daemon a job started when the job ends, so a mount shared
with another job would die under it. Inside an `srun` step a mount would die with the step:
the step reuses its job's mount, or (the wrapper, the Python API) mounts in scope
"<job>.<step>"; a plain `mount-bucket` there is refused.

Also here: finding the mounts of every scope, files never uploaded that ended jobs left in
their caches, and a link left pointing at an ended job's mount point.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LinkConflict, MountDiesWithStep
from ..health.liveness import is_live
from ..records import layout, links, state
from ..system import mounttable, procs, slurm


def scope_name(step: slurm.JobStep, own_step: bool) -> str:
    return f"{step.job}.{step.step}" if own_step else step.job


def scope_label(scope: str) -> str:
    if not scope:
        return ""
    job, _, step = scope.partition(".")
    return f"job {job} step {step}" if step else f"job {job}"


def existing_scope(bucket: str) -> str:
    """The scope whose mount of `bucket` this process uses (for status, sync, unmount)."""
    step = slurm.current()
    if step is None:
        return ""
    if step.is_srun_step and os.path.lexists(layout.paths_for(bucket, scope_name(step, True)).state):
        return scope_name(step, True)
    return step.job


def mount_scope(bucket: str, held: bool) -> str:
    """The scope a new mount of `bucket` by this process lives in."""
    step = slurm.current()
    if step is None:
        return ""
    if not step.is_srun_step:
        return step.job
    if is_live(layout.paths_for(bucket, step.job)):
        return step.job  # the batch script's mount outlives this step
    if held:
        return scope_name(step, True)
    raise MountDiesWithStep(
        f"a mount made inside srun step {step.job}.{step.step} ends with that step, so it would "
        "die as soon as this command returns",
        f"run your program under it: 'srun mount-bucket {bucket} -- CMD ...', or mount in the "
        "batch script before srun",
    )


def ended_job_stranded(bucket: str, skip: str) -> list[tuple[str, list[str]]]:
    """(scope, unsaved files) of `bucket` in the caches of SLURM jobs whose mount is dead."""
    found: list[tuple[str, list[str]]] = []
    scopes = layout.job_scopes()
    if not scopes:
        return found
    from ..uploads import pending as uploads

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


def dead_link_of_ours(link: Path, mine: layout.BucketPaths) -> str:
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
        if is_live(paths):
            where = scope_label(scope) or "your mount outside SLURM jobs"
            raise LinkConflict(f"{link} is the link of {where}'s mount, still in use",
                               "pass --root DIR for this job's link (e.g. --root "
                               "\"$TMPDIR/s3_buckets\") so neither job breaks the other")
        return target
    return ""


def known(scope: str) -> list[str]:
    found = set(layout.recorded_buckets(scope))
    found.update(mounttable.names_under(str(layout.mount_root(scope))))
    return sorted(found)


def all_paths(this_job_only: bool = False) -> list[layout.BucketPaths]:
    """Every bucket of every scope (or, inside a SLURM job and asked to, of this job only)."""
    scopes = ["", *layout.job_scopes()]
    step = slurm.current()
    if step and this_job_only:
        scopes = [s for s in scopes if s == step.job or s.startswith(f"{step.job}.")]
    return [layout.paths_for(b, scope) for scope in scopes for b in known(scope)]


def own_paths() -> list[layout.BucketPaths]:
    """The mounts `--all` acts on: this SLURM job's, else this user's own (never a running
    job's)."""
    if slurm.current():
        return all_paths(this_job_only=True)
    return [layout.paths_for(b) for b in known("")]


def unshared_links(paths: layout.BucketPaths, st: state.MountState) -> list[str]:
    """The links of a mount going away that are its alone. A link that another live mount of the
    bucket also records (staged mounts of several jobs share the default link) is never
    removed: left on the node's copy, or moved from this mount to that mount's copy or mount
    point (one atomic rename)."""
    others = []
    for scope in ["", *layout.job_scopes()]:
        other = layout.paths_for(paths.bucket, scope)
        ost = state.load(other.state) if scope != paths.scope else None
        if ost and procs.is_alive(ost.pid):
            others.append((other, ost))
    mine = []
    for link in st.symlinks:
        heir = next(((o, s) for o, s in others if link in s.symlinks), None)
        if heir is None:
            mine.append(link)
            continue
        # On this mount: it moves to the heir (a link on the copy stays where it is).
        if links.target_of(link) == str(paths.mount_point):
            links.replace(Path(link), heir[1].staged or str(heir[0].mount_point))
    return mine
