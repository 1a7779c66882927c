"""Is a recorded pid still our `rclone mount`? Checked on its command line on every platform, so
a pid recycled after a reboot is never killed (on macOS through `ps`, which has no /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from visionlab.buckets.system import procs, rclone


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait(10)


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_a_live_pid_that_is_not_our_rclone_is_not_taken_for_it(monkeypatch, sleeper, platform):
    monkeypatch.setattr(sys, "platform", platform)
    if platform == "darwin":  # no /proc there: procs asks `ps -o command= / uid= -p PID`
        calls = []
        real = procs._ps

        def ps(pid, field):
            calls.append(field)
            return real(pid, field)
        monkeypatch.setattr(procs, "_ps", ps)
    assert not rclone.is_mount_process(sleeper, "s3_remote", "bkt", "/tmp/u/rclone/bkt")
    if platform == "darwin":
        assert "command" in calls


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_our_rclone_is_recognized_by_its_command_line(monkeypatch, platform):
    monkeypatch.setattr(sys, "platform", platform)
    # A stand-in whose command line reads like an rclone mount of ours.
    proc = subprocess.Popen(["/bin/bash", "-c", f"exec -a rclone {sys.executable} -c "
                             "'import time; time.sleep(60)' mount s3_remote:bkt /tmp/u/rclone/bkt"])
    try:
        deadline = time.monotonic() + 5
        while "mount" not in procs.command_line(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rclone.is_mount_process(proc.pid, "s3_remote", "bkt", "/tmp/u/rclone/bkt")
        assert not rclone.is_mount_process(proc.pid, "s3_remote", "other", "/tmp/u/rclone/other")
        assert procs.owner_uid(proc.pid) == os.getuid()
    finally:
        proc.kill()
        proc.wait(10)
