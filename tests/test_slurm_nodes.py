"""Two SLURM nodes on this machine (tests/slurm_cluster.py, nodes=2): two slurmd with their own
node names, ports and spool, each in its own mount namespace with a private /tmp, so each node
has its own /tmp/<user> and stages its own copy. Jobs reach S3 through the byte-counting proxy.
Marker `slurm`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest
from slurm_scenarios import fresh_bucket
from test_slurm_stage import CHECK, FILE_SIZE

pytest_plugins = ["slurm_fixtures"]  # fixture slurm_two_nodes
pytestmark = pytest.mark.slurm

BUCKET = "nodes-bkt"
N_FILES = 1000
DATASET = N_FILES * FILE_SIZE


def test_srun_two_nodes_one_task_each_stage_wait_cmd_one_copy_per_node(slurm_two_nodes):
    """`srun -N2 --ntasks-per-node=1 mount-bucket B --stage --wait -- CMD`: on each node CMD
    starts with the link on that node's own complete copy and reads every file back identical;
    each node holds one copy; S3 served the dataset about twice (once per node)."""
    cluster = slurm_two_nodes
    files = {f"d{i % 4}/f{i:05d}.bin": os.urandom(FILE_SIZE) for i in range(N_FILES)}
    fresh_bucket(cluster.s3, BUCKET, files)
    manifest = cluster.write_user_file(
        "manifest-nodes.json",
        json.dumps({rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}))
    check = cluster.write_user_file("vb_check.py", CHECK)
    cluster.reset_user_runtime()
    cluster.proxy.rate = 4e6
    cluster.proxy.reset()
    link = cluster.runtime_dir / "s3_buckets" / BUCKET
    cmd = f"sh -c 'echo NODE=$SLURMD_NODENAME; exec python {check} {link} {manifest}'"
    job = cluster.run_job(f"srun -N2 --ntasks-per-node=1 --label mount-bucket {BUCKET} --stage "
                          f"--wait -- {cmd}\necho SRUN_EXIT=$?", ["--nodes=2"], name="two-nodes",
                          timeout=240)
    per_node = {}
    for n in cluster.nodes:
        stage = cluster.node_tmp(n) / cluster.user / "stage" / BUCKET
        current = os.readlink(stage / "current") if (stage / "current").is_symlink() else ""
        copies = sorted(p.name for p in stage.glob("copy-*"))
        count = sum(len(f) for _d, _s, f in os.walk(stage / os.path.basename(current))) \
            if current else 0
        per_node[n] = (os.path.basename(current), copies, count)
    lines = re.findall(r"^(\d+): CHECK real=(\S+) ok=(\d+) bad=(\d+)$", job.output, re.M)
    nodes = re.findall(r"^\d+: NODE=(\S+)$", job.output, re.M)
    print(f"two nodes: job {job.state} {job.exit_code}; per node (current, copies, files) "
          f"{per_node}; bytes served {cluster.proxy.served:,} = "
          f"{cluster.proxy.served / DATASET:.2f}x the dataset")
    assert "SRUN_EXIT=0" in job.output, job.output
    assert sorted(nodes) == sorted(cluster.nodes), job.output
    assert len(lines) == 2, job.output
    for _task, real, ok, bad in lines:
        assert (int(ok), int(bad)) == (N_FILES, 0), job.output
        assert real.startswith(f"{cluster.runtime_dir}/stage/{BUCKET}/copy-"), job.output
    for n, (current, copies, count) in per_node.items():
        assert current.startswith("copy-") and copies == [current], (n, per_node)
        assert count == N_FILES, (n, per_node)
    assert cluster.proxy.served <= 2 * 1.5 * DATASET, cluster.proxy.served
