"""Uploads through a mount: what is pending or failing, waiting until every queued file reached
S3 (`--sync`, unmount, a program's exit), and what a dead mount left unsaved in its cache.

rclone uploads lazily (write-back) and retries a failing upload forever, so waiting must notice
failure itself: once every pending file has failed and the retries keep failing while none
succeeded, the wait ends with rclone's error instead of at its deadline.

Why not "every file failed twice more": rclone paces all requests to one backend through one
rate limiter, which slows to one request per 2 s after errors, so each round of retries over N
files takes ~N x 6 s. Waiting until SAMPLE files (all of them when fewer are pending) each failed
FAIL_AFTER times in all and again during the wait, with no upload succeeding meanwhile, keeps the
verdict within seconds to tens of seconds whatever N is.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple, Optional

from ..errors import BucketsError, PendingUploads, UploadsFailing
from ..records import layout, state
from ..system import procs, rclone

FAIL_AFTER = 2  # failed attempts of a sampled file (at least one of them during the wait)
SAMPLE = 3  # how many files must keep failing (all of them when fewer are pending)
PUSH_EVERY = 1.0  # seconds between asking rclone to upload queued files now
# A file closed just before the wait is not in rclone's queue yet: FUSE delivers the release a
# moment after close() returns (up to ~50 ms measured on an idle machine, more under load); until
# rclone has it, it holds the file's cache copy open (seen in /proc on Linux) and its cache record
# says dirty; then it closes the copy and queues the file. So an empty queue means "done" once,
# for QUIET s, rclone held no cache file open and none was dirty (or at once when its cache is
# empty: nothing was written through it). QUIET guards the gap between reading the two; where
# /proc shows rclone's open files (Linux) the open copy covers the gap from close() to the queue,
# so a short QUIET_SEEN is enough; elsewhere only the cache record is seen, and QUIET stays 1 s.
# A file still open after SETTLE s is being written by a program that has not closed it: not
# waited for.
QUIET = 1.0
QUIET_SEEN = 0.25
SETTLE = 3.0


class UploadReport(NamedTuple):
    pending: int
    failing: int
    last_error: Optional[str]
    names: list[str]  # pending files

    def to_dict(self) -> dict:
        return {"pending": self.pending, "failing": self.failing, "last_error": self.last_error}

    def describe(self) -> str:
        """'3 uploads failing: <error>' / '2 uploads pending' / ''."""
        if self.failing:
            return f"{self.failing} upload(s) failing: {self.last_error or 'see the log'}"
        if self.pending:
            return f"{self.pending} upload(s) pending"
        return ""


Progress = Callable[[UploadReport, float], None]


def report(paths: layout.BucketPaths, st: Optional[state.MountState],
           rc_timeout: float = 5.0, queue: Optional[rclone.Uploads] = None) -> UploadReport:
    """Uploads of a live mount, from rclone's rc (queue, tries; or `queue` already asked) and
    its log (the error, read only when something fails)."""
    queue = queue or rclone.uploads(paths.socket, timeout=rc_timeout)
    failing = [item for item in queue.items if item.failures >= 1]
    last_error = None
    if failing:
        errors = rclone.upload_failures(paths.log, st.log_start if st else 0)
        named = [errors[item.name] for item in failing if item.name in errors]
        last_error = named[-1] if named else (list(errors.values())[-1] if errors else None)
    return UploadReport(pending=queue.pending, failing=len(failing), last_error=last_error,
                        names=queue.names)


def unsaved(paths: layout.BucketPaths) -> list[str]:
    """Files a dead mount's cache holds that never reached S3."""
    return rclone.unsaved_files(paths.cache, paths.bucket)


def _calm(paths: layout.BucketPaths, st: Optional[state.MountState]) -> tuple[bool, float]:
    """Is nothing on its way to rclone's queue: no cache file held open by rclone (where that
    can be seen), none dirty? And how long must that last: QUIET_SEEN where rclone's open
    files were seen, QUIET where they cannot be."""
    held = procs.has_open_file_under(st.pid, str(paths.cache)) if st and st.pid else None
    return (not held and not unsaved(paths)), (QUIET if held is None else QUIET_SEEN)


def _read_only(profile: str) -> bool:
    from ..records import profiles

    try:
        return profiles.get(profile).read_only
    except BucketsError:  # an unknown profile name: assume it writes
        return False


def _shown(names: list[str], limit: int = 10) -> str:
    text = ", ".join(names[:limit]) or "unknown files"
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def wait_uploaded(paths: layout.BucketPaths, st: Optional[state.MountState], timeout: float,
                  progress: Optional[Progress] = None, again: str = "") -> None:
    """Return when every upload queued so far has reached S3. Raise UploadsFailing as soon as
    SAMPLE pending files (all, when fewer) failed FAIL_AFTER times in all and again during the
    wait while none succeeded, PendingUploads at the deadline; OSError when rclone's rc does
    not answer. `again`: the command to run once the cause is fixed (default: mount-bucket
    --sync BUCKET)."""
    again = again or f"mount-bucket --sync {paths.bucket}"
    deadline = time.monotonic() + timeout
    last_push = 0.0
    start_failures: dict[int, int] = {}
    fewest = None
    idle_since = calm_since = None
    while True:
        now = time.monotonic()
        if now - last_push >= PUSH_EVERY:
            rclone.expedite_uploads(paths.socket)
            last_push = now
        queue = rclone.uploads(paths.socket)
        if queue.pending == 0:
            if queue.cached == 0 or (st and _read_only(st.profile)):
                return  # nothing was written through it
            idle_since = idle_since or now
            calm, quiet = _calm(paths, st)
            calm_since = (calm_since or now) if calm else None
            if now - idle_since >= SETTLE or (calm_since and now - calm_since >= quiet):
                return
            time.sleep(0.05)
            continue
        idle_since = calm_since = None
        current = report(paths, st, queue=queue)
        remaining = deadline - now
        if progress:
            progress(current, max(remaining, 0.0))
        if fewest is None or queue.pending < fewest:  # something was uploaded: count afresh
            fewest = queue.pending
            start_failures = {item.id: item.failures for item in queue.items}
        for item in queue.items:
            start_failures.setdefault(item.id, item.failures)
        failing_again = [item for item in queue.items
                         if item.failures >= FAIL_AFTER and item.failures > start_failures[item.id]]
        if queue.items and len(failing_again) >= min(len(queue.items), SAMPLE):
            raise UploadsFailing(
                f"{len(queue.items)} upload(s) keep failing: {_shown(current.names)}: "
                f"{current.last_error or 'see ' + str(paths.log)}",
                "the mount and its cache were left in place and rclone keeps retrying; fix the "
                f"cause, then run '{again}'",
            )
        if remaining <= 0:
            error = f": {current.last_error}" if current.last_error else ""
            raise PendingUploads(
                f"{queue.pending} upload(s) still pending after {timeout:g}s: "
                f"{_shown(current.names)}{error}",
                "the mount and its cache were left in place; check the S3 endpoint and run "
                f"'{again}' again (or with a longer --timeout)",
            )
        time.sleep(0.2)
