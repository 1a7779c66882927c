"""One staged copy per node, shared by every job, step and rank of the user: concurrent --stage
calls make one copy and every caller's link ends on it; a waiter takes over a copy whose stager
died; the `-- CMD` wrapper stages. Real mounts and copies; SLURM jobs are simulated by the
environment the code reads (SLURM_JOB_ID, SLURM_STEP_ID): tests/test_slurm.py runs the same on
a real SLURM."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import bin_path, needs_fuse, signal_checked

pytestmark = [needs_fuse]
BKT = "stage-bkt"


def dataset(s3, n: int = 200, size: int = 10_000) -> dict[str, bytes]:
    files = {f"train/f{i:04d}.bin": os.urandom(size) for i in range(n)}
    files["val/v.txt"] = b"validation\n"
    s3.make_bucket(BKT, files)
    return files


def in_job(job: str = "", step: str = "", **extra: str) -> dict:
    """The environment of a process in SLURM job `job` (its batch script, or srun step `step`),
    with `extra` variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")} | extra
    if job:
        environ["SLURM_JOB_ID"] = job
    if step:
        environ["SLURM_STEP_ID"] = step
    return environ


def start(*args: str, job: str = "", step: str = "", **extra: str) -> subprocess.Popen:
    return subprocess.Popen([bin_path("mount-bucket"), *args], env=in_job(job, step, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def stage_dir(env) -> Path:
    return env["runtime"] / "stage" / BKT


def stage_json(env) -> dict:
    return json.loads((stage_dir(env) / "stage.json").read_text())


def copies(env) -> list[str]:
    return sorted(p.name for p in stage_dir(env).glob("copy-*"))


def downloads(env) -> int:
    """Objects rclone downloaded into the stage dir, by every copy run (its log)."""
    log = stage_dir(env) / "copy.log"
    return sum(1 for line in log.read_bytes().splitlines() if b": Copied (" in line)


def wait_for(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_concurrent_stage_calls_of_many_jobs_make_one_copy_with_every_link_on_it(env):
    files = dataset(env["s3"])
    shared = env["runtime"] / "s3_buckets" / BKT  # the default link inside every job
    other_root = env["tmp"] / "r103"
    procs = [start(BKT, "--stage", "--wait"),  # outside SLURM
             start(BKT, "--stage", "--wait", job="101"),
             start(BKT, "--stage", "--wait", job="102"),
             start(BKT, "--stage", "--root", str(other_root), job="103")]  # does not wait
    results = [finish(p) for p in procs]
    for code, _out, err in results:
        assert code == 0, err
    wait_for(lambda: stage_json(env)["state"] == "ready")
    current = str(stage_dir(env) / "current")
    # Every caller's link is on the node's one copy, the one that did not wait included.
    for link in (env["home"] / "s3_buckets" / BKT, shared, other_root / BKT):
        assert os.readlink(link) == current, link
        assert Path(os.path.realpath(link)) == stage_dir(env) / "copy-1"
    assert copies(env) == ["copy-1"]
    print(f"4 concurrent --stage calls: {downloads(env)} objects downloaded for {len(files)}")
    assert downloads(env) == len(files)  # the node fetched the dataset once
    assert (shared / "train" / "f0007.bin").read_bytes() == files["train/f0007.bin"]
    # The shared default link is recorded by both jobs; job 101's mount going away leaves it
    # (on the copy) for job 102.
    out = subprocess.run([bin_path("unmount-bucket"), BKT], env=in_job("101"), timeout=120,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert os.readlink(shared) == current
    out = subprocess.run([bin_path("unmount-bucket"), BKT], env=in_job("102"), timeout=120,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and not os.path.lexists(shared), out.stderr


def test_an_unstaged_mount_still_refuses_another_jobs_live_link(env):
    dataset(env["s3"], n=5)
    code, _out, err = finish(start(BKT, job="201"))
    assert code == 0, err
    refusal = (f"error: {env['runtime']}/s3_buckets/{BKT} is the link of job 201's mount, still "
               "in use — pass --root DIR")
    code, _out, err = finish(start(BKT, job="202"))
    assert code == 1 and err.startswith(refusal), err
    # Staged, it is refused too while that link is on a writable mount (moving it to a
    # read-only copy would break that job's writes).
    code, _out, err = finish(start(BKT, "--stage", job="203"))
    assert code == 1 and err.startswith(refusal), err
    assert os.readlink(env["runtime"] / "s3_buckets" / BKT) == str(
        env["runtime"] / "jobs" / "201" / "rclone" / BKT)


def test_a_waiter_takes_over_the_copy_when_the_job_that_ran_it_is_killed(env):
    """Job 301's copy is killed part way while job 302 waits for it: 302 resumes it. The first
    copy is held back by what it is, not by this test's timing: its rclone is limited to 1 MB/s
    (RCLONE_BWLIMIT, in job 301's environment only: 15 s for the 15 MB), and it is stopped
    (SIGSTOP) until the waiter is there. (Throttled before by pausing the S3 server in bursts,
    the copy finished before the waiter was up whenever the machine was busy: 3 of 3 runs with
    two CPU hogs beside it; the test then found no stager to kill, pid 0.)"""
    s3 = env["s3"]
    files = dataset(s3, n=300, size=50_000)
    code, _out, err = finish(start(BKT, "--stage", "--root", str(env["tmp"] / "r1"), job="301",
                                   RCLONE_BWLIMIT="1M"))
    assert code == 0, err
    first = stage_json(env)["pid"]
    wait_for(lambda: os.getpgid(first) == first)  # it leads its group (stager and rclone)
    signal_checked(first, signal.SIGSTOP, "visionlab.buckets.staging.stager", group=True)
    link = env["runtime"] / "s3_buckets" / BKT
    try:
        waiter = start(BKT, "--stage", "--wait", job="302")
        wait_for(lambda: os.path.lexists(link))  # the waiter's mount is there; it waits
    finally:
        signal_checked(first, signal.SIGCONT, "visionlab.buckets.staging.stager", group=True)
    work = stage_dir(env) / "work" / "train"
    wait_for(lambda: stage_json(env)["state"] != "copying" or (
        work.is_dir() and len(list(work.glob("*.bin"))) >= 30))
    assert stage_json(env)["state"] == "copying" and stage_json(env)["pid"] == first, \
        stage_json(env)
    # ...and the stager dies, as when its job is cancelled
    signal_checked(first, signal.SIGKILL, "visionlab.buckets.staging.stager", group=True)
    done_before = len(list(work.glob("*.bin")))
    code, _out, err = finish(waiter, timeout=180)
    assert code == 0, err
    assert os.readlink(link) == str(stage_dir(env) / "current")
    # On the complete copy: copy-1, or copy-2 when the kill fell after the rename of work/ and
    # before the listing's (the resumed run then starts from copy-1's hard links).
    assert os.path.realpath(link) == os.path.realpath(stage_dir(env) / "current")
    assert Path(os.path.realpath(link)).name in ("copy-1", "copy-2")
    assert stage_json(env)["state"] == "ready" and stage_json(env)["pid"] != first
    assert 0 < done_before < 300
    print(f"takeover: {done_before} files done before the kill, "
          f"{stage_json(env)['downloaded']} fetched after it, {downloads(env)} in all")
    # Resumed, not started over: the second run fetched only what the first had not.
    assert stage_json(env)["downloaded"] <= len(files) - done_before + 8
    assert downloads(env) <= len(files) + 8
    for rel in ("train/f0000.bin", "train/f0299.bin", "val/v.txt"):
        assert (link / rel).read_bytes() == files[rel]


def test_the_job_that_started_the_copy_unmounting_leaves_it_to_a_job_waiting_for_it(env):
    """Job 311 stages without waiting and unmounts (its script or wrapper ends) while job 312
    waits for the copy: the copy goes on, and 312's --wait returns with its link on it. The copy
    is held (SIGSTOP) across the unmount so that it cannot finish first, and let go during it."""
    files = dataset(env["s3"], n=300, size=50_000)
    code, _out, err = finish(start(BKT, "--stage", "--root", str(env["tmp"] / "r1"), job="311"))
    assert code == 0, err
    copier = stage_json(env)["pid"]
    wait_for(lambda: os.getpgid(copier) == copier)  # it leads its group (stager and rclone)
    signal_checked(copier, signal.SIGSTOP, "visionlab.buckets.staging.stager", group=True)
    try:
        waiter = start(BKT, "--stage", "--wait", job="312")
        link = env["runtime"] / "s3_buckets" / BKT
        wait_for(lambda: os.path.lexists(link))  # the waiter's mount is there; it waits
        unmount = subprocess.Popen([bin_path("unmount-bucket"), BKT], env=in_job("311"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL)
        time.sleep(1.0)  # the unmount has decided about the copy by now
    finally:
        signal_checked(copier, signal.SIGCONT, "visionlab.buckets.staging.stager", group=True)
    code, _out, err = finish(unmount)
    assert code == 0, err
    code, _out, err = finish(waiter, timeout=180)
    assert code == 0, err
    assert Path(os.path.realpath(link)) == stage_dir(env) / "copy-1"
    assert (link / "train/f0299.bin").read_bytes() == files["train/f0299.bin"]


def test_ddp_ranks_of_one_step_share_one_mount_and_one_copy(env):
    files = dataset(env["s3"])
    code = ("import os, sys\n"
            "from visionlab.buckets import mount_bucket\n"
            f"link = mount_bucket({BKT!r}, stage=True, wait=True)\n"
            "print(link, os.path.realpath(link), flush=True)\n")
    ranks = [subprocess.Popen([sys.executable, "-c", code], env=in_job("401", "0"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [finish(r) for r in ranks]
    for rc, _out, err in results:
        assert rc == 0, err
    for _rc, out, _err in results:
        link, real = out.split()
        assert link == str(env["runtime"] / "s3_buckets" / BKT)
        assert real == str(stage_dir(env) / "copy-1")
    assert downloads(env) == len(files)
    assert copies(env) == ["copy-1"]
    # One mount, in the step's scope.
    assert [p.name for p in (env["runtime"] / "jobs").iterdir()] == ["401.0"]


def test_wrapper_stages_and_cmd_starts_on_the_complete_copy(env):
    files = dataset(env["s3"])
    link = env["home"] / "s3_buckets" / BKT
    script = f"readlink -f '{link}'; cat '{link}/val/v.txt'; exit 7"
    proc = subprocess.run([bin_path("mount-bucket"), BKT, "--stage", "--wait", "--", "sh", "-c",
                           script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.splitlines() == [str(stage_dir(env) / "copy-1"), "validation"]
    assert f"{BKT}: staged: {len(files)} files" in proc.stderr
    # A signal reaches CMD on the copy; the wrapper exits with CMD's status.
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda s, f: sys.exit(9))\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(0.1)\n")
    proc = subprocess.Popen([bin_path("mount-bucket"), BKT, "--stage", "--wait", "--",
                             sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 9
    proc.stdout.close()
    proc.stderr.close()


def test_as_root_a_write_through_a_staged_link_fails_and_nothing_diverges(env):
    if os.geteuid() != 0:
        pytest.skip("needs root: file modes already stop a normal user (EACCES)")
    files = dataset(env["s3"], n=20)
    code, _out, err = finish(start(BKT, "--stage", "--wait"))
    assert code == 0, err
    link = env["home"] / "s3_buckets" / BKT
    copy = stage_dir(env) / "copy-1"
    with open("/proc/self/mountinfo") as f:
        binds = [line.split() for line in f if line.split()[4] == str(copy)]
    assert binds and "ro" in binds[-1][5].split(",")
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    for write in (lambda: (link / "new.txt").write_bytes(b"x"),
                  lambda: os.open(link / "train" / "f0000.bin", os.O_WRONLY | os.O_APPEND),
                  lambda: (link / "val" / "v.txt").unlink()):
        with pytest.raises(OSError) as caught:
            write()
        assert caught.value.errno == errno.EROFS
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before
    assert (link / "train" / "f0000.bin").read_bytes() == files["train/f0000.bin"]
    assert sorted(p.name for p in (env["s3"].data / BKT).rglob("*") if p.is_file()) == sorted(
        rel.split("/")[-1] for rel in files)
    # Dropping the copy takes the read-only mount away first, then the files.
    out = subprocess.run([bin_path("unmount-bucket"), BKT, "--drop-stage"], timeout=120,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert not stage_dir(env).exists()
    with open("/proc/self/mountinfo") as f:
        assert str(copy) not in f.read()


def test_staged_wrapper_syncs_what_cmd_wrote_to_other_buckets(env):
    from conftest import BUCKET

    dataset(env["s3"], n=5)
    assert subprocess.run([bin_path("mount-bucket"), BUCKET, "-q"], timeout=120,
                          check=False).returncode == 0
    out = env["home"] / "s3_buckets" / BUCKET
    script = f"cat '{env['home']}/s3_buckets/{BKT}/val/v.txt' > '{out}/result.txt'"
    proc = subprocess.run([bin_path("mount-bucket"), BKT, "--stage", "--wait", "--", "sh", "-c",
                           script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # On the server when the wrapper exits (the mount uploads 5 s after a write otherwise).
    assert (env["s3"].data / BUCKET / "result.txt").read_bytes() == b"validation\n"


def test_a_prefix_copy_keeps_the_rest_of_the_bucket_when_the_job_that_staged_it_ends(env):
    files = dataset(env["s3"], n=20)
    for job in ("501", "502"):
        code, _out, err = finish(start(BKT, "--stage", "--stage-prefix", "train/", "--wait",
                                       job=job))
        assert code == 0, err
    link = env["runtime"] / "s3_buckets" / BKT  # shared by both jobs, on the copy
    assert (link / "val" / "v.txt").read_bytes() == files["val/v.txt"]  # through job 501's mount
    out = subprocess.run([bin_path("unmount-bucket"), BKT], env=in_job("501"), timeout=120,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    # The entries outside train/ now lead through job 502's mount.
    assert (link / "val" / "v.txt").read_bytes() == files["val/v.txt"]
    assert os.readlink(stage_dir(env) / "mount") == str(
        env["runtime"] / "jobs" / "502" / "rclone" / BKT)
    assert (link / "train" / "f0003.bin").read_bytes() == files["train/f0003.bin"]


def test_wait_returns_with_the_callers_links_on_the_copy_even_if_the_switch_missed_them(
        env, monkeypatch):
    dataset(env["s3"], n=5)
    code, _out, err = finish(start(BKT, "--stage", "--wait", job="601"))
    assert code == 0, err
    link = env["runtime"] / "s3_buckets" / BKT
    scope = env["runtime"] / "jobs" / "601"
    # As if the copy's switch had not reached this mount (its lock busy beyond the stager's
    # timeout, or the mount registered its link just after the switch looked).
    os.unlink(link)
    os.symlink(scope / "rclone" / BKT, link)
    state_file = scope / "buckets" / f"{BKT}.json"
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "staged": ""}))
    monkeypatch.setenv("SLURM_JOB_ID", "601")
    from visionlab.buckets.mounts import mount

    info = mount.wait_staged(BKT)
    assert os.readlink(link) == str(stage_dir(env) / "current")
    assert info.symlinks == [str(link)] and info.stage["state"] == "ready"


def test_a_signal_while_the_wrapper_waits_for_the_copy_ends_it_before_cmd_with_128_plus_n(env):
    s3 = env["s3"]
    dataset(s3, n=300, size=50_000)
    marker = env["tmp"] / "cmd-ran"
    proc = start(BKT, "--stage", "--wait", "--", "touch", str(marker))
    link = env["home"] / "s3_buckets" / BKT
    try:
        wait_for(lambda: os.path.lexists(link))  # mounted; the copy cannot finish while paused
        s3.pause()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        code, _out, err = finish(proc, timeout=60)
    finally:
        s3.resume()
    assert code == 128 + signal.SIGTERM, err
    assert not marker.exists()


def test_a_job_mounting_leaves_alone_the_tree_of_a_job_starting_its_own_mount(env):
    """Array tasks start at once: one task's clean-up of ended jobs must not take the fresh,
    empty tree of a task that has not taken its lock yet (its mount point's parent, its cache)."""
    from visionlab.buckets.records import layout

    dataset(env["s3"], n=3)
    starting = layout.paths_for(BKT, "702")
    layout.ensure_runtime(starting)  # job 702: tree made, its lock file opened, not yet taken
    starting.lock.touch()
    code, _out, err = finish(start(BKT, "--root", str(env["tmp"] / "r701"), job="701"))
    assert code == 0, err
    assert starting.mount_point.parent.is_dir() and starting.cache.is_dir()


def test_a_waiter_finishes_a_copy_whose_stager_died_after_making_it(env):
    dataset(env["s3"], n=5)
    code, _out, err = finish(start(BKT, "--stage", "--wait"))
    assert code == 0, err
    link = env["home"] / "s3_buckets" / BKT
    # As if the stager had been killed after putting copy-1 in place, before its links moved.
    os.unlink(link)
    os.symlink(env["runtime"] / "rclone" / BKT, link)
    gone = subprocess.Popen(["true"])
    gone.wait(10)
    state = {**stage_json(env), "state": "copying", "pid": gone.pid}
    (stage_dir(env) / "stage.json").write_text(json.dumps(state))
    from visionlab.buckets.mounts import mount

    mount.wait_staged(BKT)
    assert os.readlink(link) == str(stage_dir(env) / "current")
    assert stage_json(env)["state"] == "ready" and copies(env) == ["copy-1"]


def test_dropping_the_copy_moves_the_links_of_other_jobs_back_to_their_mounts(env):
    files = dataset(env["s3"], n=5)
    code, _out, err = finish(start(BKT, "--stage", "--wait", job="801"))
    assert code == 0, err
    link = env["runtime"] / "s3_buckets" / BKT
    out = subprocess.run([bin_path("unmount-bucket"), BKT, "--drop-stage"], timeout=120,
                         capture_output=True, text=True, check=False)  # outside the job
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"removed the staged copy of {BKT}"
    assert os.readlink(link) == str(env["runtime"] / "jobs" / "801" / "rclone" / BKT)
    assert (link / "val" / "v.txt").read_bytes() == files["val/v.txt"]


def test_as_root_without_bind_mounts_the_copy_is_made_and_says_root_can_write_into_it(env):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    dataset(env["s3"], n=5)
    fake = env["tmp"] / "bin"  # a container without CAP_SYS_ADMIN: mount is refused
    fake.mkdir()
    (fake / "mount").write_text("#!/bin/sh\necho 'mount: permission denied' >&2\nexit 32\n")
    (fake / "mount").chmod(0o755)
    environ = {**in_job(), "PATH": f"{fake}:{os.environ['PATH']}"}
    proc = subprocess.run([bin_path("mount-bucket"), BKT, "--stage", "--wait"], env=environ,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].endswith(
        " — warning: root can write into the copy (a read-only bind mount failed: mount: "
        "permission denied); such writes never reach S3")
    status = subprocess.run([bin_path("mount-bucket"), "--status", BKT], capture_output=True,
                            text=True, timeout=60, check=False)
    assert "warning: root can write into the copy" in status.stdout


def _held_stage(env, job: str) -> tuple[int, Path, Path]:
    """Job `job` stages (no wait) with the default link; its copy is stopped (SIGSTOP) until the
    caller lets it go. Returns the stager's pid, the link and the mount's state file."""
    dataset(env["s3"], n=300, size=50_000)
    code, _out, err = finish(start(BKT, "--stage", job=job, RCLONE_BWLIMIT="2M"))
    assert code == 0, err
    copier = stage_json(env)["pid"]
    wait_for(lambda: os.getpgid(copier) == copier)  # it leads its group (stager and rclone)
    signal_checked(copier, signal.SIGSTOP, "visionlab.buckets.staging.stager", group=True)
    link = env["runtime"] / "s3_buckets" / BKT
    assert os.readlink(link) == str(env["runtime"] / "jobs" / job / "rclone" / BKT)
    return copier, link, env["runtime"] / "jobs" / job / "buckets" / f"{BKT}.json"


def _let_go_until_ready(env, copier: int, state_file: Path) -> dict:
    signal_checked(copier, signal.SIGCONT, "visionlab.buckets.staging.stager", group=True)
    wait_for(lambda: stage_json(env)["state"] != "copying", timeout=120)
    assert stage_json(env)["state"] == "ready", stage_json(env)
    return json.loads(state_file.read_text())


def test_a_link_the_user_deleted_while_the_copy_was_made_stays_deleted(env):
    """The user removes the link while the copy is being made: once the copy is ready (every
    link of the mount moved to it), that link is still absent, and the state file no longer
    records it, so nothing later brings it back."""
    copier, link, state_file = _held_stage(env, "921")
    try:
        os.unlink(link)  # the user's `rm ~/s3_buckets/B`, while the copy is stopped
    finally:
        st = _let_go_until_ready(env, copier, state_file)
    assert not os.path.lexists(link)
    assert st["symlinks"] == [] and st["staged"] == str(stage_dir(env) / "current")


def test_a_link_our_code_took_away_while_the_copy_was_made_is_made_again_on_it(env):
    """Our code removes the link while the copy is being made, as a mount going away does
    (mounts.teardown removes the links that are its alone, through links.remove_ours, noting
    each one it removed): once the copy is ready, that link is made again, on the copy."""
    from visionlab.buckets.records import layout, links

    copier, link, state_file = _held_stage(env, "922")
    try:
        mount_point = env["runtime"] / "jobs" / "922" / "rclone" / BKT
        assert links.remove_ours([str(link)], mount_point,
                                 taken=layout.taken_links()) == [str(link)]
        assert not os.path.lexists(link)
    finally:
        st = _let_go_until_ready(env, copier, state_file)
    assert os.readlink(link) == str(stage_dir(env) / "current")
    assert st["symlinks"] == [str(link)]
    assert (link / "val" / "v.txt").read_bytes() == b"validation\n"
    assert not links.was_taken(layout.taken_links(), link)  # ours again: a later rm is the user's
