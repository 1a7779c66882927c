"""pytest fixtures for the real single-node SLURM (tests/slurm_cluster.py).

    pytest_plugins = ["slurm_fixtures"]      # in a test module (tests/ is on sys.path)

slurm      module: a started SlurmCluster (jobs as user `vbslurm`, its venv, rclone.conf,
           env.sh with the keys), with `cluster.s3` = the loopback S3Server jobs reach. Prints
           the startup time and the ProctrackType proven by a job's /proc/self/cgroup.
slurm_s3   module: that S3Server.
slurm_job  function: the same cluster, with the job user's runtime (/tmp/vbslurm: mounts, caches)
           wiped and every job cancelled before and after the test.
slurm_proxied      module: like `slurm`, but the jobs reach S3 through a byte-counting proxy
                   (`cluster.proxy`, tests/s3proxy.py).
slurm_proxied_job  function: that cluster, wiped before and after, its proxy's counters reset
                   and its rate/delay limits lifted.
slurm_two_nodes    module: two nodes on this machine (two slurmd, each with a private /tmp),
                   jobs through the proxy.
Skips (one line) when SLURM cannot start here: not root, no slurm-wlm/munge, no writable cgroup v1
freezer, no /dev/fuse.
"""

from __future__ import annotations

import time

import pytest
from slurm_cluster import SlurmCluster, missing_prerequisites
from slurm_scenarios import harness


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """One line on the terminal, even under -q and output capture."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capman is None:
        print(f"slurm: {line}")
        return
    with capman.global_and_fixture_disabled():
        reporter.write_line(f"\nslurm: {line}")


def _cluster(request: pytest.FixtureRequest, proxy: bool, nodes: int = 1):
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    t0 = time.monotonic()
    try:
        ctx = harness(proxy=proxy, nodes=nodes)
        cluster, server = ctx.__enter__()
    except RuntimeError as exc:
        pytest.skip(f"SLURM could not start here: {str(exc).splitlines()[0]}")
    try:
        proctrack, probe = cluster.probe_proctrack()
        cluster.proctrack = proctrack
        cluster.cgroup_probe = probe
        cluster.s3 = server
        freezer = SlurmCluster.freezer_paths(probe)
        _say(request, f"up in {cluster.startup_seconds:.1f}s (with venv, S3 server, probe job: "
                      f"{time.monotonic() - t0:.1f}s); ProctrackType={proctrack}; "
                      f"job freezer cgroups {freezer}")
        yield cluster
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture(scope="module")
def slurm(request: pytest.FixtureRequest):
    yield from _cluster(request, proxy=False)


@pytest.fixture(scope="module")
def slurm_proxied(request: pytest.FixtureRequest):
    yield from _cluster(request, proxy=True)


@pytest.fixture(scope="module")
def slurm_s3(slurm):
    return slurm.s3


@pytest.fixture
def slurm_job(slurm):
    slurm.scancel_all()
    slurm.reset_user_runtime()
    yield slurm
    slurm.scancel_all()
    slurm.reset_user_runtime()


@pytest.fixture(scope="module")
def slurm_two_nodes(request: pytest.FixtureRequest):
    yield from _cluster(request, proxy=True, nodes=2)


@pytest.fixture
def slurm_proxied_job(slurm_proxied):
    cluster = slurm_proxied
    cluster.scancel_all()
    cluster.reset_user_runtime()
    cluster.proxy.rate = cluster.proxy.delay = 0
    cluster.proxy.reset()
    yield cluster
    cluster.scancel_all()
    cluster.reset_user_runtime()
    cluster.proxy.rate = cluster.proxy.delay = 0
