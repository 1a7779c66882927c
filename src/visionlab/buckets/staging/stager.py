"""The background process of `--stage`: copy, verify, make read-only, move the links.

    python -m visionlab.buckets.staging.stager BUCKET REMOTE PREFIX MOUNT_SCOPE

Started (detached, own process group) by start.attach, or by a waiter taking over a copy
whose stager died (start.take_over): it resumes work/. It writes its progress to stage.json
about twice a second. Any failure leaves the links on the mount and the state "failed" with the
reason; the work dir stays, so the next `--stage` resumes instead of starting over.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from ..errors import BucketsError
from ..records import layout, links, state
from ..system import mounttable, rcconf, rclone, runner
from . import listing
from .record import StageState, load, save
from .record import copies as _copies
from .relink import switch_all
from .removal import remove_copy


def _writable_dirs(root: Path) -> None:
    """Directories of a copy made read-only (0555) become writable again for the next sync;
    files stay as they are (they are shared, as hard links, with the copy in use)."""
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o700)


def _read_only(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o444)
        os.chmod(dirpath, 0o555)


def _verify(dest: Path, objects: Iterable[tuple[str, int, str]]) -> None:
    """Every listed object is in the copy with its size (rclone checked each download's MD5);
    the listing is read line by line."""
    for rel, size, _modified in objects:
        try:
            got = os.stat(dest / rel).st_size
        except OSError:
            raise BucketsError(f"{rel} is missing from the copy", "run --stage again") from None
        if got != size:
            raise BucketsError(f"{rel} has {got} bytes in the copy, {size} in the listing",
                               "the bucket changed while copying; run --stage again")


def _link_other_entries(copy_root: Path, prefix: str, mount_point: str, top: list[str]) -> None:
    """When one prefix is staged, the bucket's other top-level entries stay on the mount: through
    the stage dir's `mount` link, kept on a live mount of the bucket (relink.keep_mount_link)."""
    first = prefix.strip("/").split("/")[0]
    for name in top:
        if name != first and not os.path.lexists(copy_root / name):
            os.symlink(os.path.join(mount_point, name), copy_root / name)


def run(bucket: str, remote: str, prefix: str, scope: str) -> None:
    paths = layout.stage_paths(bucket)
    st = load(paths) or StageState(state="copying")
    st = st._replace(state="copying", pid=os.getpid(), error=None)
    save(paths, st)
    new_listing = paths.listing.with_suffix(".new")
    total = st.files_total
    copies = _copies(paths)
    links.replace(paths.mount, layout.paths_for(bucket, scope).mount_point)
    if not paths.work.exists():
        if copies:  # start from the copy in use: unchanged objects are hard links, not downloads
            if not mounttable.hard_link_tree(str(copies[-1]), str(paths.work)):
                shutil.copytree(copies[-1], paths.work, symlinks=True, copy_function=os.link)
        else:
            os.mkdir(paths.work, 0o700)
    _writable_dirs(paths.work)
    for entry in paths.work.iterdir():  # a prefix stage's links to the mount: made afresh
        if entry.is_symlink():
            entry.unlink()
    dest = paths.work / prefix if prefix else paths.work
    dest.mkdir(parents=True, exist_ok=True)
    binary = rclone.find_rclone()
    argv = rclone.sync_argv(binary, rcconf.config_path(binary), remote, bucket, prefix, dest,
                            paths.log, paths.socket)
    # Counted once (not at every progress poll: 2,000 stats a poll cost CPU the copy needs).
    # What an interrupted copy finished counts as done: files and bytes (a file rclone had only
    # partly downloaded is fetched again from its first byte; rclone resumes no download).
    already = already_bytes = 0
    for rel, size, _m in listing.records(new_listing):
        if os.path.exists(dest / rel):
            already += 1
            already_bytes += size
    state.remove(paths.socket)  # left by an rclone that was killed
    offset = rclone.log_offset(paths.log)
    child = runner.start_logged(argv, str(paths.log))
    downloaded = 0
    while child.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(0.25)
        try:
            stats = rclone.copy_stats(paths.socket)
        except OSError:
            continue
        downloaded = stats.files_done
        save(paths, st._replace(files_done=min(already + downloaded, total),
                                bytes_done=min(already_bytes + stats.bytes_done,
                                               st.bytes_total),
                                downloaded=downloaded))
    downloaded = rclone.copied_files(paths.log, offset)
    if child.returncode != 0:
        raise BucketsError(f"rclone sync failed: {rclone.log_error(paths.log, offset) or child.returncode}",
                           "run --stage again to resume")
    _verify(dest, listing.records(new_listing))
    if prefix:
        top = sorted({rel.split("/")[0] for rel in _top_level(bucket, remote)})
        _link_other_entries(paths.work, prefix, str(paths.mount), top)
    _read_only(paths.work)
    number = int(copies[-1].name.split("-")[1]) + 1 if copies else 1
    new_copy = paths.root / f"copy-{number}"
    os.rename(paths.work, new_copy)
    warning = ""
    if os.geteuid() == 0:  # 0444 stops everyone but root: a read-only mount stops root too
        why = mounttable.bind_read_only(str(new_copy))
        if why:  # a container without CAP_SYS_ADMIN, say: the copy is still made, and says so
            warning = (f"root can write into the copy (a read-only bind mount failed: {why}); "
                       "such writes never reach S3")
    os.replace(new_listing, paths.listing)
    switch_all(bucket, paths, new_copy)
    for old in copies:  # files open in an old copy keep reading (unlinked, not gone)
        remove_copy(old)
    save(paths, st._replace(state="ready", files_done=total, bytes_done=st.bytes_total,
                            downloaded=downloaded, warning=warning))


def _top_level(bucket: str, remote: str) -> list[str]:
    binary = rclone.find_rclone()
    result = runner.run([binary, "lsf", "--max-depth", "1", "--config",
                         str(rcconf.config_path(binary)), rclone.source(remote, bucket)], timeout=60)
    return [line.strip().rstrip("/") for line in result.stdout.splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    bucket, remote, prefix, scope = argv
    os.setpgrp()  # removal.stop ends this process and its rclone together
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    paths = layout.stage_paths(bucket)
    try:
        run(bucket, remote, prefix, scope)
        return 0
    except BaseException as exc:  # noqa: BLE001 (any failure must land in the state file)
        st = load(paths) or StageState(state="failed")
        reason = (exc.message if isinstance(exc, BucketsError) else
                  "stopped (unmount-bucket)" if isinstance(exc, SystemExit) else str(exc))
        save(paths, st._replace(state="failed", error=reason or type(exc).__name__, pid=0))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
