"""S3 server down: at mount time a bounded, clear error; restarted under a live mount, the mount recovers."""

from __future__ import annotations

import os
import time

from conftest import BUCKET, needs_fuse
from helpers_mounts import cli

from visionlab.buckets import mount_bucket, unmount_bucket

pytestmark = needs_fuse


def test_server_down_at_mount_time_is_a_bounded_clear_error(env):
    env["s3"].stop()
    start = time.monotonic()
    proc = cli("mount-bucket", BUCKET, timeout=60)
    took = time.monotonic() - start
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot reach the S3 endpoint of remote 's3_remote': ")
    assert proc.stderr.endswith("— check the network (and the endpoint in rclone.conf), then try again\n")
    assert took < 30
    assert not os.path.lexists(env["runtime"]) and not os.path.lexists(env["home"] / "s3_buckets")


def test_server_restarted_under_live_mount(env):
    link = mount_bucket(BUCKET)
    assert (link / "hello.txt").read_text() == "hello from s3\n"
    env["s3"].stop()
    env["s3"].start()
    deadline = time.monotonic() + 10  # reads work again within a bounded time
    while True:
        try:
            assert (link / "data" / "x.bin").read_bytes() == b"\x00" * 1024  # never read before
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert (link / "hello.txt").read_text() == "hello from s3\n"
    (link / "written-after-restart.txt").write_text("ok\n")
    unmount_bucket(BUCKET)
    assert (env["s3"].data / BUCKET / "written-after-restart.txt").read_text() == "ok\n"
