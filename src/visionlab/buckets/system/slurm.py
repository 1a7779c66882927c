"""SLURM: which job and step this process runs in, and what that means for a mount's life.

With proctrack/cgroup (most clusters) every process a job starts lives in the job's cgroup and
gets SIGKILL the moment the step that started it ends: an rclone started by the batch script
lives until the script ends; one started inside an `srun` step, until that step ends. Only a
step's own task (whose parent is slurmstepd) receives SIGTERM on scancel or at the time limit.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple, Optional

BATCH = "batch"
EXTERN = "extern"  # the step pam_slurm_adopt puts an ssh session into: inside the job too
# A job's step in a cgroup path SLURM made: v1 `/slurm[_node]/uid_<uid>/job_<id>/step_<step>`,
# v2 `/system.slice/[<node>_]slurmstepd.scope/job_<id>/step_<step>[/user/task_<n>]`.
_STEP_IN_CGROUP = re.compile(r"slurm[^/\n]*/(?:uid_\d+/)?job_(\d+)/step_([a-z0-9_]+)")
CGROUP_FILE = "/proc/self/cgroup"


class JobStep(NamedTuple):
    job: str
    step: str  # "batch", "interactive", "extern" or the number of an srun step

    @property
    def is_srun_step(self) -> bool:
        """A step whose daemons die as soon as its task ends (not the batch script)."""
        return self.step.isdigit()

    def describe(self) -> str:
        return f"job {self.job}" if not self.is_srun_step else f"job {self.job} step {self.step}"


def steps_in_cgroup(text: str) -> list[JobStep]:
    """The (job, step) pairs in the text of /proc/<pid>/cgroup, in order (one per hierarchy
    that SLURM placed the process in; the same pair on each)."""
    return [JobStep(m.group(1), m.group(2)) for m in _STEP_IN_CGROUP.finditer(text)]


def _cgroup_steps() -> list[JobStep]:
    try:
        with open(CGROUP_FILE, encoding="utf-8") as f:
            return steps_in_cgroup(f.read())
    except OSError:
        return []


def current() -> Optional[JobStep]:
    """The job and step of this process, or None outside SLURM jobs. Every decision that depends
    on the job asks this. The cgroup SLURM put us in is authoritative (SLURM kills what is in
    it when the job or step ends): it gives the job and step even when the SLURM_* variables
    are gone (a notebook kernel started with a clean environment, an ssh session adopted into
    the job's `extern` step). Without one (no proctrack/cgroup): SLURM_JOB_ID, SLURM_STEP_ID."""
    found = _cgroup_steps()
    if found:
        return found[0]
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    return JobStep(job, os.environ.get("SLURM_STEP_ID") or BATCH)


def parent_is_slurmstepd() -> bool:
    """Does this process get SIGTERM from SLURM (scancel, time limit)? Only a step's own task
    does; the batch shell's children get SIGKILL with no warning."""
    try:
        with open(f"/proc/{os.getppid()}/comm", encoding="utf-8") as f:
            return f.read().strip() == "slurmstepd"
    except OSError:
        return False


def _scontrol(*args: str) -> str:
    """`scontrol ARGS` output, "" when it is missing, fails or is slow (never raises)."""
    import shutil

    from ..errors import CommandTimeout
    from . import runner

    binary = shutil.which("scontrol")
    if not binary:
        return ""
    try:
        result = runner.run([binary, *args], timeout=5)
    except CommandTimeout:
        return ""
    return result.stdout if result.ok else ""


def kill_wait() -> Optional[int]:
    """Seconds between SLURM's SIGTERM and its SIGKILL (`KillWait` of `scontrol show config`),
    None outside a job or when it cannot be read."""
    if current() is None:
        return None
    match = re.search(r"^KillWait\s*=\s*(\d+)", _scontrol("show", "config"), re.MULTILINE)
    return int(match.group(1)) if match else None


def time_limit_left() -> Optional[float]:
    """Seconds until this job's time limit (its `EndTime`), None when unknown."""
    import time

    step = current()
    if step is None:
        return None
    match = re.search(r"\bEndTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\b",
                      _scontrol("show", "job", "-o", step.job))
    if not match:
        return None
    try:
        end = time.mktime(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None
    return end - time.time()
