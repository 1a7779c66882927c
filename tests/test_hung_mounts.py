"""Hung mounts: with rclone stopped, every status query answers 'stale' within a bound instead of hanging."""

from __future__ import annotations

import signal
import time

from conftest import BUCKET, needs_fuse, signal_checked
from helpers_mounts import cli, fuse_mounts

from visionlab.buckets import is_mounted, list_mounts, mount_bucket, status, unmount_bucket

pytestmark = needs_fuse


def bounded(call, limit: float):
    """call() in a daemon thread: (its result, seconds taken), or fail if it hangs past `limit`."""
    import threading

    out: dict = {}

    def target():
        start = time.monotonic()
        out["value"] = call()
        out["took"] = time.monotonic() - start

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"no answer within {limit}s"
    return out["value"], out["took"]


def test_status_list_and_is_mounted_answer_with_rclone_hung(env):
    """A hung rclone (stopped, so a stat of its mount never returns): every query answers
    'stale' within the probe's bound instead of hanging."""
    mount_bucket(BUCKET)
    pid = status(BUCKET).pid
    signal_checked(pid, signal.SIGSTOP, "rclone")
    try:
        time.sleep(1.5)  # past the kernel's attribute cache (rclone's --attr-timeout, 1 s)
        reason = "no answer within 2s"
        bound = 5  # a safety bound, not a speed claim: the probe gives up after 2 s
        answer, took = bounded(lambda: is_mounted(BUCKET), bound)
        assert answer is False and took < bound
        answer, took = bounded(lambda: status(BUCKET), bound)
        assert (answer.state, answer.reason, answer.pid) == ("stale", reason, pid)
        answer, took = bounded(list_mounts, bound)
        assert [(m.bucket, m.state, m.reason) for m in answer] == [(BUCKET, "stale", reason)]
        proc, took = bounded(lambda: cli("mount-bucket", "--status", BUCKET, timeout=bound), bound)
        assert proc.returncode == 4, proc
        assert proc.stdout.startswith(f"{BUCKET}: stale ({reason}) — s3_remote:{BUCKET} at ")
        proc, took = bounded(lambda: cli("mount-bucket", "--list", timeout=bound), bound)
        assert proc.returncode == 0, proc
        assert proc.stdout.splitlines()[1].startswith(f"{BUCKET}  stale  s3_remote  {pid}  ")
    finally:
        signal_checked(pid, signal.SIGCONT, "rclone")
    assert is_mounted(BUCKET)  # it answers again once rclone runs
    unmount_bucket(BUCKET)
    assert fuse_mounts(env["runtime"]) == []
