"""The write path as jobs use it, on real mounts against the loopback server: a checkpoint's
cached copy leaves the local disk once it is on S3 (and still reads back right), two checkpoints
saved back to back are both whole on S3 when `--sync` returns, a `--sync` started 0-100 ms after
`close()` finds the file, a written file is uploaded once and never copied onto itself on S3
afterwards, and `--sync` asks rclone to hurry each queued file once, not once per
round (a queue of 20,000 small files would otherwise cost 20,000 requests a second), and a new
name is its bytes (no unicode-equivalent existing file is taken for it), and many small files
upload many at once, not four at a time.

The temp-then-rename save is tests/test_checkpoints.py's; the file whose close has not reached
rclone when --sync starts is tests/test_unmount_load.py's."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

from conftest import BUCKET, needs_fuse, write_rclone_config
from s3proxy import CountingProxy

from visionlab.buckets import mount_bucket, sync_bucket
from visionlab.buckets.records import layout
from visionlab.buckets.system import rclone
from visionlab.buckets.system.rclone import _rc

pytestmark = needs_fuse

MB = 1 << 20


def cached_bytes(cache) -> int:
    """Bytes of file data in the mount's VFS cache (vfs/, not the metadata records)."""
    total = 0
    for dirpath, _dirs, files in os.walk(cache / "vfs"):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def digest(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_a_checkpoint_leaves_the_local_disk_once_it_is_on_s3_and_reads_back_whole(env):
    link = mount_bucket(BUCKET)
    data = os.urandom(8 * MB)
    (link / "ckpt.pt").write_bytes(data)
    sync_bucket(BUCKET, timeout=120)
    assert digest(env["s3"].data / BUCKET / "ckpt.pt") == hashlib.sha256(data).hexdigest()
    cache = layout.paths_for(BUCKET).cache
    deadline = time.monotonic() + 30  # rclone's cleaner looks every 5 s (a bound, not a timing)
    while cached_bytes(cache) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cached_bytes(cache) == 0, "the uploaded checkpoint stayed in the VFS cache"
    assert (link / "ckpt.pt").read_bytes() == data  # now read from S3


def test_two_checkpoints_saved_back_to_back_are_both_whole_on_s3_when_sync_returns(env):
    link = mount_bucket(BUCKET)
    first, second = os.urandom(24 * MB), os.urandom(24 * MB)
    (link / "step-1.pt").write_bytes(first)
    (link / "step-2.pt").write_bytes(second)  # its write overlaps the first one's upload
    sync_bucket(BUCKET, timeout=120)
    server = env["s3"].data / BUCKET
    assert digest(server / "step-1.pt") == hashlib.sha256(first).hexdigest()
    assert digest(server / "step-2.pt") == hashlib.sha256(second).hexdigest()


def test_a_sync_started_0_to_100_ms_after_close_finds_the_file(env):
    link = mount_bucket(BUCKET)
    server = env["s3"].data / BUCKET
    missing = []
    for n, delay in enumerate([0, 0.01, 0.025, 0.05, 0.075, 0.1] * 2):
        data = os.urandom(MB + n)
        with open(link / f"after_{n}.bin", "wb") as f:
            f.write(data)
        time.sleep(delay)
        sync_bucket(BUCKET, timeout=120)
        path = server / f"after_{n}.bin"
        if not path.exists() or path.read_bytes() != data:
            missing.append((n, delay))
    assert missing == []


def test_sync_hurries_each_queued_file_once_not_once_per_round(env, monkeypatch):
    link = mount_bucket(BUCKET)
    sock = layout.paths_for(BUCKET).socket
    calls = []
    real = _rc._rc

    def counting(socket_path, command, params=None, timeout=5.0):
        calls.append(command)
        return real(socket_path, command, params, timeout)  # the real rclone answers

    monkeypatch.setattr(_rc, "_rc", counting)
    for i in range(40):
        (link / f"r{i:03d}.json").write_text(f"{i}\n")
    deadline = time.monotonic() + 10
    while rclone.uploads(sock).queued < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    calls.clear()
    rclone.expedite_uploads(sock)
    first = calls.count("vfs/queue-set-expiry")
    calls.clear()
    rclone.expedite_uploads(sock)
    again = calls.count("vfs/queue-set-expiry")
    assert first >= 1 and again == 0, (first, again)
    sync_bucket(BUCKET, timeout=120)
    assert len(list((env["s3"].data / BUCKET).glob("r*.json"))) == 40


def test_on_linux_a_new_name_is_its_bytes_never_a_unicode_equivalent_existing_file(env):
    """The default mount compares names byte for byte, as Linux disks do (and without walking
    every name of the folder per new file: the small-file speed-up): writing 'café' spelt with a
    combining accent (NFD) makes a new object, never overwrites the precomposed (NFC) one."""
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    (env["s3"].data / BUCKET / nfc).write_bytes(b"precomposed\n")
    link = mount_bucket(BUCKET)
    assert nfc in os.listdir(link) and nfd not in os.listdir(link)
    (link / nfd).write_bytes(b"combining\n")
    sync_bucket(BUCKET, timeout=60)
    assert (env["s3"].data / BUCKET / nfc).read_bytes() == b"precomposed\n"
    assert (env["s3"].data / BUCKET / nfd).read_bytes() == b"combining\n"


def test_a_written_file_is_uploaded_once_and_never_copied_onto_itself_on_s3(env, tmp_path):
    """With the kernel's write-back cache, a `cp` or a truncate into the mount also sets the
    file's time; with the S3 time shown (--use-server-modtime) rclone then stores that time by
    copying the uploaded object onto itself: a second, server-side copy of every checkpoint,
    made in parts above 4.6 GiB (which took the mount down against the loopback server). The
    proxy counts those requests. (A time the user sets, `touch` or `cp -p`, still costs one.)"""
    proxy = CountingProxy(env["s3"].port).start()
    try:
        write_rclone_config(env["config"], proxy.endpoint)
        link = mount_bucket(BUCKET)
        data = os.urandom(4 * MB)
        with open(link / "ckpt.pt", "wb") as f:  # as torch.save writes
            f.write(data)
        local = tmp_path / "results.npy"
        local.write_bytes(data[:MB])
        subprocess.run(["cp", str(local), str(link / "copied.npy")], check=True, timeout=60)
        with open(link / "truncated.bin", "wb") as f:  # as dd writes: truncate, then write
            f.truncate(0)
            f.write(data[:MB])
        sync_bucket(BUCKET, timeout=120)
        deadline = time.monotonic() + 3  # a copy follows its upload at once
        while not proxy.copies and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proxy.copies == 0, f"{proxy.copies} server-side copies after the uploads"
        server = env["s3"].data / BUCKET
        assert digest(server / "ckpt.pt") == hashlib.sha256(data).hexdigest()
        assert (server / "copied.npy").read_bytes() == data[:MB]
        assert (server / "truncated.bin").read_bytes() == data[:MB]
    finally:
        proxy.stop()


def test_many_small_files_upload_many_at_once_not_four_at_a_time(env):
    """A small file's upload is a few round trips to S3, so rclone's default of 4 uploads at
    once bounds a results folder to ~85 files/s at 20 ms from S3. The proxy holds each request
    50 ms, so uploads that overlap keep their connections open together, and it counts the most
    open at once: a count, not a timing."""
    proxy = CountingProxy(env["s3"].port, delay=0.05).start()
    try:
        write_rclone_config(env["config"], proxy.endpoint)
        link = mount_bucket(BUCKET)
        names = [f"pred{i:03d}.json" for i in range(64)]
        for name in names:
            (link / name).write_bytes(f'{{"id": "{name}"}}\n'.encode())
        proxy.reset()
        sync_bucket(BUCKET, timeout=120)
        server = env["s3"].data / BUCKET
        assert all((server / n).read_bytes() == f'{{"id": "{n}"}}\n'.encode() for n in names)
        assert proxy.peak_open >= 16, f"at most {proxy.peak_open} connections open at once"
    finally:
        proxy.stop()
