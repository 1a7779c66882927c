"""The deadline line: when SIGTERM (or a SLURM job's warning signal, SIGUSR1/SIGUSR2) arrives,
one line on stderr says how many bytes are still to be uploaded, the upload rate rclone sees, and
whether that fits in the time left before SIGKILL:

    visionlab-buckets: SIGTERM: 1,074 MB to upload (1 file, results), uploading at 105 MB/s
    (~10 s); SIGKILL in 30 s (KillWait): fits

It watches through Python's signal wakeup fd, so it installs no handler of its own and never
replaces, delays or reorders the program's handlers. It sees the signals that have a Python
handler: the wrapper's pass-on handlers, the API's SIGTERM exit, a program's own SIGUSR1 handler
(a signal left at its default ends the process anyway).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional

if TYPE_CHECKING:
    from ..records.layout import BucketPaths

TERM = signal.SIGTERM
WARNINGS = (signal.SIGUSR1, signal.SIGUSR2)  # `--signal` warnings, acted on inside SLURM jobs
RC_TIMEOUT = 2.0


class Outlook(NamedTuple):
    """What the mounts of this process still have to upload, and how fast they do."""

    pending: int  # bytes
    files: int
    rate: float  # bytes/s
    rate_is_current: bool  # an upload is under way (else: the rate seen earlier, or none)
    buckets: list[str]
    unanswered: list[str]  # buckets whose rclone did not answer


def outlook(mounts: Iterable[BucketPaths]) -> Outlook:
    """Pending bytes and upload rate of every mount in `mounts`, from rclone's rc."""
    from ..system import rclone

    pending = files = 0
    current = seen = 0.0
    buckets, unanswered = [], []
    for paths in mounts:
        try:
            queue = rclone.upload_queue(paths.socket, RC_TIMEOUT)
            rate = rclone.upload_rate(paths.socket, RC_TIMEOUT)
        except OSError:
            unanswered.append(paths.bucket)
            continue
        buckets.append(paths.bucket)
        for item in queue:
            done = rate.sent.get(item.name, 0) if item.uploading else 0
            pending += max(0, item.size - done)
        files += len(queue)
        current += rate.current
        seen += rate.seen
    return Outlook(pending, files, current or seen, current > 0, buckets, unanswered)


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def describe(signame: str, o: Outlook, left: Optional[float], why: str) -> str:
    """The one line: pending bytes, rate, time before SIGKILL (`left` s, None when unknown;
    `why` says where it comes from) and whether the uploads fit in it."""
    where = ", ".join(o.buckets)
    if o.pending:
        text = f"{_mb(o.pending)} to upload ({o.files} file(s), {where})"
    else:
        text = f"nothing left to upload ({where or 'no mount answered'})"
    if o.unanswered:
        text += f", no answer from the mount of {', '.join(o.unanswered)}"
    need = None
    if o.pending and o.rate > 0:
        need = o.pending / o.rate
        how = "uploading at" if o.rate_is_current else "upload rate seen"
        text += f", {how} {_mb(o.rate)}/s (~{need:,.0f} s)"
    elif o.pending:
        text += ", no upload rate seen yet"
    if left is None:
        text += f"; time before SIGKILL unknown ({why})"
    else:
        text += f"; SIGKILL in {max(left, 0):,.0f} s ({why})"
        if need is not None:
            text += ": fits" if need <= left else f": does NOT fit (short by ~{need - left:,.0f} s)"
        elif o.pending:
            text += ": cannot tell whether it fits"
    return f"visionlab-buckets: {signame}: {text}"


def time_left(signum: int) -> tuple[Optional[float], str]:
    """Seconds before SIGKILL after signal `signum`, and where that figure comes from."""
    from ..system import slurm

    if slurm.current() is None:
        return None, "not in a SLURM job"
    kill_wait = slurm.kill_wait()
    if kill_wait is None:
        return None, "KillWait not readable from 'scontrol show config'"
    if signum == TERM:
        return float(kill_wait), "KillWait"
    limit = slurm.time_limit_left()
    if limit is None:
        return None, "the job's end time not readable from 'scontrol show job'"
    return max(limit, 0) + kill_wait, f"time limit in {max(limit, 0):,.0f} s + KillWait {kill_wait} s"


def announce(signum: int, mounts: Iterable[BucketPaths],
             say: Callable[[str], None] = lambda line: sys.stderr.write(line + "\n")) -> None:
    """Say the deadline line for `signum` (never raises)."""
    try:
        left, why = time_left(signum)
        say(describe(signal.Signals(signum).name, outlook(mounts), left, why))
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a line that cannot be made must not break the program
        pass


def watch(mounts: Callable[[], Iterable[BucketPaths]]) -> bool:
    """Say the deadline line whenever this process receives SIGTERM (or, inside a SLURM job,
    SIGUSR1/SIGUSR2), for the mounts `mounts()` returns then. False when it cannot watch: not
    the main thread, or the program uses the wakeup fd itself (asyncio)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        previous = None
    if previous != -1:  # somebody else's (put it back), or none could be set
        if previous is not None:
            signal.set_wakeup_fd(previous)
        os.close(read_fd)
        os.close(write_fd)
        return False

    def loop() -> None:
        from ..system import slurm

        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum == TERM or (signum in WARNINGS and slurm.current() is not None):
                    announce(signum, list(mounts()))

    threading.Thread(target=loop, name="visionlab-buckets-deadline", daemon=True).start()
    return True
