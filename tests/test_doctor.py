"""`mount-bucket --doctor [BUCKET]` against the loopback S3 server: one line per check, exit 1 when
any check fails, and nothing created."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import BUCKET, bin_path

from visionlab.buckets.system import platform, rclone

CRED_HINT = ("export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or set AWS_PROFILE); "
             "see the README's 'AWS Credentials Setup'")


def doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([bin_path("mount-bucket"), "--doctor", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def healthy(env, remote: str = "s3_remote") -> list[str]:
    """The lines of a healthy machine, but for rclone's (its version varies: checked apart)."""
    config, port = env["config"], env["s3"].port
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
    return [
        f"ok    platform: {platform.get_platform_name()}",
        f"ok    fuse: /dev/fuse and {fusermount}",
        f"ok    remote {remote}: in {config}",
        f"ok    remote s3_remote_private: in {config}",
        f"ok    credentials: for {remote} from the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        f"ok    endpoint: 127.0.0.1:{port} reachable",
        f"ok    runtime dir: {env['runtime']} (will be created, mode 0700)",
    ]


def split(proc: subprocess.CompletedProcess) -> tuple[str, list[str]]:
    """(the rclone line, the other lines); stderr must be empty."""
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines[1:2]) == 1 and lines[1].startswith("ok    rclone: "), proc.stdout
    return lines[1], lines[:1] + lines[2:]


@pytest.fixture
def fuse_present():
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        pytest.skip("the fuse check is ok only with /dev/fuse and fusermount3")


def test_all_ok(env, fuse_present):
    proc = doctor()
    rclone_line, lines = split(proc)
    assert rclone_line.startswith(f"ok    rclone: {rclone.find_rclone()} (v")
    assert lines == healthy(env)
    assert proc.returncode == 0
    assert not os.path.lexists(env["runtime"])  # the doctor creates nothing


def test_all_ok_with_bucket(env, fuse_present):
    proc = doctor(BUCKET)
    _, lines = split(proc)
    assert lines == [*healthy(env), f"ok    bucket {BUCKET}: s3_remote:{BUCKET} answers"]
    assert proc.returncode == 0


def test_missing_bucket_fails(env, fuse_present):
    proc = doctor("no-such-bucket")
    _, lines = split(proc)
    assert lines == [*healthy(env),
                     "fail  bucket no-such-bucket: bucket 'no-such-bucket' not found on remote "
                     "'s3_remote' — check the name with 'rclone lsd s3_remote:' (or ask the "
                     "bucket's owner)"]
    assert proc.returncode == 1


def test_missing_remote_fails(env, fuse_present):
    config = env["config"]
    proc = doctor("--remote", "nope")
    _, lines = split(proc)
    not_there = (f"remote 'nope' is not in {config} (remotes there: s3_remote, s3_remote_private)"
                 " — run install.sh to add s3_remote and s3_remote_private, or pass --remote NAME")
    assert lines[2:6] == [
        f"fail  remote nope: missing from {config} — run install.sh to add it",
        f"ok    remote s3_remote: in {config}",
        f"ok    remote s3_remote_private: in {config}",
        f"fail  credentials: {not_there}",
    ]
    assert lines[6] == f"fail  endpoint: {not_there}"
    assert proc.returncode == 1


def test_missing_credentials_fail(env, fuse_present):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = doctor(env=clean)
    _, lines = split(proc)
    expected = healthy(env)
    expected[4] = f"fail  credentials: no AWS credentials found for remote 's3_remote' — {CRED_HINT}"
    assert lines == expected
    assert proc.returncode == 1


def test_endpoint_down_fails(env, fuse_present):
    env["s3"].stop()
    proc = doctor(BUCKET)
    _, lines = split(proc)
    expected = healthy(env)
    expected[5] = (f"fail  endpoint: 127.0.0.1:{env['s3'].port} unreachable (Connection refused)"
                   " — check the network, a proxy, or the endpoint in rclone.conf")
    assert lines[:-1] == expected
    assert lines[-1].startswith(f"fail  bucket {BUCKET}: cannot reach the S3 endpoint of remote "
                                "'s3_remote': ")
    assert lines[-1].endswith(" — check the network (and the endpoint in rclone.conf), then try "
                              "again")
    assert proc.returncode == 1
