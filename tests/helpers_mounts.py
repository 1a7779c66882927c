"""Helpers shared by the tests on real mounts: run the CLI, list our FUSE mounts and rclone processes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import bin_path


def cli(*args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([bin_path(args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=timeout, **kw)


def fuse_mounts(runtime: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(runtime) in line.split()[4]]


def rclone_pids(runtime: Path) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"rclone") and b"mount" in cmd and \
                any(str(runtime).encode() in a for a in cmd) and state != "Z":
            pids.append(int(pid))
    return pids


def recording_rclone(monkeypatch, tmp_path: Path) -> Path:
    """Put an `rclone` first on PATH that appends its arguments (one line per run) to the file
    returned, then runs the real one."""
    import shutil

    real = shutil.which("rclone")
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    record = tmp_path / "argv.log"
    record.touch()
    (fake_bin / "rclone").write_text(
        f'#!/bin/sh\nprintf "%s " "$@" >> "{record}"\necho >> "{record}"\nexec "{real}" "$@"\n')
    (fake_bin / "rclone").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    return record
