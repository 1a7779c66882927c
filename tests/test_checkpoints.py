"""Checkpoints through a mount: the temp-then-rename save leaves exactly the final object, and at
SIGTERM the wrapper and the API's exit drain say in one line what is still to upload and whether
it fits before SIGKILL. Real mounts against a loopback server that is paused (SIGSTOP) so the
bytes stay pending."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import BUCKET, bin_path, needs_fuse

from visionlab.buckets.records import layout
from visionlab.buckets.system import rclone, slurm
from visionlab.buckets.uploads import deadline

SIZE = 3_000_000  # "3.0 MB" in the line


def read_until(proc: subprocess.Popen, needle: str, timeout: float = 60) -> str:
    """What proc wrote on stderr up to the first line holding `needle` (bounded by `timeout`)."""
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    seen = b""
    deadline_ = time.monotonic() + timeout
    while needle.encode() not in seen or not seen.endswith(b"\n"):
        left = deadline_ - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            break
        if select.select([fd], [], [], min(left, 0.5))[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def line_with(text: str, needle: str) -> str:
    return next((ln for ln in text.splitlines() if needle in ln), "")


# A program that saves a checkpoint, says "ready", and on SIGTERM waits for the file `go` before
# it exits (so the line is said while the checkpoint is surely still pending, not uploading).
PROGRAM = """
import os, signal, sys, time
from pathlib import Path
link, go = Path(sys.argv[1]), Path(sys.argv[2])
{mount}
with open(link / "ckpt.bin", "wb") as f:
    f.write(b"x" * {size})
term = []
signal.signal(signal.SIGTERM, lambda s, f: term.append(s))
print("ready", flush=True)
while not (term and go.exists()):
    time.sleep(0.05)
sys.exit(0)
"""


def run_until_sigterm_line(argv: list[str], s3, go: Path, env=None) -> str:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    try:
        ready = select.select([proc.stdout], [], [], 120)[0]
        assert ready and proc.stdout.readline().strip() == b"ready", read_until(proc, "", 1)
        # Closed is not yet queued: rclone queues the file when the kernel's release reaches it.
        # Once it is queued (upload due 5 s later), pause the server: the upload cannot finish.
        socket = layout.paths_for(BUCKET, "").socket
        until = time.monotonic() + 60
        while not rclone.upload_queue(socket) and time.monotonic() < until:
            time.sleep(0.02)
        s3.pause()
        proc.send_signal(signal.SIGTERM)
        text = read_until(proc, "visionlab-buckets: SIGTERM:")
        go.touch()
        proc.wait(120)  # the drain gives up after its 3 s timeout
        return text
    finally:
        s3.resume()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@needs_fuse
def test_wrapper_says_the_pending_bytes_at_sigterm(env):
    link = env["home"] / "s3_buckets" / BUCKET
    go = env["tmp"] / "go"
    code = PROGRAM.format(mount="", size=SIZE)
    text = run_until_sigterm_line(
        [bin_path("mount-bucket"), "--timeout", "3", BUCKET, "--", sys.executable, "-c", code,
         str(link), str(go)], env["s3"], go)
    line = line_with(text, "visionlab-buckets: SIGTERM:")
    assert line.startswith(
        f"visionlab-buckets: SIGTERM: 3.0 MB to upload (1 file(s), {BUCKET}), "
        "no upload rate seen yet; time before SIGKILL unknown (not in a SLURM job)"), text


@needs_fuse
def test_api_exit_drain_says_the_pending_bytes_at_sigterm(env):
    go = env["tmp"] / "go"
    mount = ("from visionlab.buckets import mount_bucket\n"
             f"link = Path(mount_bucket({BUCKET!r}))")
    code = textwrap.dedent(PROGRAM.format(mount=mount, size=SIZE))
    text = run_until_sigterm_line(
        [sys.executable, "-c", code, "unused", str(go)], env["s3"], go,
        env={**os.environ, "VISIONLAB_BUCKETS_EXIT_TIMEOUT": "3"})
    line = line_with(text, "visionlab-buckets: SIGTERM:")
    assert line.startswith(f"visionlab-buckets: SIGTERM: 3.0 MB to upload (1 file(s), {BUCKET})"), \
        text


@needs_fuse
def test_temp_then_rename_save_leaves_only_the_final_object(env):
    """The usual safe save, three times over: write a temp file, fsync, rename onto the final
    name. S3 ends with the final object holding the last bytes, and no temporary object."""
    link = env["home"] / "s3_buckets" / BUCKET
    proc = subprocess.run([bin_path("mount-bucket"), BUCKET], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    final = link / "ckpt" / "model.pt"
    final.parent.mkdir()
    contents = [bytes([65 + i]) * (2_000_000 + i * 100_000) for i in range(3)]
    for i, data in enumerate(contents):
        tmp = final.with_name(f".model.pt.tmp{i}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
    synced = subprocess.run([bin_path("mount-bucket"), "--sync", BUCKET], capture_output=True,
                            text=True, timeout=120)
    assert synced.returncode == 0, synced.stderr
    on_server = env["s3"].data / BUCKET / "ckpt"
    assert sorted(p.name for p in on_server.iterdir()) == ["model.pt"]
    assert (on_server / "model.pt").read_bytes() == contents[-1]


def fake_scontrol(tmp: Path, monkeypatch: pytest.MonkeyPatch, end: str) -> None:
    bindir = tmp / "bin"
    bindir.mkdir()
    script = bindir / "scontrol"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$1 $2" in
          "show config") printf 'KillTimeout = 60 sec\\nKillWait                = 30 sec\\n' ;;
          "show job") printf 'JobId=4242 TimeLimit=01:00:00 EndTime={end} Partition=p\\n' ;;
          *) exit 1 ;;
        esac
        """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")


def test_time_left_comes_from_killwait_and_the_jobs_end(tmp_path, monkeypatch):
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 120))
    fake_scontrol(tmp_path, monkeypatch, end)
    assert slurm.kill_wait() == 30
    assert deadline.time_left(signal.SIGTERM) == (30.0, "KillWait")
    left, why = deadline.time_left(signal.SIGUSR1)
    assert 140 <= left <= 150 and why.endswith("+ KillWait 30 s"), (left, why)
    monkeypatch.delenv("SLURM_JOB_ID")
    assert deadline.time_left(signal.SIGTERM) == (None, "not in a SLURM job")


def test_the_line_says_whether_the_uploads_fit():
    o = deadline.Outlook(pending=2_000_000_000, files=1, rate=100e6,
                         rate_is_current=True, buckets=["results"], unanswered=[])
    assert deadline.describe("SIGTERM", o, 30.0, "KillWait") == (
        "visionlab-buckets: SIGTERM: 2,000.0 MB to upload (1 file(s), results), uploading at "
        "100.0 MB/s (~20 s); SIGKILL in 30 s (KillWait): fits")
    assert deadline.describe("SIGTERM", o, 10.0, "KillWait").endswith(
        "SIGKILL in 10 s (KillWait): does NOT fit (short by ~10 s)")
    idle = o._replace(pending=0, files=0)
    assert deadline.describe("SIGUSR1", idle, None, "not in a SLURM job") == (
        "visionlab-buckets: SIGUSR1: nothing left to upload (results); time before SIGKILL "
        "unknown (not in a SLURM job)")
