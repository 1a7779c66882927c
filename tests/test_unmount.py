"""Unmounting real mounts: pending writes drained, --all, busy mounts and --force, the --stale sweep."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
from pathlib import Path

from conftest import BUCKET, needs_fuse, signal_checked
from helpers_mounts import cli, fuse_mounts

from visionlab.buckets import is_mounted, list_mounts, mount_bucket, status

pytestmark = needs_fuse


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_hundred_writes_all_reach_s3_at_unmount(env):
    link = mount_bucket(BUCKET)
    rng = random.Random(7)
    written = {}
    for i in range(200):
        size = 64 * 1024 * 1024 if i == 0 else rng.choice([0, 1, 100, 4096, 65536, 300_000])
        data = rng.randbytes(size) if size < 1_000_000 else os.urandom(size)
        rel = f"out/{i % 10}/file_{i}.bin"
        (link / rel).parent.mkdir(parents=True, exist_ok=True)
        (link / rel).write_bytes(data)
        written[rel] = hashlib.sha256(data).hexdigest()
    proc = cli("unmount-bucket", BUCKET)
    assert proc.returncode == 0, proc.stderr
    server = env["s3"].data / BUCKET
    matches = sum(sha(server / rel) == digest for rel, digest in written.items()
                  if (server / rel).exists())
    assert matches == 200


def test_unmount_all_drains_every_bucket(env):
    env["s3"].make_bucket("second-bucket")
    links = [mount_bucket(BUCKET), mount_bucket("second-bucket")]
    for link in links:
        for i in range(20):
            (link / f"all_{i}.txt").write_text(f"{link.name} {i}\n")
    proc = cli("unmount-bucket", "--all")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    for link in links:
        server = env["s3"].data / link.name
        assert [(server / f"all_{i}.txt").read_text() for i in range(20)] == \
            [f"{link.name} {i}\n" for i in range(20)]
    assert fuse_mounts(env["runtime"]) == []


def test_unmount_with_server_down_keeps_mount_and_names_pending(env):
    s3 = env["s3"]
    link = mount_bucket(BUCKET)
    for i in range(3):
        (link / f"pending_{i}.txt").write_text(f"pending {i}\n")
    s3.stop()
    proc = cli("unmount-bucket", BUCKET, "--timeout", "6")
    assert proc.returncode == 1
    *progress, last = proc.stderr.strip().splitlines()
    assert progress and progress[0].startswith(f"{BUCKET}: waiting for 3 upload(s), ")
    assert last.startswith("error: 3 upload(s) still pending after 6s: ")
    assert all(f"pending_{i}.txt" in last for i in range(3))
    assert "the mount and its cache were left in place" in last
    assert is_mounted(BUCKET)
    assert (link / "pending_0.txt").read_text() == "pending 0\n"
    s3.start()  # same port, same data dir
    proc = cli("unmount-bucket", BUCKET, "--timeout", "120")
    assert proc.returncode == 0, proc.stderr
    for i in range(3):
        assert (s3.data / BUCKET / f"pending_{i}.txt").read_text() == f"pending {i}\n"


def test_busy_mount_is_refused_then_forced(env):
    link = mount_bucket(BUCKET)
    holder = subprocess.Popen(["sleep", "120"], cwd=link)
    try:
        proc = cli("unmount-bucket", BUCKET)
        assert proc.returncode == 1
        assert f"is busy: used by pid {holder.pid} (sleep 120)" in proc.stderr
        assert is_mounted(BUCKET)
        (link / "late.txt").write_text("late\n")
        proc = cli("unmount-bucket", BUCKET, "--force")
        assert proc.returncode == 0 and proc.stdout.startswith("lazily unmounted "), proc.stderr
        assert (env["s3"].data / BUCKET / "late.txt").read_text() == "late\n"
        assert fuse_mounts(env["runtime"]) == []
    finally:
        holder.kill()
        holder.wait(10)


def test_unmount_stale_sweeps_dead_mounts_and_orphans(env):
    env["s3"].make_bucket("second-bucket", {"a.txt": b"a"})
    env["s3"].make_bucket("third-bucket", {"b.txt": b"b"})
    mount_bucket(BUCKET)
    mount_bucket("second-bucket")
    mount_bucket("third-bucket")
    signal_checked(status(BUCKET).pid, signal.SIGKILL, "rclone")
    # An orphan: rclone alive (stopped) but its mount gone from the table.
    orphan = status("second-bucket").pid
    signal_checked(orphan, signal.SIGSTOP, "rclone")
    subprocess.run(["fusermount3", "-uz", str(env["runtime"] / "rclone" / "second-bucket")],
                   check=True, timeout=30)
    proc = cli("unmount-bucket", "--stale")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == sorted([
        f"cleaned up stale mount s3_remote:{BUCKET} from {env['runtime']}/rclone/{BUCKET}; removed 1 link(s)",
        f"cleaned up stale mount s3_remote:second-bucket from {env['runtime']}/rclone/second-bucket; "
        "removed 1 link(s)",
    ])
    assert [m.bucket for m in list_mounts()] == ["third-bucket"]
    assert is_mounted("third-bucket")
    assert not Path(f"/proc/{orphan}").exists() or "Z" in Path(f"/proc/{orphan}/stat").read_text()
    assert cli("unmount-bucket", "--stale").stdout == "no stale mounts\n"
