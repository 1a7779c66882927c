"""Security: unsafe runtime dirs refused, files private, the secret never on argv, in logs or state."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import BUCKET, SECRET_KEY, needs_fuse
from helpers_mounts import cli

from visionlab.buckets import mount_bucket, unmount_bucket

pytestmark = needs_fuse


def as_nobody(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           *argv], capture_output=True, text=True, timeout=120)


def runtime_files(runtime: Path) -> list[Path]:
    """Every regular file under the runtime dir, not descending into the FUSE mounts."""
    found = []
    for dirpath, dirnames, filenames in os.walk(runtime):
        if Path(dirpath) == runtime / "rclone":
            dirnames[:] = []  # the mount points: the bucket's own content
        found += [Path(dirpath, f) for f in filenames if Path(dirpath, f).is_file()]
    return found


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as a second user (setpriv)")
def test_runtime_dir_made_by_another_user_is_refused(env):
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="vb-shared-", dir="/tmp"))  # like /tmp: 1777
    shared.chmod(0o1777)
    request_cleanup = shutil.rmtree
    runtime = shared / "victim"
    # Another user creates our runtime dir first, with a symlink trap inside.
    assert as_nobody("mkdir", "-m", "0700", str(runtime)).returncode == 0
    assert as_nobody("ln", "-s", "/etc", str(runtime / "rclone")).returncode == 0
    before = sorted(os.listdir("/etc"))
    proc = cli("mount-bucket", BUCKET, env={**os.environ, "VISIONLAB_BUCKETS_RUNTIME_DIR": str(runtime)})
    assert proc.returncode == 1
    assert proc.stderr == (f"error: {runtime} is owned by uid 65534, not by you — "
                           "set VISIONLAB_BUCKETS_RUNTIME_DIR to a directory you own\n")
    assert sorted(os.listdir("/etc")) == before
    assert not os.path.lexists(env["home"] / "s3_buckets")
    request_cleanup(shared)


@pytest.mark.parametrize("kind", ["symlink", "world-writable", "group-writable"])
def test_unsafe_runtime_dir_is_refused(env, tmp_path, kind):
    runtime = tmp_path / "rt"
    if kind == "symlink":
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        runtime.symlink_to(target)
    else:
        runtime.mkdir()
        runtime.chmod(0o777 if kind == "world-writable" else 0o770)
    proc = cli("mount-bucket", BUCKET, env={**os.environ, "VISIONLAB_BUCKETS_RUNTIME_DIR": str(runtime)})
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {runtime} is ")
    assert "\n" not in proc.stderr.rstrip("\n")
    if kind == "symlink":
        assert os.listdir(tmp_path / "elsewhere") == []


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as a second user (setpriv)")
def test_log_state_cache_unreadable_by_others(env):
    link = mount_bucket(BUCKET)
    (link / "w.txt").write_text("w")
    meta = env["runtime"] / "buckets"
    for path in (meta / f"{BUCKET}.log", meta / f"{BUCKET}.json", meta / "cache" / BUCKET):
        assert os.stat(path).st_mode & 0o077 == 0, path
        assert as_nobody("cat", str(path)).returncode != 0
        assert as_nobody("ls", str(path)).returncode != 0
    assert os.stat(env["runtime"]).st_mode & 0o777 == 0o700
    unmount_bucket(BUCKET)


def test_secret_never_in_cmdline_log_state_or_errors(env, monkeypatch):
    from visionlab.buckets.system import runner

    argvs: list[list[str]] = []
    real_run, real_spawn = runner.run, runner.spawn_detached

    def recording_run(argv, *args, **kwargs):
        argvs.append(list(argv))
        return real_run(argv, *args, **kwargs)

    def recording_spawn(argv, *args, **kwargs):
        argvs.append(list(argv))
        return real_spawn(argv, *args, **kwargs)

    monkeypatch.setattr(runner, "run", recording_run)
    monkeypatch.setattr(runner, "spawn_detached", recording_spawn)
    secret = SECRET_KEY.encode()
    link = mount_bucket(BUCKET)
    (link / "s.txt").write_text("s")
    # While mounted: every command line on the machine, the state file, the log, every file.
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                assert secret not in Path(f"/proc/{pid}/cmdline").read_bytes(), pid
            except OSError:
                continue
    meta = env["runtime"] / "buckets"
    files = runtime_files(env["runtime"])
    assert {meta / f"{BUCKET}.json", meta / f"{BUCKET}.log"} <= set(files)
    for path in files:
        assert secret not in path.read_bytes(), path
    unmount_bucket(BUCKET)
    for path in runtime_files(env["runtime"]):
        assert secret not in path.read_bytes(), path
    # Every command the package ran: preflight, the mount itself, fusermount at unmount.
    assert any(a[1:2] == ["lsjson"] for a in argvs) and any(a[1:2] == ["mount"] for a in argvs)
    assert any("fusermount" in a[0] for a in argvs), argvs
    for argv in argvs:
        assert not any(SECRET_KEY in arg for arg in argv), argv
    wrong = {**os.environ, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-123"}
    proc = cli("mount-bucket", "other-bucket", env=wrong)
    assert proc.returncode != 0 and "wrong-secret-value-123" not in proc.stderr + proc.stdout
