"""Platform detection (Linux, macOS, SLURM, Lightning) and GPU detection via nvidia-smi."""

from __future__ import annotations

import os
import sys

import pytest

from visionlab.buckets.system import platform, slurm


def test_platform_detection(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    (tmp_path / "cgroup").write_text("0::/user.slice/user-1000.slice/session-4.scope\n")
    monkeypatch.setattr(slurm, "CGROUP_FILE", str(tmp_path / "cgroup"))
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


# /proc/self/cgroup as SLURM leaves it (cgroup v1: one line per hierarchy, the job's path on
# those SLURM manages; v2: one line), and as it is outside any job.
V1_BATCH = """\
12:pids:/user.slice/user-0.slice/session-3.scope
11:freezer:/slurm_node1/uid_1000/job_123/step_batch
10:memory:/slurm_node1/uid_1000/job_123/step_batch/task_0
4:cpuset:/slurm_node1/uid_1000/job_123/step_batch
1:name=systemd:/system.slice/slurmd.service
0::/system.slice/slurmd.service
"""
V1_STEP = "7:freezer:/slurm/uid_1000/job_123/step_0\n5:devices:/slurm/uid_1000/job_123/step_0\n"
V1_EXTERN = "7:freezer:/slurm/uid_1000/job_77/step_extern\n1:name=systemd:/user.slice\n"
V2_BATCH = "0::/system.slice/slurmstepd.scope/job_123/step_batch/user/task_0\n"
V2_STEP = "0::/system.slice/node7_slurmstepd.scope/job_55/step_3/user/task_0\n"
V2_EXTERN = "0::/system.slice/slurmstepd.scope/job_77/step_extern/user/task_special\n"
OUTSIDE = ["0::/user.slice/user-1000.slice/session-4.scope\n", "0::/\n",
           "0::/system.slice/slurmstepd.scope/system\n",  # slurmstepd's own, no job
           "0::/user.slice/user-1000.slice/app.slice/job_5/step_1\n",  # not SLURM's
           "12:freezer:/\n1:name=systemd:/system.slice/slurmd.service\n"]


@pytest.mark.parametrize(("text", "job", "step"), [
    (V1_BATCH, "123", "batch"), (V1_STEP, "123", "0"), (V1_EXTERN, "77", "extern"),
    (V2_BATCH, "123", "batch"), (V2_STEP, "55", "3"), (V2_EXTERN, "77", "extern")])
def test_the_job_and_step_are_read_from_the_cgroup_slurm_put_the_process_in(text, job, step):
    found = slurm.steps_in_cgroup(text)
    assert found and set(found) == {slurm.JobStep(job, step)}
    assert found[0].is_srun_step is step.isdigit()


@pytest.mark.parametrize("text", OUTSIDE)
def test_no_job_in_a_cgroup_outside_slurm_jobs(text):
    assert slurm.steps_in_cgroup(text) == []


@pytest.fixture
def no_slurm_env(monkeypatch, tmp_path):
    for var in [v for v in os.environ if v.startswith("SLURM_")]:
        monkeypatch.delenv(var)
    cgroup = tmp_path / "cgroup"
    cgroup.write_text(OUTSIDE[0])
    monkeypatch.setattr(slurm, "CGROUP_FILE", str(cgroup))
    monkeypatch.setattr(platform, "_LIGHTNING_DIR", "/nonexistent/teamspace")
    for var in ("LIGHTNING_CLOUD_PROJECT_ID", "LIGHTNING_CLOUDSPACE_HOST", "LIGHTNING_CLOUDSPACE_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VISIONLAB_BUCKETS_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return cgroup


def test_without_slurm_variables_every_decision_by_job_follows_the_cgroup(no_slurm_env, tmp_path):
    """A notebook kernel started with a clean environment inside a job (or an ssh session
    adopted into its extern step): no SLURM_* variable, but SLURM's cgroup."""
    from visionlab.buckets.mounts import mount, scopes
    from visionlab.buckets.uploads import deadline

    assert slurm.current() is None and not platform.is_slurm()
    assert mount._resolve_root(None) == tmp_path / "home" / "s3_buckets"
    assert scopes.mount_scope("bkt", held=False) == ""
    assert deadline.time_left(deadline.TERM) == (None, "not in a SLURM job")
    for text, step in ((V2_BATCH, "batch"), (V1_EXTERN, "extern")):
        no_slurm_env.write_text(text)
        job = slurm.current()
        assert job and job.step == step
        assert platform.is_slurm() and platform.get_platform_name() == "slurm"
        assert mount._resolve_root(None) == tmp_path / "rt" / "s3_buckets"
        assert scopes.mount_scope("bkt", held=False) == job.job
        assert scopes.existing_scope("bkt") == job.job
        assert deadline.time_left(deadline.TERM)[1] != "not in a SLURM job"


def test_the_cgroup_wins_over_slurm_variables_and_they_count_without_one(no_slurm_env,
                                                                          monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "9")
    monkeypatch.setenv("SLURM_STEP_ID", "2")
    assert slurm.current() == slurm.JobStep("9", "2")  # no proctrack/cgroup: the variables
    no_slurm_env.write_text(V1_STEP)
    assert slurm.current() == slurm.JobStep("123", "0")  # where SLURM put this process
