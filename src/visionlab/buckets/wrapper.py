"""`mount-bucket BUCKET -- CMD ARGS...`: mount, run CMD with the bucket mounted, pass SIGTERM,
SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 on to it, wait for it, make sure its writes reached S3,
then end this process's hold on the mount, and exit with CMD's status.

Inside a SLURM job this is how a program's writes survive the job's end: run as the batch
script's own process (`exec mount-bucket B -- python train.py`) or as an srun task
(`srun mount-bucket B -- python train.py`), it receives SLURM's SIGTERM (scancel, time limit,
`--signal`), passes it on, and drains before SLURM's SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

from . import layout, mounts, procs, runner
from .errors import BucketsError
from .lock import bucket_lock

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def _take_hold(paths: layout.BucketPaths) -> Path:
    layout.ensure_private_dir(paths.holds)
    hold = paths.holds / str(os.getpid())
    hold.touch(mode=0o600)
    return hold


def _others_holding(paths: layout.BucketPaths, mine: Path) -> bool:
    for entry in paths.holds.iterdir():
        if entry == mine:
            continue
        if entry.name.isdigit() and procs.is_alive(int(entry.name)):
            return True
        with contextlib.suppress(OSError):
            entry.unlink()  # a holder that died
    return False


def run_mounted(bucket_name: str, command: Sequence[str], root_dir: Optional[str] = None,
                remote_name: str = mounts.DEFAULT_REMOTE, profile: Optional[str] = None,
                timeout: float = mounts.DRAIN_TIMEOUT,
                report: Callable[[str], None] = print,
                progress: Optional[Callable[[str], mounts.Progress]] = None) -> int:
    """Mount, run `command`, drain, release; return the command's exit status (1 when it
    succeeded but its writes could not be uploaded)."""
    result = mounts.mount(bucket_name, root_dir, remote_name, profile, held=True)
    paths = layout.paths_for(result.bucket, layout.scope_of(result.mount_point))
    with bucket_lock(paths.lock):
        hold = _take_hold(paths)
    code = 1
    try:
        code = runner.run_foreground(command, FORWARDED)
    finally:
        code = _finish(result, paths, hold, code, timeout, report, progress)
    return code


def _finish(result: mounts.MountResult, paths: layout.BucketPaths, hold: Path, code: int,
            timeout: float, report: Callable[[str], None],
            progress: Optional[Callable[[str], mounts.Progress]]) -> int:
    try:
        mounts.sync(result.bucket, timeout, progress)
    except BucketsError as exc:
        report(f"error: {exc}")
        code = code or 1
    with bucket_lock(paths.lock):
        with contextlib.suppress(FileNotFoundError):
            hold.unlink()
        last = not _others_holding(paths, hold)
    # A mount this wrapper made inside a SLURM job dies with the job anyway: end it now, cleanly,
    # unless another process still runs under it. Outside SLURM the mount is shared: keep it.
    if last and result.newly_mounted and paths.scope:
        try:
            mounts.unmount(result.bucket, timeout, scope=paths.scope)
        except BucketsError as exc:
            report(f"error: {exc}")
            code = code or 1
    return code
