"""Process checks: procs.is_alive counts an unreaped zombie as dead."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from visionlab.buckets.system import procs


def test_zombie_is_dead():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert procs.is_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 5
        while procs.is_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Not yet reaped (no wait()): a zombie, which must count as dead.
        assert Path(f"/proc/{child.pid}").exists()
        assert procs.is_alive(child.pid) is False
    finally:
        child.wait(10)
