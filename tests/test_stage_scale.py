"""`--stage` at the lab's sizes: the cheap checks (FUSE, credentials, the bucket answering) before
the listing, inodes counted like bytes, and one listing streamed through a file on disk, with
the memory of our processes flat in the object count. Real mounts, real rclone."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import bin_path, files_under, needs_fuse
from helpers_mounts import recording_rclone

BKT = "stage-bkt"


def cli(*args: str, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([bin_path("mount-bucket"), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def listings(record) -> list[str]:
    """The recursive listings (`rclone lsjson -R`) that ran."""
    return [line for line in record.read_text().splitlines()
            if line.startswith("lsjson ") and " -R " in f" {line} "]


def nothing_created(env) -> None:
    assert not os.path.lexists(env["home"] / "s3_buckets")
    assert not (env["runtime"] / "stage").exists()
    assert not any(p.startswith("rclone/") for p in files_under(env["runtime"]))


def test_stage_with_fuse_closed_fails_before_listing_anything(env, monkeypatch, tmp_path):
    env["s3"].make_bucket(BKT, {f"f{i}.bin": b"x" * 10 for i in range(20)})
    record = recording_rclone(monkeypatch, tmp_path)
    closed = tmp_path / "fuse"
    closed.mkdir()  # exists, cannot be opened read-write: FUSE closed to this user
    proc = cli(BKT, "--stage", "--wait", env={**os.environ, "VISIONLAB_BUCKETS_DEV_FUSE": str(closed)})
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"error: cannot open {closed} read-write as ")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert listings(record) == []
    nothing_created(env)


@needs_fuse
def test_stage_of_a_missing_bucket_fails_before_listing_anything(env, monkeypatch, tmp_path):
    record = recording_rclone(monkeypatch, tmp_path)
    proc = cli("no-such-bkt", "--stage", "--wait")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: bucket 'no-such-bkt' ")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert listings(record) == []
    assert any(".visionlab-buckets-probe" in line for line in record.read_text().splitlines())
    nothing_created(env)
    assert json.loads(cli("--status", "no-such-bkt", "--json").stdout)["state"] == "not-mounted"


def test_stage_that_cannot_fit_its_inodes_is_refused_and_nothing_is_created(env):
    """Bytes fit (512 MB free for 6 KB and the 256 MB margin), inodes do not: 300 files in 3
    folders, 200 inodes."""
    env["s3"].make_bucket(BKT, {f"d{i % 3}/f{i:03d}.bin": b"x" * 20 for i in range(300)})
    small = env["tmp"] / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m,nr_inodes=200", "tmpfs", str(small)],
                   check=True, timeout=30)
    try:
        environ = {**os.environ, "VISIONLAB_BUCKETS_STAGE_DIR": str(small / "stage")}
        free = os.statvfs(small).f_favail
        proc = cli(BKT, "--stage", env=environ)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert proc.stdout == ""
        assert proc.stderr == (
            f"error: {BKT} does not fit: 303 files and folders to create (+1,024 margin), "
            f"{free:,} inodes free in {small}/stage — free inodes there, set "
            "VISIONLAB_BUCKETS_STAGE_DIR to a node-local disk with more inodes, or stage one "
            "prefix with --stage-prefix\n")
        assert os.listdir(small) == []
        nothing_created(env)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=True, timeout=30)  # busy if staged
