"""An upgrade from the flat layout (every module in one folder) to the folders keeps what the
previous version made working: its mount is found and healed, and its copy in progress (its
stager started as `python -m visionlab.buckets.stager`) is stopped by an unmount and resumed by
a waiter. The previous version is the last commit before the folders, read from git; real
mounts, real copies, both versions side by side."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BUCKET, bin_path, needs_fuse, signal_checked

pytestmark = [needs_fuse]
ROOT = Path(__file__).resolve().parent.parent
PREVIOUS = "02d5b6e"  # the last commit of the flat layout
OLD_STAGER = "visionlab.buckets.stager"
BKT = "upgrade-bkt"


@pytest.fixture(scope="module")
def previous_src(tmp_path_factory) -> Path:
    """src/ of the previous version, unpacked from git."""
    if not shutil.which("git"):
        pytest.skip("git is not installed: the previous version is read from git")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS, "src"],
                             capture_output=True, timeout=60)
    if archive.returncode != 0:
        pytest.skip(f"commit {PREVIOUS} is not in this clone (a shallow clone?): "
                    f"{archive.stderr.decode(errors='replace').strip()}")
    top = tmp_path_factory.mktemp("previous")
    subprocess.run(["tar", "-x", "-C", str(top)], input=archive.stdout, check=True, timeout=60)
    assert (top / "src" / "visionlab" / "buckets" / "stager.py").is_file()
    return top / "src"


def old(previous_src: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`mount-bucket ARGS` of the previous version (its src first on the path; whatever it
    starts, the stager included, inherits that path)."""
    code = "from visionlab.buckets.cli import mount_main; mount_main()"
    env = {**os.environ, "PYTHONPATH": str(previous_src)}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def new(name: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([bin_path(name), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def stage_json(env) -> dict:
    return json.loads((env["runtime"] / "stage" / BKT / "stage.json").read_text())


def wait_for(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_mount_made_by_the_previous_version_is_found_and_healed(env, previous_src):
    made = old(previous_src, BUCKET)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("mounted s3_remote:")
    status = new("mount-bucket", "--status", BUCKET)
    assert status.returncode == 0 and status.stdout.startswith(f"{BUCKET}: alive"), status
    again = new("mount-bucket", BUCKET)
    assert again.returncode == 0 and again.stdout.startswith("already mounted"), again
    pid = json.loads((env["runtime"] / "buckets" / f"{BUCKET}.json").read_text())["pid"]
    signal_checked(pid, signal.SIGKILL, "rclone")  # the old version's rclone dies
    wait_for(lambda: new("mount-bucket", "--status", BUCKET, "-q").returncode == 4)
    healed = new("mount-bucket", BUCKET)
    assert healed.returncode == 0 and healed.stdout.startswith("remounted (was stale)"), healed
    link = env["home"] / "s3_buckets" / BUCKET
    assert (link / "hello.txt").read_bytes() == b"hello from s3\n"
    gone = new("unmount-bucket", BUCKET)
    assert gone.returncode == 0, gone.stderr


def _old_copy_in_progress(env, previous_src) -> tuple[dict[str, bytes], int]:
    """The previous version stages BKT; the server is paused once part of it is copied, so its
    stager is alive in the middle of the copy. Returns (the files, the stager's pid)."""
    s3 = env["s3"]
    files = {f"train/f{i:04d}.bin": os.urandom(20_000) for i in range(300)}
    s3.make_bucket(BKT, files)
    made = old(previous_src, BKT, "--stage")
    assert made.returncode == 0, made.stderr
    pid = stage_json(env)["pid"]
    assert OLD_STAGER in subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True,
                                        text=True, timeout=10).stdout.split()
    work = env["runtime"] / "stage" / BKT / "work" / "train"
    s3.pause()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not work.is_dir() or len(list(work.glob("*.bin"))) < 30):
        s3.resume()
        time.sleep(0.01)
        s3.pause()
        time.sleep(0.05)
    assert stage_json(env)["state"] == "copying"
    return files, pid


def _check_resumed(env, files: dict[str, bytes]) -> None:
    link = env["home"] / "s3_buckets" / BKT
    st = stage_json(env)
    assert st["state"] == "ready", st
    assert os.path.realpath(link) == os.path.realpath(env["runtime"] / "stage" / BKT / "current")
    assert st["downloaded"] < len(files), st  # resumed: what the old stager fetched is kept
    for rel in ("train/f0000.bin", "train/f0299.bin"):
        assert (link / rel).read_bytes() == files[rel]


def test_an_unmount_stops_the_previous_versions_copy_and_a_new_stage_resumes_it(env, previous_src):
    files, pid = _old_copy_in_progress(env, previous_src)
    try:
        stopped = new("unmount-bucket", BKT)
    finally:
        env["s3"].resume()
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: subprocess.run(["ps", "-p", str(pid)], capture_output=True,
                                    timeout=10).returncode != 0, timeout=30)
    assert stage_json(env)["state"] == "failed"  # stopped by the unmount, its work dir kept
    resumed = new("mount-bucket", BKT, "--stage", "--wait")
    assert resumed.returncode == 0, resumed.stderr
    _check_resumed(env, files)
    assert new("unmount-bucket", BKT).returncode == 0


def test_a_waiter_takes_over_the_previous_versions_copy_when_its_stager_dies(env, previous_src):
    files, pid = _old_copy_in_progress(env, previous_src)
    waiter = subprocess.Popen([bin_path("mount-bucket"), BKT, "--stage", "--wait"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
    try:
        try:
            time.sleep(1.0)  # the new version's waiter is waiting for the old copy by now
            signal_checked(pid, signal.SIGKILL, OLD_STAGER, group=True)  # e.g. its job ended
        finally:
            env["s3"].resume()
        _out, err = waiter.communicate(timeout=180)
    finally:
        if waiter.poll() is None:  # a failure above: never leave it waiting
            waiter.kill()
            waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert stage_json(env)["pid"] != pid
    _check_resumed(env, files)
    assert new("unmount-bucket", BKT).returncode == 0
