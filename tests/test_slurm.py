"""A real single-node SLURM (tests/slurm_cluster.py): jobs as a normal user mount buckets.

The scenarios (what survives a job's end) are in tests/slurm_scenarios.py; the measured table is
tests/slurm_results.md (before the fix: tests/slurm_baseline.md). The tests here hold the
issue's claims: the documented patterns strand nothing when the job is cancelled (and at the time
limit), one job's end breaks no read of another job, a plain mount inside an srun step is
refused, and what a plain CLI job strands is reported and uploaded by the next mount.
Marker `slurm` on every test; `slurm_timelimit` on the ~80 s time-limit case
(deselect with -m 'not slurm_timelimit').
"""

from __future__ import annotations

import shlex
import subprocess

import pytest
from slurm_cluster import SlurmCluster
from slurm_scenarios import (
    DOCUMENTED,
    count_on_server,
    count_stranded,
    expected_files,
    fresh_bucket,
    run_hidden_job,
    run_srun_mount,
    run_two_jobs,
    run_write_scenario,
)

pytest_plugins = ["slurm_fixtures"]  # fixtures slurm, slurm_s3, slurm_job
pytestmark = pytest.mark.slurm

ALL = len(expected_files())  # 21


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


def test_fuse_is_opened_to_the_job_user_alone(slurm_job):
    """While the cluster runs, /dev/fuse keeps its mode (0600 here) and gains one ACL entry for
    the job user: the job user can open it, another user (nobody) still cannot."""
    cluster = slurm_job
    acl = subprocess.run(["getfacl", "-cp", "/dev/fuse"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    assert f"user:{cluster.user}:rw-" in acl.splitlines(), acl
    probe = "python3 -c 'import os; os.close(os.open(\"/dev/fuse\", os.O_RDWR)); print(\"OPENED\")'"
    assert "OPENED" in cluster.as_user(probe).stdout
    if "other::---" in acl.splitlines():  # closed to others here (0666 on a normal node)
        other = subprocess.run(["su", "nobody", "-s", "/bin/sh", "-c", probe],
                               capture_output=True, text=True, timeout=30, cwd="/")
        assert "OPENED" not in other.stdout and "Permission denied" in other.stderr, other


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


@pytest.mark.parametrize("pattern", DOCUMENTED)
def test_documented_pattern_strands_nothing_on_scancel(slurm_job, slurm_s3, pattern):
    """exec/srun wrapper and exec/srun Python API: scancel right after the writes (before
    rclone's write-back), and all 21 files are on the server, none left in a node cache, and no
    dead mount: the wrapper and the API both unmount the job's mount they made."""
    r = run_write_scenario(slurm_job, slurm_s3, pattern, "scancel")
    print(r.row())
    assert r.written == ALL, r.output
    assert r.state == "CANCELLED", r.output
    assert (r.on_server, r.stranded, r.dead_mounts) == (ALL, 0, 0), (r.row(), r.output)


def test_job_a_cancelled_breaks_no_read_of_job_b(slurm_job, slurm_s3):
    """Two jobs of one user on one node mount one bucket (B with its own --root); A is
    cancelled while B reads through its link: not one of B's reads fails."""
    r = run_two_jobs(slurm_job, slurm_s3, "scancel", b_delay=2, a_after_b=3, b_seconds=8)
    print(f"B reads ok={r.ok} failed={r.failed} A={r.a_state} B={r.b_state}")
    assert r.a_state.startswith("CANCELLED"), r.output_a
    assert r.ok > 0 and r.failed == 0, (r.first_error, r.output_b)
    assert r.b_state == "COMPLETED 0:0", r.output_b


def test_a_program_in_a_job_without_slurm_variables_breaks_no_read_outside_it(slurm_job, slurm_s3):
    """A batch script unsets every SLURM_* variable and runs a Python program that mounts B and
    sleeps; the same user, outside any job, mounts B and reads its 200 files in a loop while the
    job ends. The job is known from its cgroup: is_slurm() is True, the program's mount is the
    job's own, and not one outside read fails; the outside mount is alive after the job."""
    cluster = slurm_job
    r = run_hidden_job(cluster, slurm_s3)
    print(f"is_slurm={r.is_slurm} vars={r.slurm_vars} job link={r.job_link} reads ok={r.ok} "
          f"failed={r.failed} status exit={r.status_exit} job={r.job_state}")
    said = (r.slurm_vars, r.is_slurm, r.job_state, r.failed, r.status_exit)
    assert said == ("[]", "True", "COMPLETED 0:0", 0, "0"), (r, r.output_job, r.output_outside)
    assert r.ok > 0, r.output_outside
    assert r.job_link.startswith(f"{cluster.runtime_dir}/s3_buckets/hidden-bkt "
                                 f"{cluster.runtime_dir}/jobs/"), r.output_job


def test_plain_mount_in_srun_step_is_refused_in_one_line(slurm_job, slurm_s3):
    r = run_srun_mount(slurm_job, slurm_s3)
    print(r.error_lines)
    assert r.mount_step_exit == "1", r.output
    assert len(r.error_lines) == 1 and r.error_lines[0].startswith("error: "), r.output
    assert "srun mount-bucket srun-bkt -- CMD" in r.error_lines[0], r.output
    assert (r.mounts_after, r.link_after) == (0, False), r.output


def test_plain_cli_job_strands_then_status_reports_and_next_job_uploads(slurm_job, slurm_s3):
    """`mount-bucket B` + writes and the script ends (no sync): the writes are stranded in the
    node cache; --status/--list (as the user, outside any job) report them; the next job's
    `mount-bucket B` uploads them and `mount-bucket --sync B` confirms: 21 of 21 on the server."""
    cluster, bucket = slurm_job, "results-bkt"
    r = run_write_scenario(cluster, slurm_s3, "cli", "end", bucket=bucket, reset_after=False)
    print(r.row())
    assert r.written == ALL and r.stranded > 0 and r.on_server + r.stranded == ALL, r.output
    env = shlex.quote(str(cluster.env_file))
    status = cluster.as_user(f". {env} && mount-bucket --status {bucket}")
    listed = cluster.as_user(f". {env} && mount-bucket --list")
    print(status.stdout, status.stderr, listed.stdout, sep="\n")
    said = f"{r.stranded} file(s) written but never uploaded"
    assert said in status.stdout + status.stderr, (status.stdout, status.stderr)
    assert said in listed.stdout + listed.stderr, (listed.stdout, listed.stderr)
    root = cluster.user_dir_for("root-next-job")
    job = cluster.run_job(f"mount-bucket {bucket} --root {root}\nmount-bucket --sync {bucket}\n"
                          f"echo SYNC_EXIT=$?", name="next-job")
    assert "SYNC_EXIT=0" in job.output, job.output
    assert count_on_server(slurm_s3, bucket) == ALL, job.output
    assert count_stranded(cluster, slurm_s3, bucket) == 0, job.output


@pytest.mark.slurm_timelimit
def test_exec_wrapper_strands_nothing_at_the_time_limit(slurm_job, slurm_s3):
    """The one time-limit case (~80 s): `exec mount-bucket B -- CMD`, killed by its --time=1
    while the writer rewrites its files every 2 s: the last version of each is on the server."""
    r = run_write_scenario(slurm_job, slurm_s3, "wrapper-exec", "timelimit")
    print(r.row())
    assert r.state == "TIMEOUT", r.output
    assert r.written == ALL, r.output
    assert (r.on_server, r.stranded, r.dead_mounts) == (ALL, 0, 0), (r.row(), r.output)
