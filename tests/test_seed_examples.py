"""Every Python API and CLI example of the README (the README's examples), run as written against a
real mount."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import BUCKET, bin_path, needs_fuse

pytestmark = needs_fuse


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([bin_path(args[0]), *args[1:]], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def test_python_api_examples(env):
    from visionlab.buckets import is_mounted, mount_bucket, unmount_bucket

    home, runtime = env["home"], env["runtime"]
    mount_point = runtime / "rclone" / BUCKET

    link = mount_bucket(BUCKET)
    assert link == home / "s3_buckets" / BUCKET
    assert os.readlink(link) == str(mount_point)
    assert (link / "hello.txt").read_text() == "hello from s3\n"

    assert mount_bucket(BUCKET, root_dir="./data") == env["tmp"] / "data" / BUCKET
    p1 = mount_bucket(BUCKET, root_dir="~/project1/data")
    p2 = mount_bucket(BUCKET, root_dir="~/project2/data")
    assert p1 == home / "project1" / "data" / BUCKET and p2 == home / "project2" / "data" / BUCKET
    assert (p2 / "data" / "x.bin").stat().st_size == 1024

    with open("/proc/self/mountinfo") as f:
        assert sum(str(mount_point) in line for line in f) == 1, "exactly one mount"

    assert is_mounted(BUCKET) is True
    unmount_bucket(BUCKET)
    assert is_mounted(BUCKET) is False
    for path in (link, p1, p2):
        assert not os.path.lexists(path)
    assert not mount_point.exists()


def test_cli_examples(env):
    home, runtime = env["home"], env["runtime"]
    mp = runtime / "rclone" / BUCKET

    out = cli("mount-bucket", BUCKET).stdout
    assert out == f"mounted s3_remote:{BUCKET} at {mp}; link {home}/s3_buckets/{BUCKET}\n"
    out = cli("mount-bucket", f"s3://{BUCKET}").stdout
    assert out == f"already mounted s3_remote:{BUCKET} at {mp}; link {home}/s3_buckets/{BUCKET}\n"
    out = cli("mount-bucket", BUCKET, "--root", "./data").stdout
    assert out == f"already mounted s3_remote:{BUCKET} at {mp}; link {env['tmp']}/data/{BUCKET}\n"
    assert (Path("data") / BUCKET / "hello.txt").read_text() == "hello from s3\n"

    listing = cli("mount-bucket", "--list").stdout.splitlines()
    assert listing[0].split() == ["BUCKET", "STATE", "REMOTE", "PID", "MOUNT", "POINT", "SYMLINKS"]
    assert listing[1].split()[:3] == [BUCKET, "alive", "s3_remote"]

    status = cli("mount-bucket", "--status", BUCKET)
    assert status.stdout.startswith(f"{BUCKET}: alive — s3_remote:{BUCKET} at {mp}, pid ")

    out = cli("unmount-bucket", BUCKET).stdout
    assert out == f"unmounted s3_remote:{BUCKET} from {mp}; removed 2 link(s)\n"
    assert cli("mount-bucket", "--status", BUCKET, check=False).returncode == 3

    cli("mount-bucket", BUCKET)
    cli("mount-bucket", BUCKET, "--root", str(env["tmp"] / "other"))
    out = cli("unmount-bucket", "--all").stdout
    assert out == f"unmounted s3_remote:{BUCKET} from {mp}; removed 2 link(s)\n"
    assert cli("unmount-bucket", "--all").stdout == "no buckets mounted\n"


def test_private_remote_example(env):
    from visionlab.buckets import mount_bucket, status, unmount_bucket

    env["s3"].make_bucket("my-private-bucket", {"secret.txt": b"s"})
    link = mount_bucket("my-private-bucket", remote_name="s3_remote_private")
    assert (link / "secret.txt").read_bytes() == b"s"
    assert status("my-private-bucket").remote == "s3_remote_private"
    unmount_bucket("my-private-bucket")


def test_write_through_mount_reaches_s3_at_unmount(env):
    from visionlab.buckets import mount_bucket, unmount_bucket

    link = mount_bucket(BUCKET)
    (link / "results").mkdir()
    (link / "results" / "out.txt").write_text("result\n")
    unmount_bucket(BUCKET)
    assert (env["s3"].data / BUCKET / "results" / "out.txt").read_text() == "result\n"
