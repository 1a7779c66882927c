"""A real single-node SLURM (tests/slurm_cluster.py): jobs as a normal user mount buckets.

The baseline scenarios (what survives a job's end) are in tests/slurm_scenarios.py; the tests
here only check the harness works and record today's behaviour where it is the issue's subject.
Marker `slurm` on every test; `slurm_timelimit` on the ~80 s time-limit case
(deselect with -m 'not slurm_timelimit').
"""

from __future__ import annotations

import pytest
from slurm_cluster import SlurmCluster
from slurm_scenarios import fresh_bucket, run_write_scenario

pytest_plugins = ["slurm_fixtures"]  # fixtures slurm, slurm_s3, slurm_job
pytestmark = pytest.mark.slurm


def test_proctrack_is_cgroup_proven_by_proc_self_cgroup(slurm_job):
    cluster = slurm_job
    assert cluster.config_value("ProctrackType") == "proctrack/cgroup"
    job = cluster.run_job("cat /proc/self/cgroup\necho STEP\nsrun cat /proc/self/cgroup",
                          name="cgroup")
    assert job.ok, job.output
    paths = SlurmCluster.freezer_paths(job.output)
    uid = cluster.pw.pw_uid
    assert paths == [f"/slurm_{cluster.node}/uid_{uid}/job_{job.job_id}/step_batch",
                     f"/slurm_{cluster.node}/uid_{uid}/job_{job.job_id}/step_0"], job.output


def test_job_as_user_mounts_a_bucket_and_reads_through_the_link(slurm_job, slurm_s3):
    cluster = slurm_job
    fresh_bucket(slurm_s3, "smoke-bkt", {"hello.txt": b"hello from a slurm job\n"})
    root = cluster.user_dir_for("smoke-root")
    job = cluster.run_job(f"id -un\nmount-bucket smoke-bkt --root {root}\n"
                          f"cat {root}/smoke-bkt/hello.txt", name="smoke")
    assert job.ok, job.output
    assert job.output.splitlines()[0] == cluster.user
    assert "hello from a slurm job" in job.output
    assert "AWS_SECRET" not in job.output


def test_baseline_cli_batch_job_end_counts(slurm_job, slurm_s3):
    """Records today's numbers; asserts only that the job wrote all 21 files."""
    r = run_write_scenario(slurm_job, slurm_s3, "cli", "end")
    print(r.row())
    assert r.written == 21, r.output


@pytest.mark.slurm_timelimit
def test_baseline_cli_time_limit_counts(slurm_job, slurm_s3):
    """The one time-limit case (~80 s): the job is killed by its --time=1."""
    r = run_write_scenario(slurm_job, slurm_s3, "cli", "timelimit")
    print(r.row())
    assert r.state == "TIMEOUT", r.output
    assert r.written == 21, r.output
