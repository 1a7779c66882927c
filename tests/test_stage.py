"""`--stage`: the bucket copied to node-local disk while the mount serves reads, then every link
moved to the complete, verified, read-only copy at once. Real mounts, real rclone copies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import bin_path, needs_fuse, signal_checked

pytestmark = [needs_fuse]
BKT = "stage-bkt"


def cli(*args: str, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    name = "unmount-bucket" if args[0] == "unmount" else "mount-bucket"
    argv = [bin_path(name), *(args[1:] if name == "unmount-bucket" else args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)


def dataset(s3, n: int = 200, size: int = 10_000) -> dict[str, bytes]:
    files = {f"train/f{i:04d}.bin": os.urandom(size) for i in range(n)}
    files["val/v.txt"] = b"validation\n"
    s3.make_bucket(BKT, files)
    return files


def stage_json(env) -> dict:
    return json.loads((env["runtime"] / "stage" / BKT / "stage.json").read_text())


def test_stage_wait_moves_the_link_to_a_read_only_local_copy(env):
    files = dataset(env["s3"])
    proc = cli(BKT, "--stage", "--wait")
    assert proc.returncode == 0, proc.stderr
    link = env["home"] / "s3_buckets" / BKT
    current = env["runtime"] / "stage" / BKT / "current"
    assert os.readlink(link) == str(current)
    assert proc.stdout.splitlines() == [
        f"mounted s3_remote:{BKT} at {env['runtime']}/rclone/{BKT}; link {link}",
        f"{BKT}: staged: 201 files, 2 MB local at {current}"]
    for rel, content in files.items():
        assert (link / rel).read_bytes() == content
    real = Path(os.path.realpath(link))
    assert real.parent == current.parent and real.name == "copy-1"
    assert oct((real / "train").stat().st_mode & 0o777) == "0o555"
    assert oct((real / "train" / "f0000.bin").stat().st_mode & 0o777) == "0o444"
    info = json.loads(cli("--status", BKT, "--json").stdout)
    assert info["profile"] == "dataset"  # the mount under it is read-only
    assert info["stage"] == {"state": "ready", "files_done": 201, "files_total": 201,
                             "bytes_done": 2_000_011, "bytes_total": 2_000_011,
                             "path": str(current), "error": None}
    assert info["symlinks"] == [str(link)]
    human = cli("--status", BKT).stdout
    assert f"  staged: 201 files, 2 MB local at {current}" in human
    # A second link made later points at the copy too; unmount removes both, keeps the copy.
    other = cli(BKT, "--root", "elsewhere")
    assert other.returncode == 0 and os.readlink(env["tmp"] / "elsewhere" / BKT) == str(current)
    out = cli("unmount", BKT)
    assert out.returncode == 0 and "removed 2 link(s)" in out.stdout
    assert not os.path.lexists(link) and current.exists()
    dropped = cli("unmount", BKT, "--drop-stage")
    assert dropped.stdout.strip() == f"removed the staged copy of {BKT}"
    assert not (env["runtime"] / "stage" / BKT).exists()


def test_restage_of_an_unchanged_bucket_downloads_nothing_and_a_changed_one_only_the_changes(env):
    s3 = env["s3"]
    dataset(s3)
    assert cli(BKT, "--stage", "--wait").returncode == 0
    first = stage_json(env)
    assert first["downloaded"] == 201
    log = env["runtime"] / "stage" / BKT / "copy.log"
    log_size = log.stat().st_size
    again = cli(BKT, "--stage", "--wait")
    assert again.returncode == 0
    assert stage_json(env)["downloaded"] == 0
    assert log.stat().st_size == log_size  # no rclone sync ran at all: listed and compared only
    # Change one object, add one, delete one: the next stage fetches 2 and removes 1.
    bucket = s3.data / BKT
    (bucket / "train" / "f0001.bin").write_bytes(b"changed")
    (bucket / "train" / "new.bin").write_bytes(b"new")
    (bucket / "train" / "f0002.bin").unlink()
    time.sleep(1.1)  # the test server's directory cache
    assert cli(BKT, "--stage", "--wait").returncode == 0
    link = env["home"] / "s3_buckets" / BKT
    assert (link / "train" / "f0001.bin").read_bytes() == b"changed"
    assert (link / "train" / "new.bin").read_bytes() == b"new"
    assert not (link / "train" / "f0002.bin").exists()
    assert stage_json(env)["downloaded"] == 2
    assert os.path.basename(os.path.realpath(link)) == "copy-2"
    assert not (env["runtime"] / "stage" / BKT / "copy-1").exists()
    assert cli("unmount", BKT, "--drop-stage").returncode == 0


def test_a_reader_across_the_switch_sees_no_error(env):
    files = dataset(env["s3"], n=400, size=20_000)
    link = env["home"] / "s3_buckets" / BKT
    assert cli(BKT, "--stage").returncode == 0  # returns at once; the link works now
    counts = {"ok": 0, "failed": 0}
    stop = threading.Event()

    def reader() -> None:
        names = sorted(files)
        while not stop.is_set():
            for rel in names:
                try:
                    ok = (link / rel).read_bytes() == files[rel]
                except OSError:
                    ok = False
                counts["ok" if ok else "failed"] += 1
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while stage_json(env)["state"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # and a while on the local copy
    finally:
        stop.set()
        thread.join()
    assert stage_json(env)["state"] == "ready"
    print(f"reads across the switch: {counts}")
    assert counts["failed"] == 0 and counts["ok"] > len(files), counts
    assert cli("unmount", BKT, "--drop-stage").returncode == 0


def test_a_bucket_that_does_not_fit_is_refused_and_nothing_is_created(env):
    dataset(env["s3"], n=20, size=1_000_000)  # 20 MB
    small = env["tmp"] / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], check=True, timeout=30)
    try:
        environ = {**os.environ, "VISIONLAB_BUCKETS_STAGE_DIR": str(small / "stage")}
        proc = cli(BKT, "--stage", env=environ)
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert proc.stderr.startswith(
            f"error: {BKT} does not fit: 0.02 GB to copy (+0.27 GB margin), 0.01 GB free in "
            f"{small}/stage — free space there, set VISIONLAB_BUCKETS_STAGE_DIR")
        assert proc.stderr.count("\n") == 1
        assert os.listdir(small) == []
        assert not os.path.lexists(env["home"] / "s3_buckets")
        assert json.loads(cli("--status", BKT, "--json").stdout)["state"] == "not-mounted"
    finally:
        subprocess.run(["umount", str(small)], check=True, timeout=30)


def test_an_interrupted_copy_is_failed_with_its_reason_and_the_next_stage_resumes(env):
    s3 = env["s3"]
    dataset(s3, n=300, size=50_000)
    work = env["runtime"] / "stage" / BKT / "work" / "train"
    assert cli(BKT, "--stage").returncode == 0
    s3.pause()  # let the copy through in short bursts until part of it is done...
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
            not work.is_dir() or len([p for p in work.iterdir() if p.suffix == ".bin"]) < 30):
        s3.resume()
        time.sleep(0.01)
        s3.pause()
        time.sleep(0.05)
    try:
        pid = stage_json(env)["pid"]
        # ...and dies, as when its SLURM job ends (a pid of 0 would be pytest's own group)
        signal_checked(pid, signal.SIGKILL, "visionlab.buckets.staging.stager", group=True)
        time.sleep(0.2)
    finally:
        s3.resume()
    info = json.loads(cli("--status", BKT, "--json").stdout)
    assert info["stage"]["state"] == "failed"
    assert info["stage"]["error"].startswith(f"the copy process (pid {pid}) ended before finishing")
    link = env["home"] / "s3_buckets" / BKT
    assert os.readlink(link) == str(env["runtime"] / "rclone" / BKT)  # still on the mount
    done_before = len([p for p in work.iterdir() if p.suffix == ".bin"])
    assert 0 < done_before < 300
    resumed = cli(BKT, "--stage", "--wait")
    assert resumed.returncode == 0, resumed.stderr
    assert stage_json(env)["downloaded"] <= 301 - done_before + 8  # resumed, not started over
    assert os.readlink(link) == str(env["runtime"] / "stage" / BKT / "current")
    assert cli("unmount", BKT, "--drop-stage").returncode == 0


def test_progress_rises_in_bytes_during_one_large_object_and_an_interrupted_stage_keeps_what_it_finished(env):
    """A packed cache: one large file beside three small ones. While the large one downloads
    (rclone held to 8 MB/s by RCLONE_BWLIMIT, in the stager's environment only), --status shows
    its bytes rising with no file done. Killed halfway, the next --stage keeps the small files it
    finished and downloads only the large one again, from its first byte: rclone resumes no
    download (the README says so)."""
    big = os.urandom(1 << 20) * 40  # 40 MiB: ~5 s at 8 MB/s
    small = {"manifest.json": b'{"n": 3}\n', "labels.npy": os.urandom(4096),
             "offsets.npy": os.urandom(8192)}
    env["s3"].make_bucket(BKT, {"image.bin": big, **small})
    total = len(big) + sum(map(len, small.values()))
    slow = {**os.environ, "RCLONE_BWLIMIT": "8M"}
    assert cli(BKT, "--stage", env=slow).returncode == 0
    seen: list[int] = []
    pid = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = json.loads(cli("--status", BKT, "--json").stdout)["stage"]
        assert st["state"] == "copying", st
        assert st["bytes_total"] == total
        if st["files_done"] >= 3 and (not seen or st["bytes_done"] > seen[-1]):
            seen.append(st["bytes_done"])
        if st["bytes_done"] > total // 2:
            pid = stage_json(env)["pid"]
            break
        time.sleep(0.2)
    assert st["files_done"] == 3, st  # the small ones done, the large one not
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] < total, seen
    work = env["runtime"] / "stage" / BKT / "work"
    signal_checked(pid, signal.SIGKILL, "visionlab.buckets.staging.stager", group=True)
    assert sorted(p.name for p in work.iterdir() if not p.name.endswith(".partial")) == \
        sorted(small)  # what it finished is there; image.bin is not
    resumed = cli(BKT, "--stage", "--wait")
    assert resumed.returncode == 0, resumed.stderr
    st = stage_json(env)
    assert st["downloaded"] == 1 and st["bytes_done"] == total  # image.bin only
    assert (env["home"] / "s3_buckets" / BKT / "image.bin").read_bytes() == big
    assert cli("unmount", BKT, "--drop-stage").returncode == 0


def test_unmount_stops_a_copy_in_progress(env):
    s3 = env["s3"]
    dataset(s3, n=300, size=50_000)
    assert cli(BKT, "--stage").returncode == 0
    s3.pause()
    try:
        pid = stage_json(env)["pid"]
        out = cli("unmount", BKT)
    finally:
        s3.resume()
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")
    assert stage_json(env)["state"] == "failed"
    assert not os.path.lexists(env["home"] / "s3_buckets" / BKT)


def test_stage_one_prefix_keeps_the_rest_on_the_mount(env):
    files = dataset(env["s3"], n=50)
    assert cli(BKT, "--stage", "--stage-prefix", "train/", "--wait").returncode == 0
    link = env["home"] / "s3_buckets" / BKT
    real = Path(os.path.realpath(link))
    assert (real / "train").is_dir() and not (real / "train").is_symlink()
    through = env["runtime"] / "stage" / BKT / "mount"  # kept on a live mount of the bucket
    assert os.readlink(real / "val") == str(through / "val")
    assert os.readlink(through) == str(env["runtime"] / "rclone" / BKT)
    assert (link / "val" / "v.txt").read_bytes() == files["val/v.txt"]
    assert (link / "train" / "f0003.bin").read_bytes() == files["train/f0003.bin"]
    assert cli("unmount", BKT, "--drop-stage").returncode == 0
