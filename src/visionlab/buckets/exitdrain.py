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

TIMEOUT_ENV = "VISIONLAB_BUCKETS_EXIT_TIMEOUT"
EXIT_TIMEOUT = 600.0

_held: set[str] = set()
_lock = threading.Lock()


def hold(bucket: str) -> None:
    """Sync `bucket` when this process exits."""
    with _lock:
        first = not _held
        _held.add(bucket)
    if first:
        atexit.register(_drain_at_exit)
        _exit_on_sigterm()
        _warn_no_sigterm()


def _warn_no_sigterm() -> None:
    """Inside a SLURM job, a process that is not the job's own (a child of the batch shell) gets
    SIGKILL with no warning on scancel or at the time limit: say so, once."""
    from . import slurm

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


def _drain_at_exit() -> None:
    from . import mounts
    from .errors import BucketsError, NotMounted

    for bucket in sorted(_held):
        try:
            mounts.sync(bucket, timeout=_timeout())
        except NotMounted:
            continue  # unmounted by the program itself (which drained), or already gone
        except BucketsError as exc:
            print(f"visionlab-buckets: at exit: {exc}", file=sys.stderr, flush=True)
