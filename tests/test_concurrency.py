"""Concurrency on real mounts: many processes share one mount; racing mount/unmount leave no debris."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import BUCKET, bin_path, finish, needs_fuse
from helpers_mounts import cli, fuse_mounts, rclone_pids

from visionlab.buckets import status

pytestmark = needs_fuse


def test_sixteen_processes_make_one_mount(env):
    procs = [subprocess.Popen([bin_path("mount-bucket"), BUCKET, "--root", f"dir_{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(16)]
    results = [finish(p, 180) for p in procs]
    assert [r[0] for r in results] == [0] * 16, results
    assert sum(r[1].startswith("mounted ") for r in results) == 1
    assert sum(r[1].startswith("already mounted ") for r in results) == 15
    assert fuse_mounts(env["runtime"]) == [str(env["runtime"] / "rclone" / BUCKET)]
    assert len(rclone_pids(env["runtime"])) == 1
    for i in range(16):
        assert (env["tmp"] / f"dir_{i}" / BUCKET / "hello.txt").read_text() == "hello from s3\n"
    assert len(status(BUCKET).symlinks) == 16
    assert cli("unmount-bucket", BUCKET).stdout.endswith("removed 16 link(s)\n")


def test_racing_mount_and_unmount_leave_nothing_behind(env):
    script = (
        "import random, subprocess, sys\n"
        "mb, ub, i = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "codes = []\n"
        "for n in range(4):\n"
        f"    codes.append(subprocess.run([mb, '-q', '{BUCKET}', '--root', f'race_{{i}}'],\n"
        "                                timeout=120).returncode)\n"
        f"    codes.append(subprocess.run([ub, '-q', '{BUCKET}'], timeout=120).returncode)\n"
        "print(codes)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, bin_path("mount-bucket"),
                               bin_path("unmount-bucket"), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    outs = [finish(p, 600) for p in procs]
    for code, out, errs in outs:
        assert code == 0
        codes = json.loads(out)
        assert all(c == 0 for c in codes[0::2]), (codes, errs)  # every mount succeeds
        assert all(c in (0, 3) for c in codes[1::2]), (codes, errs)  # unmount: done or not mounted
        assert "Traceback" not in errs
    cli("unmount-bucket", "--all")
    assert fuse_mounts(env["runtime"]) == []
    assert rclone_pids(env["runtime"]) == []
    assert not (env["runtime"] / "rclone" / BUCKET).exists()
    leftovers = [p.name for p in (env["runtime"] / "buckets").iterdir()
                 if p.suffix in (".json", ".tmp", ".sock") or p.name.endswith(".tmp")]
    assert leftovers == []
    assert [p for p in env["tmp"].glob("race_*/*")] == []
