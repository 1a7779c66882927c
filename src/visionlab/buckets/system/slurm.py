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
_STEP_IN_CGROUP = re.compile(r"/job_(\d+)/step_([a-z0-9_]+)")


class JobStep(NamedTuple):
    job: str
    step: str  # "batch", "interactive", "extern" or the number of an srun step

    @property
    def is_srun_step(self) -> bool:
        """A step whose daemons die as soon as its task ends (not the batch script)."""
        return self.step.isdigit()

    def describe(self) -> str:
        return f"job {self.job}" if not self.is_srun_step else f"job {self.job} step {self.step}"


def _step_from_cgroup(job: str) -> Optional[str]:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    for match in _STEP_IN_CGROUP.finditer(text):
        if match.group(1) == job:
            return match.group(2)
    return None


def current() -> Optional[JobStep]:
    """The job and step of this process, or None outside SLURM jobs. The step comes from the
    job's cgroup where SLURM put us (authoritative), else from SLURM_STEP_ID."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    step = _step_from_cgroup(job) or os.environ.get("SLURM_STEP_ID") or BATCH
    return JobStep(job, step)


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
