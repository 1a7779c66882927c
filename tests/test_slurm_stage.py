"""Staging on a real SLURM (tests/slurm_cluster.py): many jobs of one user on one node share one
staged copy, fetched from S3 about once.

Jobs run as the unprivileged job user and reach the loopback S3 server through a byte-counting
proxy (tests/s3proxy.py), capped in rate so a copy lasts long enough to be interrupted. Every job
records, right after `--stage --wait` (or `mount_bucket(..., stage=True, wait=True)`) returns,
where its link resolves, then reads every file back and compares checksums with the dataset.
The figures are in tests/slurm_results.md; each test's one-line mutation in tests/MUTATIONS.md.
Marker `slurm` on every test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from slurm_cluster import Job, SlurmCluster
from slurm_scenarios import fresh_bucket

pytest_plugins = ["slurm_fixtures"]  # fixtures slurm_proxied, slurm_proxied_job
pytestmark = pytest.mark.slurm

BUCKET = "stage-bkt"
N_FILES = 2000
FILE_SIZE = 10_000
DATASET = N_FILES * FILE_SIZE  # 20 MB
FAST = 4e6  # proxy rate (bytes/s) for a copy nobody interrupts: ~5 s
SLOW = 1e6  # for a copy cancelled mid-way: ~20 s

CHECK = '''\
"""check(link, manifest): where `link` resolves, and every file under it against the manifest."""
import hashlib, json, os, sys

def check(link, manifest, tag=""):
    real = os.path.realpath(link)
    with open(manifest) as f:
        want = json.load(f)
    ok = bad = 0
    for rel, digest in want.items():
        try:
            with open(os.path.join(link, rel), "rb") as f:
                good = hashlib.sha256(f.read()).hexdigest() == digest
        except OSError:
            good = False
        ok += good
        bad += not good
    print(f"CHECK{tag} real={real} ok={ok} bad={bad}", flush=True)
    return bad == 0

if __name__ == "__main__":
    sys.exit(0 if check(sys.argv[1], sys.argv[2]) else 1)
'''

API = '''\
"""A training script: mount_bucket(B, stage=True, wait=True), then read the dataset."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vb_check import check
from visionlab.buckets import mount_bucket
path = mount_bucket(sys.argv[1], stage=True, wait=True)
rank = os.environ.get("SLURM_PROCID", "0")
print(f"RANK {rank} REAL={os.path.realpath(path)}", flush=True)
sys.exit(0 if check(path, sys.argv[2], tag=f" rank={rank}") else 1)
'''

CMD = '''\
"""CMD of the wrapper: say where its link resolves (before anything else), then exit with
--exit N, or --hold until a signal comes, note it in --mark (a file: a cancelled srun step's
last output may never reach the job's output file) and exit 40 + its number."""
import argparse, os, signal, sys, time
p = argparse.ArgumentParser()
p.add_argument("--link")
p.add_argument("--exit", type=int, default=0)
p.add_argument("--hold", action="store_true")
p.add_argument("--mark")
a = p.parse_args()
print(f"CMD REAL={os.path.realpath(a.link)}", flush=True)
if a.hold:
    def on_signal(num, _frame):
        print(f"CMD GOT SIGNAL {num}", flush=True)
        with open(a.mark, "a") as f:
            f.write(f"CMD GOT SIGNAL {num}\\n")
        sys.exit(40 + num)
    for s in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(s, on_signal)
    print("CMD HOLDING", flush=True)
    time.sleep(600)
sys.exit(a.exit)
'''


@dataclass
class Dataset:
    manifest: Path  # rel -> sha256, readable by the job user
    check: Path
    api: Path
    cmd: Path


@pytest.fixture(scope="module")
def dataset(slurm_proxied) -> Dataset:
    cluster = slurm_proxied
    files = {f"d{i % 4}/f{i:05d}.bin": os.urandom(FILE_SIZE) for i in range(N_FILES)}
    fresh_bucket(cluster.s3, BUCKET, files)
    digests = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    return Dataset(cluster.write_user_file("manifest.json", json.dumps(digests)),
                   cluster.write_user_file("vb_check.py", CHECK),
                   cluster.write_user_file("vb_api.py", API),
                   cluster.write_user_file("vb_cmd.py", CMD))


@pytest.fixture
def staging(slurm_proxied_job, dataset) -> SlurmCluster:
    return slurm_proxied_job


def stage_dir(cluster: SlurmCluster) -> Path:
    return cluster.runtime_dir / "stage" / BUCKET


def default_link(cluster: SlurmCluster) -> Path:
    """The default link inside a SLURM job: <runtime>/s3_buckets/<bucket>."""
    return cluster.runtime_dir / "s3_buckets" / BUCKET


def stage_state(cluster: SlurmCluster) -> dict:
    try:
        return json.loads((stage_dir(cluster) / "stage.json").read_text())
    except (OSError, ValueError):
        return {}


def copies(cluster: SlurmCluster) -> list[str]:
    return sorted(p.name for p in stage_dir(cluster).glob("copy-*"))


def on_copy(cluster: SlurmCluster, real: str) -> bool:
    """Is `real` the node's complete copy (what stage/<bucket>/current points at)?"""
    current = os.path.realpath(stage_dir(cluster) / "current")
    return real == current and Path(current).name.startswith("copy-")


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def values(output: str, key: str) -> list[str]:
    """Every `KEY=value` token in a job's output (value up to the next blank)."""
    return re.findall(rf"\b{re.escape(key)}=(\S*)", output)


def checked(output: str) -> list[tuple[str, int, int]]:
    """(real, ok, bad) of each CHECK line."""
    return [(m[0], int(m[1]), int(m[2]))
            for m in re.findall(r"^CHECK.* real=(\S+) ok=(\d+) bad=(\d+)$", output, re.M)]


def task_row(kind: str, job: Job, cluster: SlurmCluster) -> str:
    real = (values(job.output, "REAL") or ["?"])[0]
    checks = checked(job.output)
    reads = f"{checks[0][1]}/{N_FILES}" if checks else "-"
    return (f"| {kind} | {job.info.get('ArrayTaskId', job.job_id)} | {job.state} {job.exit_code} "
            f"| {'copy' if on_copy(cluster, real) else real} | {reads} |")


def served_row(what: str, cluster: SlurmCluster, extra: str = "") -> str:
    served = cluster.proxy.served
    st = stage_state(cluster)
    return (f"| {what} | {served:,} | {served / DATASET:.2f}x | {st.get('downloaded', '?')} "
            f"| {len(copies(cluster))} | {extra} |")


def stage_wait_body(cluster: SlurmCluster, ds: Dataset, barrier: Path | None = None,
                    tasks: int = 4) -> str:
    """A task: meet the others (all `tasks` running at once), `mount-bucket B --stage --wait` with
    the default root, record where the link resolves, read every file back."""
    link = default_link(cluster)
    meet = ""
    if barrier:
        meet = (f"touch {barrier}/$SLURM_ARRAY_TASK_ID\n"
                f"for _ in $(seq 600); do [ $(ls {barrier} | wc -l) -ge {tasks} ] && break; "
                f"sleep 0.1; done\necho TOGETHER=$(ls {barrier} | wc -l)\n")
    return (f"{meet}echo WAITING\nmount-bucket {BUCKET} --stage --wait\necho WAIT_EXIT=$?\n"
            f"echo REAL=$(realpath {link})\npython {ds.check} {link} {ds.manifest}")


def api_body(ds: Dataset, barrier: Path, tasks: int = 4) -> str:
    return (f"touch {barrier}/$SLURM_ARRAY_TASK_ID\n"
            f"for _ in $(seq 600); do [ $(ls {barrier} | wc -l) -ge {tasks} ] && break; "
            f"sleep 0.1; done\necho TOGETHER=$(ls {barrier} | wc -l)\n"
            f"python {ds.api} {BUCKET} {ds.manifest}")


def assert_task_on_copy(cluster: SlurmCluster, job: Job, cli: bool = True) -> None:
    assert job.state == "COMPLETED" and job.exit_code == "0:0", job.output
    if cli:
        assert values(job.output, "WAIT_EXIT") == ["0"], job.output
    real = values(job.output, "REAL")
    assert len(real) == 1 and on_copy(cluster, real[0]), (real, copies(cluster), job.output)
    assert checked(job.output) == [(real[0], N_FILES, 0)], job.output


def run_array(cluster: SlurmCluster, body: str, tasks: int, name: str) -> list[Job]:
    array = cluster.submit(body, [f"--array=0-{tasks - 1}"], name=name)
    return cluster.wait_array(array, tasks, timeout=240)


@pytest.mark.parametrize("form", ["cli", "api"])
def test_array_of_4_at_once_stage_wait_default_root_one_copy(staging, dataset, form):
    """A job array of 4 tasks running at once, each `mount-bucket B --stage --wait` (or the API
    with stage=True, wait=True) with the default link root: every task exits 0 with its link on
    the node's copy when the wait returns, every file reads back identical, and the node
    fetched the dataset about once."""
    cluster = staging
    cluster.proxy.rate = FAST
    barrier = cluster.user_dir_for(f"barrier-{form}")
    body = stage_wait_body(cluster, dataset, barrier) if form == "cli" else api_body(dataset, barrier)
    jobs = run_array(cluster, body, 4, f"stage-array-{form}")
    for job in jobs:
        print(task_row(f"array {form}", job, cluster))
    print(served_row(f"array of 4 ({form})", cluster))
    assert [values(j.output, "TOGETHER") for j in jobs] == [["4"]] * 4, [j.output for j in jobs]
    for job in jobs:
        assert_task_on_copy(cluster, job, cli=form == "cli")
    assert len(copies(cluster)) == 1, copies(cluster)
    assert cluster.proxy.served <= 1.5 * DATASET, served_row("array", cluster)


def test_stager_task_cancelled_mid_copy_two_waiting_tasks_finish_on_the_copy(staging, dataset):
    """A job array of 3: task 0 starts the copy (`mount-bucket B --stage`) and is scancelled
    (that task alone) mid-copy while tasks 1 and 2 wait in `--stage --wait`: both exit 0 with
    their links on a complete copy, and what task 0 had downloaded is not fetched again (bytes
    served <= 1.5x the dataset)."""
    cluster = staging
    cluster.proxy.rate = SLOW
    flag = cluster.jobs_dir / "stager-started"
    body = (f'if [ "$SLURM_ARRAY_TASK_ID" = 0 ]; then\n'
            f"mount-bucket {BUCKET} --stage\necho STAGING\ntouch {flag}\nsleep 600\nelse\n"
            f"for _ in $(seq 900); do [ -e {flag} ] && break; sleep 0.1; done\n"
            f"{stage_wait_body(cluster, dataset)}\nfi")
    array = cluster.submit(body, ["--array=0-2"], name="stager-and-waiters")
    deadline = time.monotonic() + 90
    while sum("WAITING" in cluster.output(f"{array}_{i}") for i in (1, 2)) < 2:
        assert time.monotonic() < deadline, [cluster.output(f"{array}_{i}") for i in range(3)]
        time.sleep(0.2)
    time.sleep(2)  # both inside --wait; then cancel task 0 once about a quarter is copied
    while (before := stage_state(cluster)).get("files_done", 0) < N_FILES // 4:
        assert time.monotonic() < deadline + 60 and before.get("state") == "copying", before
        time.sleep(0.2)
    cluster.scancel(f"{array}_0")
    jobs = cluster.wait_array(array, 3, timeout=240)
    for job in jobs[1:]:
        print(task_row("waiting while task 0 cancelled", job, cluster))
    print(served_row("stager task cancelled mid-copy", cluster,
                     f"task 0 {jobs[0].state}; files done at cancel "
                     f"{before.get('files_done')}/{N_FILES}"))
    assert before.get("state") == "copying" and before.get("files_done", 0) < N_FILES, (
        f"the copy was not in progress when task 0 was cancelled: {before}")
    assert jobs[0].state == "CANCELLED" and "STAGING" in jobs[0].output, jobs[0].output
    for job in jobs[1:]:
        assert_task_on_copy(cluster, job)
    assert stage_state(cluster).get("files_total") == N_FILES, stage_state(cluster)
    assert cluster.proxy.served <= 1.5 * DATASET, served_row("cancelled", cluster)


def test_later_job_restages_and_downloads_nothing(staging, dataset):
    """A job stages B and ends; a later job's `--stage --wait` lists the bucket, downloads no
    object (stage state downloaded == 0, bytes served well under a tenth of the dataset) and its
    link is on the copy."""
    cluster = staging
    cluster.proxy.rate = FAST
    first = cluster.run_job(stage_wait_body(cluster, dataset), name="stage-first", timeout=180)
    assert_task_on_copy(cluster, first)
    cluster.proxy.reset()
    later = cluster.run_job(stage_wait_body(cluster, dataset), name="stage-later", timeout=180)
    print(task_row("later job", later, cluster))
    print(served_row("later job re-stages", cluster))
    assert_task_on_copy(cluster, later)
    assert stage_state(cluster).get("downloaded") == 0, stage_state(cluster)
    assert cluster.proxy.served < 0.1 * DATASET, served_row("later", cluster)


def test_wrapper_stage_wait_cmd_status_signals_and_ready_before_cmd(staging, dataset):
    """`mount-bucket B --stage --wait -- CMD`: CMD starts with its link already on the copy and
    its exit status is the wrapper's; as the batch shell (exec) it passes `scancel --signal=USR1
    --batch` on to CMD; as `srun --ntasks-per-node=1 ... -- CMD` (the per-node form, here on one
    node) it passes the job's SIGTERM (scancel) on to CMD."""
    cluster = staging
    cluster.proxy.rate = FAST
    link, cmd = default_link(cluster), dataset.cmd
    status = cluster.run_job(f"mount-bucket {BUCKET} --stage --wait -- python {cmd} --link {link} "
                             f"--exit 7\necho WRAPPER_EXIT=$?", name="wrap-status", timeout=180)
    print(f"wrapper exit status: {values(status.output, 'WRAPPER_EXIT')}, CMD link "
          f"{'on copy' if on_copy(cluster, (values(status.output, 'REAL') or ['?'])[0]) else '?'}")
    assert values(status.output, "WRAPPER_EXIT") == ["7"], status.output
    real = values(status.output, "REAL")
    assert len(real) == 1 and on_copy(cluster, real[0]), (real, status.output)

    marks = {s: cluster.jobs_dir / f"signal-{s}" for s in ("usr1", "term")}
    usr1 = cluster.submit(f"exec mount-bucket {BUCKET} --stage --wait -- python {cmd} "
                          f"--link {link} --hold --mark {marks['usr1']}", name="wrap-usr1")
    cluster.wait_output(usr1, "CMD HOLDING", timeout=120)
    cluster.scancel(usr1, sig="USR1", batch=True)
    job = cluster.wait(usr1, timeout=60)
    print(f"exec wrapper, scancel --signal=USR1 --batch: {job.state} {job.exit_code}")
    assert read(marks["usr1"]) == "CMD GOT SIGNAL 10\n", job.output
    assert job.exit_code == "50:0", (job.exit_code, job.output)
    assert on_copy(cluster, values(job.output, "REAL")[0]), job.output

    term = cluster.submit(f"srun --ntasks-per-node=1 mount-bucket {BUCKET} --stage --wait -- "
                          f"python {cmd} --link {link} --hold --mark {marks['term']}",
                          name="wrap-term")
    cluster.wait_output(term, "CMD HOLDING", timeout=120)
    cluster.scancel(term)
    job = cluster.wait(term, timeout=60)
    print(f"srun wrapper, scancel: {job.state} {job.exit_code}")
    assert read(marks["term"]) == "CMD GOT SIGNAL 15\n", job.output
    assert on_copy(cluster, values(job.output, "REAL")[0]), job.output


def test_ddp_four_ranks_on_one_node_one_copy(staging, dataset):
    """`srun --ntasks-per-node=4 python train.py`, every rank calling mount_bucket(B,
    stage=True, wait=True): one copy on the node, every rank's path on it, every file identical,
    the dataset fetched about once."""
    cluster = staging
    cluster.proxy.rate = FAST
    job = cluster.run_job(f"srun --ntasks-per-node=4 python {dataset.api} {BUCKET} "
                          f"{dataset.manifest}\necho SRUN_EXIT=$?", ["--ntasks=4"],
                          name="ddp", timeout=240)
    ranks = dict(re.findall(r"^RANK (\d+) REAL=(\S+)$", job.output, re.M))
    print(f"| DDP 4 ranks | {job.state} {job.exit_code} | ranks on copy "
          f"{sum(on_copy(cluster, r) for r in ranks.values())}/4 |")
    print(served_row("DDP, 4 ranks", cluster))
    assert values(job.output, "SRUN_EXIT") == ["0"], job.output
    assert sorted(ranks) == ["0", "1", "2", "3"], job.output
    assert all(on_copy(cluster, r) for r in ranks.values()), (ranks, copies(cluster))
    assert [c[1:] for c in checked(job.output)] == [(N_FILES, 0)] * 4, job.output
    assert len(copies(cluster)) == 1, copies(cluster)
    assert cluster.proxy.served <= 1.5 * DATASET, served_row("DDP", cluster)
