"""Every write reaches S3 or says why, within seconds: --sync, uploads in --status, unmount that
fails fast, the Python API draining at exit. Real mounts against a loopback server that can be
restarted read-only (it answers 500 to every PUT) and writable again on the same port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import BUCKET, bin_path, finish, needs_fuse, readline, signal_checked

pytestmark = [needs_fuse]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    name = "unmount-bucket" if args and args[0] == "unmount" else "mount-bucket"
    argv = [bin_path(name), *(args[1:] if name == "unmount-bucket" else args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def on_server(s3, names) -> set[str]:
    return {n for n in names if (s3.data / BUCKET / n).exists()}


def test_refused_uploads_are_reported_then_synced_when_the_server_accepts(env):
    s3 = env["s3"]
    assert cli(BUCKET).returncode == 0
    link = env["home"] / "s3_buckets" / BUCKET
    s3.restart(read_only=True)
    names = [f"refused_{i}.txt" for i in range(3)]
    for n in names:
        (link / n).write_text(n)
    written = time.monotonic()

    # --status says they fail, with rclone's error, within 20 s of the writes.
    seen = None
    while time.monotonic() - written < 20:
        info = json.loads(cli("--status", BUCKET, "--json").stdout)
        if info["uploads"]["failing"] == 3:
            seen = info
            break
        time.sleep(0.5)
    assert seen, info
    assert seen["uploads"]["pending"] == 3
    assert "HTTP 500" in seen["uploads"]["last_error"]
    human = cli("--status", BUCKET)
    assert "3 upload(s) failing: HTTP 500" in human.stdout
    listing = cli("--list")
    assert f"{BUCKET}: 3 upload(s) failing: HTTP 500" in listing.stdout

    # --sync fails fast, naming the files and the error: "keep failing", not "still pending
    # after 600s" (its default timeout, far beyond cli()'s 120 s limit).
    failed = cli("--sync", BUCKET)
    assert failed.returncode == 1, failed
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 3 upload(s) keep failing: ")
    for n in names:
        assert n in last
    assert "HTTP 500" in last
    assert on_server(s3, names) == set()

    # unmount fails fast the same way and keeps the mount and its cache.
    refused = cli("unmount", BUCKET)
    assert refused.returncode == 1
    assert "keep failing" in refused.stderr
    assert json.loads(cli("--status", BUCKET, "--json").stdout)["state"] == "alive"

    # The server accepts again: --sync uploads everything and says so.
    s3.restart(read_only=False)
    synced = cli("--sync", BUCKET)
    assert synced.returncode == 0, synced
    assert synced.stdout.strip() == f"synced: every upload reached S3 ({BUCKET})"
    assert on_server(s3, names) == set(names)
    assert json.loads(cli("--status", BUCKET, "--json").stdout)["uploads"] == {
        "pending": 0, "failing": 0, "last_error": None}
    assert cli("unmount", BUCKET).returncode == 0


def test_sync_with_nothing_pending_answers_at_once(env):
    assert cli(BUCKET).returncode == 0
    result = cli("--sync")
    assert result.returncode == 0
    assert result.stdout.strip() == f"synced: every upload reached S3 ({BUCKET})"
    assert cli("--sync", "not-mounted-bucket").returncode == 3
    assert cli("unmount", BUCKET).returncode == 0
    assert cli("--sync").stdout.strip() == "no buckets mounted"


def test_dead_mount_reports_stranded_files_and_the_next_mount_uploads_them(env):
    s3 = env["s3"]
    assert cli(BUCKET).returncode == 0
    link = env["home"] / "s3_buckets" / BUCKET
    s3.restart(read_only=True)
    (link / "stranded.txt").write_text("kept in the cache")
    pid = json.loads(cli("--status", BUCKET, "--json").stdout)["pid"]
    signal_checked(pid, signal.SIGKILL, "rclone")
    time.sleep(0.5)
    info = json.loads(cli("--status", BUCKET, "--json").stdout)
    assert info["state"] == "stale"
    assert info["stranded"] == 1 and info["stranded_files"] == ["stranded.txt"]
    human = cli("--status", BUCKET)
    assert "1 file(s) written but never uploaded: stranded.txt" in human.stdout
    assert f"'mount-bucket {BUCKET}' uploads them" in human.stdout
    s3.restart(read_only=False)
    assert cli(BUCKET).returncode == 0  # heals; rclone finds the file in its cache
    assert cli("--sync", BUCKET).returncode == 0
    assert (s3.data / BUCKET / "stranded.txt").read_text() == "kept in the cache"
    assert cli("unmount", BUCKET).returncode == 0


WRITER = textwrap.dedent("""
    import os, signal, sys, time
    from visionlab.buckets import mount_bucket
    link = mount_bucket("teamspace-lrm")
    mode = sys.argv[1]
    if mode == "own-handler":
        def handler(signum, frame):
            open(os.environ["HANDLER_RAN"], "w").write("yes")
            sys.exit(0)
        signal.signal(signal.SIGTERM, handler)
    for i in range(20):
        (link / f"{mode}_{i}.txt").write_text(f"{mode} {i}")
    (link / f"{mode}_big.bin").write_bytes(os.urandom(8 << 20))
    print("written", flush=True)
    if mode == "exit":
        sys.exit(0)
    if mode == "exception":
        raise RuntimeError("the program failed after writing")
    time.sleep(120)
""")


@pytest.mark.parametrize("mode", ["exit", "exception", "sigterm", "own-handler"])
def test_python_writer_exit_leaves_its_files_on_the_server(env, mode):
    """No unmount: the files are on the server the moment the writer process has exited."""
    s3 = env["s3"]
    script = env["tmp"] / "writer.py"
    script.write_text(WRITER)
    marker = env["tmp"] / "handler-ran"
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "HANDLER_RAN": str(marker)})
    assert readline(proc, 120) == "written"
    if mode in ("sigterm", "own-handler"):
        proc.send_signal(signal.SIGTERM)
    _, _, err = finish(proc, 120)
    names = [f"{mode}_{i}.txt" for i in range(20)] + [f"{mode}_big.bin"]
    assert on_server(s3, names) == set(names), err
    assert (s3.data / BUCKET / f"{mode}_big.bin").stat().st_size == 8 << 20
    if mode == "own-handler":
        assert marker.read_text() == "yes"  # the program's handler ran, not ours
        assert proc.returncode == 0
    if mode == "sigterm":
        assert proc.returncode == 128 + signal.SIGTERM
    assert subprocess.run([bin_path("unmount-bucket"), BUCKET], capture_output=True,
                          timeout=180).returncode == 0


def test_doctor_write_finds_read_only_credentials(env):
    s3 = env["s3"]
    ok = cli("--doctor", BUCKET, "--write")
    assert ok.returncode == 0, ok.stdout
    assert f"ok    write {BUCKET}: put and deleted s3_remote:{BUCKET}/.visionlab-buckets-doctor-write-test-" \
        in ok.stdout
    assert not [p for p in os.listdir(s3.data / BUCKET) if "doctor" in p]
    s3.restart(read_only=True)
    refused = cli("--doctor", BUCKET, "--write")
    assert refused.returncode == 1
    line = [ln for ln in refused.stdout.splitlines() if ln.startswith("fail  write")]
    assert line and "HTTP 500" in line[0]
    plain = cli("--doctor", BUCKET)  # plain --doctor stays read-only
    assert plain.returncode == 0 and "write " not in plain.stdout
