"""Where are we running? Answers from environment variables and files (SLURM: system.slurm);
no torch, no hangs."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import sys

from . import runner, slurm

# Lightning Studio sets these in every studio shell; /teamspace/studios is its shared drive.
_LIGHTNING_ENV = ("LIGHTNING_CLOUD_PROJECT_ID", "LIGHTNING_CLOUDSPACE_HOST", "LIGHTNING_CLOUDSPACE_ID")
_LIGHTNING_DIR = "/teamspace/studios"


def is_lightning_studio() -> bool:
    """True on a Lightning AI Studio (its LIGHTNING_* variables, or /teamspace/studios)."""
    return any(os.environ.get(v) for v in _LIGHTNING_ENV) or os.path.isdir(_LIGHTNING_DIR)


def is_slurm() -> bool:
    """True inside a SLURM job: this process is in a job's cgroup (even with the SLURM_*
    variables gone, or ssh'd into the job's node and adopted into it), else SLURM_JOB_ID is
    set (an allocation's shell, a cluster without proctrack/cgroup)."""
    return slurm.current() is not None


def is_macos() -> bool:
    return sys.platform == "darwin"


def is_linux() -> bool:
    return sys.platform.startswith("linux")


@functools.lru_cache(maxsize=1)
def has_gpu() -> bool:
    """True when an NVIDIA GPU is visible: /dev/nvidia<N>, else `nvidia-smi -L` (5 s at most)."""
    if glob.glob("/dev/nvidia[0-9]*"):
        return True
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        result = runner.run([smi, "-L"], timeout=5)
    except Exception:
        return False
    return result.ok and "GPU" in result.stdout


def get_platform_name() -> str:
    """One of "lightning", "slurm", "macos", "linux-gpu", "linux", "unknown"."""
    if is_lightning_studio():
        return "lightning"
    if is_slurm():
        return "slurm"
    if is_macos():
        return "macos"
    if is_linux():
        return "linux-gpu" if has_gpu() else "linux"
    return "unknown"
