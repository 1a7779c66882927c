"""`--stage` at the lab's sizes: the cheap checks (FUSE, credentials, the bucket answering) before
the listing, inodes counted like bytes, and one listing streamed through a file on disk, with
the memory of our processes flat in the object count. Real mounts, real rclone."""

from __future__ import annotations

import json
import os
import re
import subprocess

from conftest import bin_path, files_under, needs_fuse
from helpers_mounts import recording_rclone

BKT = "stage-bkt"


def cli(*args: str, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([bin_path("mount-bucket"), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def listings(record) -> list[str]:
    """The recursive listings (`rclone lsjson -R`) that ran."""
    return [line for line in record.read_text().splitlines()
            if line.startswith("lsjson ") and " -R " in f" {line} "]


def nothing_created(env) -> None:
    assert not os.path.lexists(env["home"] / "s3_buckets")
    assert not (env["runtime"] / "stage").exists()
    assert not any(p.startswith("rclone/") for p in files_under(env["runtime"]))


def test_stage_with_fuse_closed_fails_before_listing_anything(env, monkeypatch, tmp_path):
    env["s3"].make_bucket(BKT, {f"f{i}.bin": b"x" * 10 for i in range(20)})
    record = recording_rclone(monkeypatch, tmp_path)
    closed = tmp_path / "fuse"
    closed.mkdir()  # exists, cannot be opened read-write: FUSE closed to this user
    proc = cli(BKT, "--stage", "--wait", env={**os.environ, "VISIONLAB_BUCKETS_DEV_FUSE": str(closed)})
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"error: cannot open {closed} read-write as ")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert listings(record) == []
    nothing_created(env)


@needs_fuse
def test_stage_of_a_missing_bucket_fails_before_listing_anything(env, monkeypatch, tmp_path):
    record = recording_rclone(monkeypatch, tmp_path)
    proc = cli("no-such-bkt", "--stage", "--wait")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: bucket 'no-such-bkt' ")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert listings(record) == []
    assert any(".visionlab-buckets-probe" in line for line in record.read_text().splitlines())
    nothing_created(env)
    assert json.loads(cli("--status", "no-such-bkt", "--json").stdout)["state"] == "not-mounted"


def test_stage_that_cannot_fit_its_inodes_is_refused_and_nothing_is_created(env):
    """Bytes fit (512 MB free for 6 KB and the 256 MB margin), inodes do not: 300 files in 3
    folders, 200 inodes."""
    env["s3"].make_bucket(BKT, {f"d{i % 3}/f{i:03d}.bin": b"x" * 20 for i in range(300)})
    small = env["tmp"] / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m,nr_inodes=200", "tmpfs", str(small)],
                   check=True, timeout=30)
    try:
        environ = {**os.environ, "VISIONLAB_BUCKETS_STAGE_DIR": str(small / "stage")}
        free = os.statvfs(small).f_favail
        proc = cli(BKT, "--stage", env=environ)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert proc.stdout == ""
        said = re.fullmatch(
            rf"error: {BKT} does not fit: 303 files and folders to create \(\+1,024 margin\), "
            rf"(\d+) inodes free in {small}/stage — free inodes there, set "
            "VISIONLAB_BUCKETS_STAGE_DIR to a node-local disk with more inodes, or stage one "
            "prefix with --stage-prefix\n", proc.stderr)
        assert said, proc.stderr
        assert free - 2 <= int(said.group(1)) <= free  # the listing's unnamed temp file holds one
        assert os.listdir(small) == []
        nothing_created(env)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=True, timeout=30)  # busy if staged


def test_the_listing_is_compared_in_one_merge_whatever_order_rclone_lists_in(tmp_path, monkeypatch):
    """Totals of a listing against the copy in use's: sorted as it comes, or sorted on disk."""
    from visionlab.buckets.staging import listing

    monkeypatch.setattr(listing, "SORT_CHUNK", 3)  # several runs merged
    objects = [(f"d{i % 4}/s{i % 2}/f{i:02d}", i, "t") for i in range(20)]
    first, totals = listing.write(iter(objects), "", tmp_path, tmp_path / "none")
    assert totals == listing.Totals(20, 190, 190, 20 + 4 + 4, False)  # 8 folders
    old = tmp_path / "listing.json"
    listing.save(first, old)
    assert [r for r in listing.records(old)] == sorted(objects, key=lambda o: listing.line_of(*o))
    again = listing.write(reversed(objects), "", tmp_path, old)[1]  # unsorted: sorted on disk
    assert again == listing.Totals(20, 190, 0, 8, True)
    changed = [*objects[:5], ("d0/s0/f05", 99, "t2"), *objects[6:], ("new", 1, "t")]
    assert listing.write(iter(changed), "", tmp_path, old)[1] == listing.Totals(
        21, 190 - 5 + 99 + 1, 100, 8 + 2, False)
    assert listing.write(iter(objects[1:]), "", tmp_path, old)[1].unchanged is False  # one deleted
    assert listing.write(iter(objects), "train", tmp_path, old)[1].needed == 190  # other prefix


def test_a_listing_line_is_json_and_its_cheap_parse_agrees_on_awkward_names(tmp_path):
    """line_of writes what json.dumps would; the merge's parse without json reads back the same
    size and counts the same folders, for names with commas, quotes, backslashes, newlines and
    non-ASCII (and a time with a comma, from some other S3)."""
    from visionlab.buckets.staging import listing

    names = ['a,b/c"d/e\\f', "a,b/c\"d/g\nh", "a,b/x", "a,b/y/z", "z\u00e9/\u03bb,1/\u2603",
             "top,level", "t/\x01/\x7f"]
    for i, name in enumerate(names):
        for modified in ("2026-12-07T16:33:00.123456789Z", "Mon, 07 Dec 2026 16:33:00 GMT",
                         "07,12,2026", ""):
            line = listing.line_of(name, i * 1000, modified)
            assert line == json.dumps([name, i * 1000, modified], ensure_ascii=False,
                                      separators=(",", ":")) + "\n"
            assert listing._path_size(line) == (json.dumps(name, ensure_ascii=False)[1:-1],
                                                i * 1000)
    rows = sorted((name, 1, "t") for name in names)
    totals = listing.write(iter(rows), "", tmp_path, tmp_path / "none")[1]
    folders = {"/".join(n.split("/")[:k]) for n in names for k in range(1, n.count("/") + 1)}
    assert totals == listing.Totals(len(names), len(names), len(names),
                                    len(names) + len(folders), False)


# Runs mount-bucket in this process and writes its own peak RSS (KiB) at exit: VmHWM, this
# program's own (ru_maxrss would also count the memory of the process it was forked from).
_MEASURED = (
    "import atexit, re, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write(\n"
    "    re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1)))\n"
    "sys.argv[0] = 'mount-bucket'\n"
    "from visionlab.buckets.cli import mount_main\n"
    "mount_main()\n"
)


def _sync_rclone_of(stager: int) -> int | None:
    """The pid of the `rclone sync` the stager runs, None while there is none."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != stager:
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if len(argv) > 1 and argv[1] == b"sync":
            return int(entry.name)
    return None


def _hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)


def _peak_rss_of_a_stage(env, tmp_path, count: int) -> tuple[int, int, int]:
    """(CLI, stager, the stager's rclone sync) peak RSS in KiB of `--stage --wait` of `count`
    objects in 1,000 folders (ImageNet's shape); the stager's and rclone's read from /proc
    (VmHWM) while they run, to their last moment seen."""
    import sys
    import threading

    bucket = env["s3"].make_bucket(f"rss-{count}")
    for i in range(count):
        folder = bucket / f"c{i % 1000:04d}"
        folder.mkdir(exist_ok=True)
        (folder / f"img{i:07d}.jpg").write_bytes(b"j")
    out = tmp_path / f"rss-{count}"
    stage_json = env["runtime"] / "stage" / f"rss-{count}" / "stage.json"
    seen = {"stager": 0, "sync": 0}
    done = threading.Event()

    def watch() -> None:
        sync = None
        while not done.is_set():
            try:
                pid = json.loads(stage_json.read_text())["pid"]
                if pid:
                    seen["stager"] = max(seen["stager"], _hwm(pid))
                    sync = sync or _sync_rclone_of(pid)
                if sync:
                    seen["sync"] = max(seen["sync"], _hwm(sync))
            except (OSError, ValueError, KeyError, TypeError):
                pass
            done.wait(0.02)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        proc = subprocess.run([sys.executable, "-c", _MEASURED, str(out), f"rss-{count}",
                               "--stage", "--wait", "-q"], capture_output=True, text=True,
                              timeout=900, check=False)
    finally:
        done.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr
    assert json.loads(stage_json.read_text())["files_total"] == count
    subprocess.run([bin_path("unmount-bucket"), f"rss-{count}", "--drop-stage", "-q"],
                   capture_output=True, timeout=300, check=False)
    return int(out.read_text()), seen["stager"], seen["sync"]


@needs_fuse
def test_the_clis_and_the_stagers_memory_stay_flat_in_the_object_count(env, tmp_path):
    """10x the objects (5,000 to 50,000 in 1,000 folders): neither of our processes grows by
    more than 4 MB, and the copier (`rclone sync`, walking folder by folder) by less than
    18 MB. Holding the listing whole grew the CLI by ~0.7 KB per object (+32 MB here);
    `--fast-list` grew rclone's by 28 MB (walking: 9 MB)."""
    small = _peak_rss_of_a_stage(env, tmp_path, 5_000)
    big = _peak_rss_of_a_stage(env, tmp_path, 50_000)
    print(f"peak RSS KiB (CLI, stager, rclone sync): 5,000 objects {small}, "
          f"50,000 objects {big}")
    assert small[1] > 0 and big[1] > 0, "the stager was never seen"
    assert small[2] > 0 and big[2] > 0, "the stager's rclone sync was never seen"
    assert big[0] - small[0] < 4 << 10, (small, big)
    assert big[1] - small[1] < 4 << 10, (small, big)
    assert big[2] - small[2] < 18 << 10, (small, big)
