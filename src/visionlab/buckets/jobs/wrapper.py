"""`mount-bucket BUCKET [--stage [--wait]] -- CMD ARGS...`: mount (and stage: with --wait, CMD
starts once its link is on the node's complete copy), run CMD with the bucket mounted, pass SIGTERM,
SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 on to it, wait for it, make sure its writes reached S3 (with
--stage, whose mount is read-only: its writes to the job's other mounts), then end this process's
hold on the mount, and exit with CMD's status.

Inside a SLURM job this is how a program's writes survive the job's end: run as the batch
script's own process (`exec mount-bucket B -- python train.py`) or as an srun task
(`srun mount-bucket B -- python train.py`), it receives SLURM's SIGTERM (scancel, time limit,
`--signal`), passes it on, and drains before SLURM's SIGKILL.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Callable, Optional, Union

from ..mounts import mount, unmount
from ..mounts.mountinfo import MountInfo
from ..system import runner
from ..system.rcconf import DEFAULT_REMOTE
from ..uploads import deadline
from .release import Hold

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def run_mounted(bucket_name: str, command: Sequence[str], root_dir: Optional[str] = None,
                remote_name: str = DEFAULT_REMOTE, profile: Optional[str] = None,
                timeout: float = unmount.DRAIN_TIMEOUT,
                report: Callable[[str], None] = print,
                progress: Optional[Callable[[str], unmount.Progress]] = None,
                stage: bool = False, wait: bool = False, stage_prefix: str = "",
                staged: Optional[Callable[[MountInfo], None]] = None,
                stage_progress: Optional[Callable[[object], None]] = None) -> int:
    """Mount (with `stage`: and stage; with `wait`: until this link is on the complete copy,
    then `staged` is told), run `command`, drain, release; return the command's exit status (1
    when it succeeded but its writes could not be uploaded, or the copy failed before it ran)."""
    result = mount.mount(bucket_name, root_dir, remote_name, profile, held=True, stage=stage,
                          stage_prefix=stage_prefix)
    hold = Hold(result)  # taken by mount(), under the bucket's lock
    deadline.watch(lambda: [hold.paths])  # at SIGTERM/a warning: pending bytes vs time left
    code = 1
    try:
        if stage and wait:
            info = _until_signal(lambda: mount.wait_staged(result.bucket, stage_progress,
                                                            result=result))
            if isinstance(info, int):
                return info  # a signal came before CMD started: 128+N, after the release
            if staged:
                staged(info)
        code = runner.run_foreground(command, FORWARDED)
        if stage and not _synced_others(timeout, report, progress):
            code = code or 1  # a staged bucket is read-only: CMD wrote to other buckets
    finally:
        if not hold.release(timeout, report, progress):
            code = code or 1
    return code


def _synced_others(timeout: float, report: Callable[[str], None],
                   progress: Optional[Callable[[str], unmount.Progress]]) -> bool:
    """After CMD, what it wrote to the other mounts of this job (of this user outside SLURM)
    reached S3 (`mount-bucket --sync`); False when it could not (reported)."""
    from ..errors import BucketsError

    try:
        unmount.sync(None, timeout, progress)
    except BucketsError as exc:
        report(f"error: {exc}")
        return False
    return True


class _Signalled(Exception):
    pass


def _until_signal(wait: Callable[[], MountInfo]) -> Union[MountInfo, int]:
    """Run `wait` (before CMD starts); a forwarded signal ends it: 128+N (what CMD would have
    given), so the hold is still released on the way out."""
    def stop(signum: int, _frame: object) -> None:
        raise _Signalled(signum)

    old = {sig: signal.signal(sig, stop) for sig in FORWARDED}
    try:
        return wait()
    except _Signalled as exc:
        return 128 + exc.args[0]
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
