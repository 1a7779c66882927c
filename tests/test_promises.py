"""Promises of the README that had no test failing without them, one test each (tests/MUTATIONS.md
names the one-line change that turns each red). Real mounts against the loopback S3 server where
the promise is about mounts; unit tests where it is one function's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ACCESS_KEY, BUCKET, SECRET_KEY, finish, needs_fuse, readline, signal_checked
from helpers_mounts import cli, recording_rclone

from visionlab.buckets import mount_bucket
from visionlab.buckets.errors import BucketsError
from visionlab.buckets.mounts import mountinfo, unmount
from visionlab.buckets.records import layout, state
from visionlab.buckets.staging import plan as stage_plan
from visionlab.buckets.staging import record as stage_record
from visionlab.buckets.staging import stager
from visionlab.buckets.system import procs, runner
from visionlab.buckets.system.rclone import ObjectInfo
from visionlab.buckets.uploads import pending as uploads


def api_script(env, body: str) -> subprocess.Popen:
    """A Python program that uses the API (its own process: exit handlers, signals)."""
    script = env["tmp"] / "program.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True)


# --- `mount-bucket --sync` with no bucket waits for every mount's uploads ---------------------

@needs_fuse
def test_bare_sync_waits_for_every_mounts_uploads(env):
    env["s3"].make_bucket("second-bucket")
    links = [mount_bucket(BUCKET), mount_bucket("second-bucket")]
    for link in links:
        for i in range(3):
            (link / f"bare_{i}.txt").write_text(f"{link.name} {i}\n")
    proc = cli("mount-bucket", "--sync")  # rclone's write-back alone would wait 5 s
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("synced: every upload reached S3 ("), proc.stdout
    for link in links:
        server = env["s3"].data / link.name
        assert sorted(p.name for p in server.glob("bare_*.txt")) == [f"bare_{i}.txt" for i in range(3)]


# --- a SIGTERM handler the program installed before mount_bucket() is never replaced ----------

@needs_fuse
def test_a_sigterm_handler_installed_before_mount_bucket_is_kept(env):
    marker = env["tmp"] / "mine"
    proc = api_script(env, f"""
        import signal, sys, time
        from visionlab.buckets import mount_bucket

        def mine(signum, frame):
            open({str(marker)!r}, "w").write("mine")
            sys.exit(0)

        signal.signal(signal.SIGTERM, mine)  # before the mount
        link = mount_bucket({BUCKET!r})
        (link / "before.txt").write_text("before")
        print("ready", flush=True)
        time.sleep(120)
    """)
    assert readline(proc, 120) == "ready"
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, 120)
    assert marker.read_text() == "mine", err  # the program's handler ran, not ours
    assert code == 0, err
    assert (env["s3"].data / BUCKET / "before.txt").read_text() == "before"  # and it drained


# --- at exit, the API names files of a dead mount that never reached S3 ----------------------

@needs_fuse
def test_api_at_exit_names_the_files_a_dead_mount_never_uploaded(env):
    proc = api_script(env, f"""
        import os, signal, time
        from visionlab.buckets import mount_bucket, status

        link = mount_bucket({BUCKET!r})
        (link / "lost_at_exit.txt").write_text("x")
        time.sleep(0.5)  # rclone marks it dirty in its cache
        pid = status({BUCKET!r}).pid
        assert b"rclone" in open(f"/proc/{{pid}}/cmdline", "rb").read()
        os.kill(pid, signal.SIGKILL)  # well before its 5 s write-back
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{{pid}}") and time.monotonic() < deadline:
            time.sleep(0.05)
    """)
    code, _, err = finish(proc, 120)
    assert code == 0, err
    assert f"visionlab-buckets: at exit: {BUCKET}: 1 file(s) written but never uploaded: " \
           "lost_at_exit.txt" in err, err
    assert cli("mount-bucket", BUCKET).returncode == 0  # the next mount uploads it
    assert cli("mount-bucket", "--sync", BUCKET).returncode == 0
    assert (env["s3"].data / BUCKET / "lost_at_exit.txt").read_text() == "x"


# --- VISIONLAB_BUCKETS_EXIT_TIMEOUT bounds the exit drain -------------------------------------

@needs_fuse
def test_exit_timeout_env_bounds_the_drain_at_exit(env):
    go = env["tmp"] / "go"
    os.environ["VISIONLAB_BUCKETS_EXIT_TIMEOUT"] = "3"
    try:
        proc = api_script(env, f"""
            import os, time
            from visionlab.buckets import mount_bucket

            link = mount_bucket({BUCKET!r})
            (link / "slow.txt").write_text("x")  # queued; rclone's write-back waits 5 s
            print("ready", flush=True)
            while not os.path.exists({str(go)!r}):
                time.sleep(0.05)
        """)
    finally:
        del os.environ["VISIONLAB_BUCKETS_EXIT_TIMEOUT"]
    assert readline(proc, 120) == "ready"
    env["s3"].pause()  # uploads hang (neither succeed nor fail): only the bound ends the wait
    try:
        go.touch()
        code, _, err = finish(proc, 60)  # 600 s without the variable
    finally:
        env["s3"].resume()
    assert "1 upload(s) still pending after 3s: slow.txt" in err, err
    assert cli("unmount-bucket", BUCKET).returncode == 0
    assert (env["s3"].data / BUCKET / "slow.txt").read_text() == "x"


# --- unmount names files closed after the last drain ------------------------------------------

@needs_fuse
def test_unmount_names_files_left_dirty_after_its_last_drain(env, monkeypatch):
    link = mount_bucket(BUCKET)
    monkeypatch.setattr(uploads, "wait_uploaded", lambda *a, **k: None)  # the drain saw nothing
    (link / "after_drain.txt").write_text("late")
    time.sleep(0.5)
    result = unmount.unmount(BUCKET, timeout=30)
    assert result.stranded == ["after_drain.txt"]
    assert cli("mount-bucket", BUCKET).returncode == 0 and cli("mount-bucket", "--sync").returncode == 0
    assert (env["s3"].data / BUCKET / "after_drain.txt").read_text() == "late"


# --- `-- CMD` exits with CMD's status, 128+N when signal N killed it --------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_run_foreground_returns_128_plus_the_signal(sig):
    assert runner.run_foreground(["sh", "-c", f"kill -{int(sig)} $$"], []) == 128 + sig
    assert runner.run_foreground(["sh", "-c", "exit 3"], []) == 3


# --- SIGINT is passed on to CMD when no terminal delivers it ----------------------------------

def test_sigint_is_passed_on_when_no_terminal_delivers_it(tmp_path):
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGINT, lambda s, f: sys.exit(5))\n"
             "print('ready', flush=True)\n"
             "time.sleep(60)\n")
    code = ("import signal, sys\n"
            "from visionlab.buckets.system import runner\n"
            f"sys.exit(runner.run_foreground([sys.executable, '-c', {child!r}], [signal.SIGINT]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,  # no terminal
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert readline(proc, 60) == "ready"
    time.sleep(0.2)  # the runner installed its handlers right after starting the child
    proc.send_signal(signal.SIGINT)  # to the runner only, as `kill -INT` or SLURM would
    code, _, err = finish(proc, 20)
    assert code == 5, err


# --- the wrapper exits 1 when CMD succeeded but its writes could not be uploaded --------------

@needs_fuse
def test_wrapper_exits_1_when_the_command_succeeded_but_its_writes_failed(env):
    s3 = env["s3"]
    link = env["home"] / "s3_buckets" / BUCKET
    assert cli("mount-bucket", BUCKET).returncode == 0
    s3.restart(read_only=True)
    try:
        proc = cli("mount-bucket", BUCKET, "--timeout", "60", "--", "sh", "-c",
                   f"echo refused > '{link}/refused.txt'")
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "upload(s) keep failing: refused.txt" in proc.stderr, proc.stderr
    finally:
        s3.restart(read_only=False)
    assert cli("mount-bucket", "--sync", BUCKET).returncode == 0
    assert cli("unmount-bucket", BUCKET).returncode == 0


# --- `mount-bucket B --json` has the documented fields -----------------------------------------

@needs_fuse
def test_mount_json_has_the_documented_fields(env):
    documented = {"bucket", "remote", "link", "mount_point", "profile", "newly_mounted", "healed",
                  "scope"}
    first = json.loads(cli("mount-bucket", BUCKET, "--json").stdout)
    assert set(first) == documented
    link = str(env["home"] / "s3_buckets" / BUCKET)
    assert (first["bucket"], first["remote"], first["link"], first["profile"]) == (
        BUCKET, "s3_remote", link, "default")
    assert first["mount_point"] == str(env["runtime"] / "rclone" / BUCKET)
    assert (first["newly_mounted"], first["healed"], first["scope"]) == (True, False, "")
    again = json.loads(cli("mount-bucket", BUCKET, "--json").stdout)
    assert set(again) == documented and again["newly_mounted"] is False
    assert cli("unmount-bucket", BUCKET).returncode == 0


# --- secrets never on a command line, --stage included ----------------------------------------

@needs_fuse
def test_no_command_line_carries_a_credential_stage_included(env, monkeypatch, tmp_path):
    """Every rclone the tool starts (preflight, mount, the stager's listing and sync) goes through
    a recording rclone first on PATH: no argument holds the access key or the secret."""
    record = recording_rclone(monkeypatch, tmp_path)
    env["s3"].make_bucket("stage-bkt", {f"f{i}.bin": b"s" * 100 for i in range(5)})
    proc = cli("mount-bucket", "stage-bkt", "--stage", "--wait", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert cli("unmount-bucket", "stage-bkt", "--drop-stage").returncode == 0
    lines = record.read_text().splitlines()
    assert any(line.startswith("sync ") for line in lines), lines  # the stager's copy
    assert any(line.startswith("mount ") for line in lines), lines
    for line in lines:
        assert SECRET_KEY not in line and ACCESS_KEY not in line, line


# --- staging: every listed object is in the copy with its size --------------------------------

def test_stager_refuses_a_copy_whose_size_differs_from_the_listing(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"12345")
    stager._verify(tmp_path, [["a.bin", 5, "2024-01-01T00:00:00Z"]])  # same size: fine
    with pytest.raises(BucketsError, match="a.bin has 5 bytes in the copy, 6 in the listing"):
        stager._verify(tmp_path, [["a.bin", 6, "2024-01-01T00:00:00Z"]])
    with pytest.raises(BucketsError, match="b.bin is missing from the copy"):
        stager._verify(tmp_path, [["b.bin", 1, "2024-01-01T00:00:00Z"]])


# --- staging: the free-space check keeps a margin ---------------------------------------------

def test_stage_plan_refuses_what_fits_only_without_the_margin(env, monkeypatch):
    from visionlab.buckets.system import rclone

    objects = [ObjectInfo("big.bin", 10 << 20, "2024-01-01T00:00:00Z")]
    monkeypatch.setattr(rclone, "list_objects", lambda *a, **k: objects)
    monkeypatch.setattr(stage_plan, "_free_bytes", lambda path: (10 << 20) + (1 << 20))  # 1 MiB spare
    with pytest.raises(BucketsError, match=r"does not fit: .* GB margin"):
        stage_plan.plan("rclone", env["config"], "s3_remote", "bkt", "")
    monkeypatch.setattr(stage_plan, "_free_bytes", lambda path: (10 << 20) + stage_plan.MARGIN_MIN)
    found = stage_plan.plan("rclone", env["config"], "s3_remote", "bkt", "")
    assert (found.totals.objects, found.totals.bytes, found.totals.needed) == (1, 10 << 20, 10 << 20)


# --- staging: eviction never removes a copy a link uses ---------------------------------------

def test_eviction_keeps_a_staged_copy_that_a_link_uses(env, monkeypatch):
    root = layout.stage_root()
    root.mkdir(mode=0o700, parents=True)
    os.chmod(layout.runtime_dir(), 0o700)
    for name in ("used-bkt", "unused-bkt"):
        paths = layout.stage_paths(name)
        (paths.root / "copy-1").mkdir(parents=True)
        (paths.root / "copy-1" / "data.bin").write_bytes(b"x" * 4096)
        stage_record.save(paths, stage_record.StageState(state="ready", updated_at=1.0))
    used = layout.paths_for("used-bkt", "")
    used.state.parent.mkdir(parents=True, exist_ok=True)
    state.save(used.state, state.MountState(
        bucket="used-bkt", remote="s3_remote", mount_point=str(used.mount_point), pid=0,
        socket=str(used.socket), cache_dir=str(used.cache), log_file=str(used.log),
        staged=str(layout.stage_paths("used-bkt").current)))
    freed = {"n": 0}

    def free_bytes(path):
        return freed["n"]

    real_drop = stage_plan.drop

    def drop(name):
        freed["n"] += 4096
        return real_drop(name)

    monkeypatch.setattr(stage_plan, "_free_bytes", free_bytes)
    monkeypatch.setattr(stage_plan, "drop", drop)
    # Wants more than one copy frees: only evicting both would fit, and one is in use.
    assert stage_plan._evict_unused("new-bkt", 8192, 0) < 8192
    assert (root / "used-bkt" / "copy-1" / "data.bin").exists()
    assert (root / "unused-bkt" / "copy-1" / "data.bin").exists()  # no use evicting in vain
    # Wants what the unused copy frees: that one goes, the used one stays.
    assert stage_plan._evict_unused("new-bkt", 4096, 0) >= 4096
    assert not (root / "unused-bkt").exists()
    assert (root / "used-bkt" / "copy-1" / "data.bin").exists()


# --- beyond the first list: more promises of the README ---------------------------------------

@needs_fuse
def test_a_second_mount_of_a_live_bucket_only_adds_the_link(env, monkeypatch, tmp_path):
    """README: "A second call for a live mount only adds the symlink: no rclone process, no
    network"."""
    record = recording_rclone(monkeypatch, tmp_path)
    assert cli("mount-bucket", BUCKET).returncode == 0
    before = record.read_text()
    proc = cli("mount-bucket", BUCKET, "--root", "./second")
    assert proc.returncode == 0 and proc.stdout.startswith("already mounted "), proc
    assert record.read_text() == before  # no rclone started, so no request either
    assert (env["tmp"] / "second" / BUCKET / "hello.txt").read_text() == "hello from s3\n"
    assert cli("unmount-bucket", BUCKET).returncode == 0


@needs_fuse
def test_quiet_prints_nothing_on_success(env):
    for argv in (("mount-bucket", "-q", BUCKET), ("mount-bucket", "--quiet", BUCKET, "--root", "r2"),
                 ("mount-bucket", "-q", "--sync"), ("unmount-bucket", "-q", BUCKET)):
        proc = cli(*argv)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), argv


@needs_fuse
def test_print_link_prints_only_the_link(env):
    proc = cli("mount-bucket", BUCKET, "--print-link")
    assert proc.returncode == 0
    assert proc.stdout == f"{env['home'] / 's3_buckets' / BUCKET}\n"
    proc = cli("mount-bucket", BUCKET, "--print-link", "--root", "./data")  # already mounted
    assert proc.stdout == f"{env['tmp'] / 'data' / BUCKET}\n"
    assert cli("unmount-bucket", BUCKET).returncode == 0


@needs_fuse
def test_list_and_status_json_have_the_documented_fields_for_a_live_mount(env):
    """README: records with bucket, remote, mount point, symlinks, state and the rclone pid;
    "uploads": {"pending", "failing", "last_error"} for a live mount."""
    link = mount_bucket(BUCKET)
    pid = mountinfo.status(BUCKET).pid
    listed = json.loads(cli("mount-bucket", "--list", "--json").stdout)
    status = json.loads(cli("mount-bucket", "--status", BUCKET, "--json").stdout)
    assert len(listed) == 1
    for record in (listed[0], status):
        assert (record["bucket"], record["remote"], record["state"], record["pid"]) == (
            BUCKET, "s3_remote", "alive", pid)
        assert record["mount_point"] == str(env["runtime"] / "rclone" / BUCKET)
        assert record["symlinks"] == [str(link)]
        assert record["uploads"] == {"pending": 0, "failing": 0, "last_error": None}
    assert cli("unmount-bucket", BUCKET).returncode == 0
    assert json.loads(cli("mount-bucket", "--list", "--json").stdout) == []


@needs_fuse
def test_drop_stage_removes_the_copy_and_a_plain_unmount_keeps_it(env):
    """README: `unmount-bucket B --drop-stage` also removes B's staged copy (kept as a cache
    otherwise)."""
    env["s3"].make_bucket("drop-bkt", {f"f{i}.bin": b"d" * 100 for i in range(3)})
    copy_root = env["runtime"] / "stage" / "drop-bkt"
    assert cli("mount-bucket", "drop-bkt", "--stage", "--wait").returncode == 0
    assert cli("unmount-bucket", "drop-bkt").returncode == 0
    assert (copy_root / "current" / "f0.bin").read_bytes() == b"d" * 100  # kept as a cache
    proc = cli("unmount-bucket", "drop-bkt", "--drop-stage")
    assert proc.returncode == 0 and proc.stdout == "removed the staged copy of drop-bkt\n", proc
    assert not copy_root.exists()


@needs_fuse
def test_doctor_warns_about_stranded_files(env):
    """README: stranded files ... `--status` and `--list` report them, `--doctor` warns."""
    link = mount_bucket(BUCKET)
    (link / "doc_stranded.txt").write_text("x")
    time.sleep(0.5)
    pid = mountinfo.status(BUCKET).pid
    signal_checked(pid, signal.SIGKILL, "rclone")
    assert procs.wait_exit(pid, 5)
    proc = cli("mount-bucket", "--doctor")
    assert f"stranded {BUCKET}: 1 file(s) written but never uploaded" in proc.stdout, proc.stdout
    listed = cli("mount-bucket", "--list")
    assert "1 file(s) written but never uploaded" in listed.stdout, listed.stdout


@needs_fuse
def test_unmount_of_a_bucket_not_mounted_exits_3(env):
    """README exit codes: 3, not mounted (`--status`, `unmount-bucket`): before anything was
    ever mounted, and after the bucket's mount went away."""
    expected = f"error: {BUCKET} is not mounted — see 'mount-bucket --list'\n"
    proc = cli("unmount-bucket", BUCKET)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "", expected)
    assert cli("mount-bucket", BUCKET).returncode == 0
    assert cli("unmount-bucket", BUCKET).returncode == 0
    proc = cli("unmount-bucket", BUCKET)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "", expected)


@needs_fuse
def test_remote_option_mounts_from_that_remote(env):
    """`mount-bucket B --remote NAME`: the mount serves NAME:B (its rclone, status and output)."""
    proc = cli("mount-bucket", BUCKET, "--remote", "s3_remote_private")
    mp = env["runtime"] / "rclone" / BUCKET
    assert proc.returncode == 0 and proc.stdout.startswith(
        f"mounted s3_remote_private:{BUCKET} at {mp}; "), proc
    info = json.loads(cli("mount-bucket", "--status", BUCKET, "--json").stdout)
    assert info["remote"] == "s3_remote_private"
    assert f" mount s3_remote_private:{BUCKET} {mp} " in " ".join(procs.cmdline(info["pid"])) + " "
    proc = cli("unmount-bucket", BUCKET)
    assert proc.stdout.startswith(f"unmounted s3_remote_private:{BUCKET} from {mp}"), proc


@needs_fuse
def test_api_stage_wait_returns_once_the_link_is_on_the_local_copy(env):
    """README: `mount_bucket("imagenet-bkt", stage=True, wait=True)`."""
    files = {f"d/f{i}.bin": bytes([i]) * 500 for i in range(10)}
    env["s3"].make_bucket("api-stage", files)
    link = mount_bucket("api-stage", stage=True, wait=True)
    current = env["runtime"] / "stage" / "api-stage" / "current"
    assert os.readlink(link) == str(current)
    assert {rel: (link / rel).read_bytes() for rel in files} == files
    assert cli("unmount-bucket", "api-stage", "--drop-stage").returncode == 0


@pytest.mark.parametrize("prog", ["mount-bucket", "unmount-bucket"])
@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags(prog, flag):
    from visionlab.buckets import __version__

    proc = cli(prog, flag, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, f"visionlab-buckets, version {__version__}\n")


@needs_fuse
def test_sync_timeout_bounds_the_wait_and_names_the_pending_files(env):
    """README: `--sync` exits 1 naming the files ... after `--timeout` (default 600 s)."""
    link = mount_bucket(BUCKET)
    (link / "held_back.txt").write_text("x")
    env["s3"].pause()  # uploads hang: neither succeed nor fail
    try:
        proc = cli("mount-bucket", "--sync", BUCKET, "--timeout", "3", timeout=60)
    finally:
        env["s3"].resume()
    assert proc.returncode == 1, proc
    assert proc.stderr.splitlines()[-1].startswith(
        "error: 1 upload(s) still pending after 3s: held_back.txt"), proc.stderr
    assert cli("mount-bucket", "--sync", BUCKET).returncode == 0
    assert (env["s3"].data / BUCKET / "held_back.txt").read_text() == "x"


@needs_fuse
def test_mount_json_says_healed_when_it_replaced_a_dead_mount(env):
    assert json.loads(cli("mount-bucket", BUCKET, "--json").stdout)["healed"] is False
    pid = mountinfo.status(BUCKET).pid
    signal_checked(pid, signal.SIGKILL, "rclone")
    assert procs.wait_exit(pid, 5)
    healed = json.loads(cli("mount-bucket", BUCKET, "--json").stdout)
    assert (healed["healed"], healed["newly_mounted"]) == (True, True)
    assert json.loads(cli("mount-bucket", BUCKET, "--json").stdout)["healed"] is False
    assert cli("unmount-bucket", BUCKET).returncode == 0
