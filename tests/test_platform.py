"""Platform detection (Linux, macOS, SLURM, Lightning) and GPU detection via nvidia-smi."""

from __future__ import annotations

import sys

from visionlab.buckets.system import platform


def test_platform_detection(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for var in ("LIGHTNING_CLOUD_PROJECT_ID", "LIGHTNING_CLOUDSPACE_HOST", "LIGHTNING_CLOUDSPACE_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(platform, "_LIGHTNING_DIR", "/nonexistent/teamspace")
    monkeypatch.setattr(platform, "has_gpu", lambda: False)
    assert platform.is_linux() is sys.platform.startswith("linux")
    assert platform.is_macos() is (sys.platform == "darwin")
    assert platform.get_platform_name() == "linux"
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert platform.is_slurm() and platform.get_platform_name() == "slurm"
    monkeypatch.setenv("LIGHTNING_CLOUD_PROJECT_ID", "p")
    assert platform.is_lightning_studio() and platform.get_platform_name() == "lightning"


def test_has_gpu_uses_nvidia_smi_with_timeout(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA A100 (UUID: GPU-x)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(platform.glob, "glob", lambda pattern: [])
    calls = []
    real_run = platform.runner.run

    def recording_run(argv, *args, **kwargs):
        calls.append((list(argv), args, kwargs))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(platform.runner, "run", recording_run)
    platform.has_gpu.cache_clear()
    try:
        assert platform.has_gpu() is True
        smi.write_text("#!/bin/sh\nexit 9\n")
        platform.has_gpu.cache_clear()
        assert platform.has_gpu() is False
    finally:
        platform.has_gpu.cache_clear()
    # Both calls ran nvidia-smi -L with the 5 s bound (a hung driver must not hang the caller).
    assert calls == [([str(smi), "-L"], (), {"timeout": 5})] * 2
