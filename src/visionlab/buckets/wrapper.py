"""`mount-bucket BUCKET -- CMD ARGS...`: mount, run CMD with the bucket mounted, pass SIGTERM,
SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 on to it, wait for it, make sure its writes reached S3,
then end this process's hold on the mount, and exit with CMD's status.

Inside a SLURM job this is how a program's writes survive the job's end: run as the batch
script's own process (`exec mount-bucket B -- python train.py`) or as an srun task
(`srun mount-bucket B -- python train.py`), it receives SLURM's SIGTERM (scancel, time limit,
`--signal`), passes it on, and drains before SLURM's SIGKILL.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Callable, Optional

from . import deadline, mounts, runner
from .holds import Hold

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def run_mounted(bucket_name: str, command: Sequence[str], root_dir: Optional[str] = None,
                remote_name: str = mounts.DEFAULT_REMOTE, profile: Optional[str] = None,
                timeout: float = mounts.DRAIN_TIMEOUT,
                report: Callable[[str], None] = print,
                progress: Optional[Callable[[str], mounts.Progress]] = None) -> int:
    """Mount, run `command`, drain, release; return the command's exit status (1 when it
    succeeded but its writes could not be uploaded)."""
    result = mounts.mount(bucket_name, root_dir, remote_name, profile, held=True)
    hold = Hold(result)  # taken by mount(), under the bucket's lock
    deadline.watch(lambda: [hold.paths])  # at SIGTERM/a warning: pending bytes vs time left
    code = 1
    try:
        code = runner.run_foreground(command, FORWARDED)
    finally:
        if not hold.release(timeout, report, progress):
            code = code or 1
    return code
