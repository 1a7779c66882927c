"""A program that mounted through the Python API does not exit before what it wrote reached S3.

At interpreter exit (normal end, sys.exit, an uncaught exception) every bucket this process
mounted is synced, within EXIT_TIMEOUT seconds; what is left is said on stderr. A SIGTERM
becomes a normal exit that drains, but only when the program installed no SIGTERM handler of
its own: a handler it installed (before or after) is never replaced or skipped.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..mounts.mount import MountResult
    from .release import Hold

TIMEOUT_ENV = "VISIONLAB_BUCKETS_EXIT_TIMEOUT"
EXIT_TIMEOUT = 600.0

_held: dict[str, Hold] = {}
_lock = threading.Lock()


def hold(result: MountResult) -> None:
    """Sync the mount of `result` (a mount.MountResult) when this process exits, and end a
    SLURM job's mount this process made when nobody else holds it."""
    from ..uploads import deadline
    from . import release

    with _lock:
        first = not _held
        if result.bucket not in _held:
            _held[result.bucket] = release.Hold(result)
    if first:
        atexit.register(_drain_at_exit)
        deadline.watch(lambda: [h.paths for h in list(_held.values())])  # the deadline line
        _exit_on_sigterm()
        _warn_no_sigterm()


def _warn_no_sigterm() -> None:
    """Inside a SLURM job, a process that is not the job's own (a child of the batch shell) gets
    SIGKILL with no warning on scancel or at the time limit: say so, once."""
    from ..system import slurm

    step = slurm.current()
    if step is None or slurm.parent_is_slurmstepd():
        return
    print(f"visionlab-buckets: note: in {step.describe()} this process gets no SIGTERM on scancel "
          "or at the time limit (only SIGKILL), so writes of its last seconds could be stranded; "
          "start it as 'exec python ...' or 'srun python ...'", file=sys.stderr, flush=True)


def _exit_on_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
    raise SystemExit(128 + signum)


def _timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, EXIT_TIMEOUT))
    except ValueError:
        return EXIT_TIMEOUT


def _say(line: str) -> None:
    print(f"visionlab-buckets: at exit: {line}", file=sys.stderr, flush=True)


def _drain_at_exit() -> None:
    from ..errors import BucketsError
    from ..mounts import mountinfo
    from ..records import layout

    for bucket in sorted(_held):
        held = _held[bucket]
        if held.runtime != layout.runtime_dir():
            continue  # the environment changed since (a test harness): not ours to touch
        try:
            info = mountinfo.status(bucket)
            if info.state == "alive":
                held.release(_timeout(), _say)
            elif info.stranded:  # its rclone died (OOM, a kill): say what did not reach S3
                _say(f"{bucket}: {info.uploads_note}")
            # "not-mounted" with nothing stranded: the program unmounted it (which drained)
        except BucketsError as exc:
            _say(f"error: {exc}")
