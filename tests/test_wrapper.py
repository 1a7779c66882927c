"""`mount-bucket BUCKET -- CMD`: CMD runs with the bucket mounted, gets our signals, its writes
reach S3 before we exit with its status. Real mounts, outside SLURM (tests/test_slurm.py covers
the same inside jobs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import BUCKET, bin_path, finish, needs_fuse, readline

from visionlab.buckets.cli import split_command

pytestmark = [needs_fuse]


def test_split_command():
    assert split_command(["b", "--", "python", "x.py"]) == (["b"], ["python", "x.py"])
    assert split_command(["--root", "r", "b", "--", "ls", "--", "-l"]) == (
        ["--root", "r", "b"], ["ls", "--", "-l"])
    assert split_command(["--", "b"]) == (["--", "b"], [])  # `--` only ends the options
    assert split_command(["--root", "--", "b"]) == (["--root", "--", "b"], [])
    # Every option that takes a value (derived from the command) is skipped with its value.
    assert split_command(["--stage-prefix", "p", "--timeout", "5", "b", "--", "ls"]) == (
        ["--stage-prefix", "p", "--timeout", "5", "b"], ["ls"])
    assert split_command(["--stage-prefix", "p", "--", "b"]) == (["--stage-prefix", "p", "--", "b"], [])
    assert split_command(["b"]) == (["b"], [])


def test_wrapper_exits_with_the_commands_status_after_its_writes_reached_s3(env):
    s3 = env["s3"]
    link = env["home"] / "s3_buckets" / BUCKET
    script = f"for i in 1 2 3; do echo $i > '{link}'/w_$i.txt; done; exit 3"
    proc = subprocess.run([bin_path("mount-bucket"), BUCKET, "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert {p.name for p in (s3.data / BUCKET).glob("w_*.txt")} == {"w_1.txt", "w_2.txt", "w_3.txt"}
    # Outside SLURM the mount is this user's shared mount: it stays.
    assert subprocess.run([bin_path("mount-bucket"), "--status", BUCKET], timeout=60).returncode == 0


def test_wrapper_passes_signals_on_and_drains(env):
    s3 = env["s3"]
    link = env["home"] / "s3_buckets" / BUCKET
    marker = env["tmp"] / "usr1"
    code = (
        "import signal, sys, time\n"
        f"def usr1(s, f): open({str(marker)!r}, 'w').write('usr1')\n"
        f"def term(s, f): open({str(link / 'on_term.txt')!r}, 'w').write('bye'); sys.exit(7)\n"
        "signal.signal(signal.SIGUSR1, usr1); signal.signal(signal.SIGTERM, term)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(0.1)\n"
    )
    proc = subprocess.Popen([bin_path("mount-bucket"), BUCKET, "--", sys.executable, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    assert readline(proc, 120) == "ready"
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "usr1"
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, 120)
    assert code == 7, err
    assert (s3.data / BUCKET / "on_term.txt").read_text() == "bye"


def test_wrapper_with_a_missing_command(env):
    proc = subprocess.run([bin_path("mount-bucket"), BUCKET, "--", "no-such-command-xyz"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 127
    assert proc.stderr.strip() == "error: no-such-command-xyz: No such file or directory"
    assert os.path.islink(env["home"] / "s3_buckets" / BUCKET)
