"""The rclone commands this tool runs, built here and nowhere else: the reachability probe, the
bucket listing, `rclone mount`, the write test, the staging listing and `rclone sync`.

runner (subprocess) is imported by the functions that run rclone."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from ...errors import (
    BucketNotFound,
    BucketsError,
    CommandTimeout,
    EndpointUnreachable,
    MountFailed,
)
from .. import procs
from ._log import classify, last_error_line, summarize_error
from ._source import source


def _one_try(connect: str = "5s", idle: str = "10s") -> list[str]:
    """Flags for a single bounded attempt (we decide on retries ourselves)."""
    return ["--retries", "1", "--low-level-retries", "1", "--contimeout", connect,
            "--timeout", idle]


# One cheap, bucket-scoped request: list a prefix that does not exist. An existing bucket answers
# with an empty listing; a missing one with NoSuchBucket. No ListAllMyBuckets, so keys scoped to
# one bucket work.
_PROBE_PREFIX = ".visionlab-buckets-probe"
_PROBE_FLAGS = ["--max-depth", "1", *_one_try()]
_PROBE_HINT = "check the network and the S3 endpoint, then try again"


def probe_bucket(binary: str, config: Path, remote: str, bucket: str,
                 attempts: int = 3, sleep: Callable[[float], None] = time.sleep) -> None:
    """Raise BucketNotFound / AccessDenied / EndpointUnreachable unless the bucket answers.

    An unreachable endpoint is retried with backoff (0.5 s, 1 s) before giving up.
    """
    from .. import runner

    base = [binary, "lsjson", "--config", str(config), *_PROBE_FLAGS]
    error: Optional[BucketsError] = None
    result = None
    for attempt in range(attempts):
        try:
            result = runner.run([*base, f"{source(remote, bucket)}/{_PROBE_PREFIX}"], timeout=20,
                                hint=_PROBE_HINT)
        except CommandTimeout as exc:
            error = EndpointUnreachable(
                f"cannot reach the S3 endpoint of remote '{remote}': no answer within 20s",
                exc.hint)
        else:
            if result.ok:
                return
            error = classify(remote, bucket, result.stderr)
        if isinstance(error, BucketNotFound):
            # Some servers call an empty prefix "not found": confirm on the bucket itself.
            confirm = runner.run([*base, "--dirs-only", source(remote, bucket)], timeout=30,
                                 hint=_PROBE_HINT)
            if confirm.ok:
                return
            raise error
        if not isinstance(error, EndpointUnreachable):
            break
        if attempt + 1 < attempts:
            sleep(0.5 * 2**attempt)
    if error is None:
        error = BucketsError(
            f"rclone cannot list {source(remote, bucket)}: "
            f"{last_error_line(result.stderr) if result else 'no answer'}",
            f"try 'rclone lsf {source(remote, bucket)}' to see the full error",
        )
    raise error


def list_buckets(binary: str, config: Path, remote: str, timeout: float) -> Optional[list[str]]:
    """The buckets of `remote` (`rclone lsf --dirs-only`), None when it fails or is slow."""
    from .. import runner

    flags = ["--dirs-only", "--max-depth", "1", *_one_try("1s", "1s")]
    result = runner.run([binary, "lsf", "--config", str(config), *flags, f"{remote}:"],
                        timeout=timeout)
    if not result.ok:
        return None
    return sorted({line.strip().rstrip("/") for line in result.stdout.splitlines() if line.strip()})


class MountSpec(NamedTuple):
    """Everything one `rclone mount` needs: where, from what, and its own files."""

    binary: str
    config: Path
    remote: str
    bucket: str
    mount_point: Path
    log: Path
    cache: Path
    socket: Path
    flags: list[str]


def mount_argv(spec: MountSpec) -> list[str]:
    """`rclone mount` with its own log, cache dir and rc unix socket (no TCP, no auth: the
    socket lives in our 0700 directory)."""
    src = source(spec.remote, spec.bucket)
    return [
        spec.binary, "mount", src, str(spec.mount_point),
        # The mount table's source, which tells which remote a mount came from: without it, any
        # backend flag (--s3-...) makes rclone show "s3_remote{hash}:bucket" there.
        "--devname", src,
        "--config", str(spec.config),
        "--log-file", str(spec.log), "--log-level", "INFO",
        "--cache-dir", str(spec.cache),
        "--rc", "--rc-addr", f"unix://{spec.socket}", "--rc-no-auth",
        *spec.flags,
    ]


def start_mount(spec: MountSpec) -> int:
    """Start `rclone mount` detached (not `--daemon`: its parent also binds the rc socket, which
    made drains flaky) and return its pid. The caller waits for the mount to appear."""
    from .. import runner

    pid = runner.spawn_detached(mount_argv(spec), str(spec.log))
    if pid is None:
        raise MountFailed(f"could not start rclone for {source(spec.remote, spec.bucket)}",
                          f"see {spec.log}")
    return pid


def is_mount_process(pid: int, remote: str, bucket: str, mount_point: str) -> bool:
    """True when `pid` is our user's `rclone mount remote:bucket mount_point` (checked on its
    command line, so a recycled pid is never taken for it)."""
    if not procs.is_alive(pid) or procs.owner_uid(pid) != os.getuid():
        return False
    # Checked on the command line on macOS too (`ps`): after a reboot a pid may be recycled.
    command = f" {procs.command_line(pid)} "
    return f" mount {source(remote, bucket)} {mount_point} " in command


def write_test(binary: str, config: Path, remote: str, bucket: str, key: str) -> Optional[str]:
    """Put one small object at `key` and delete it; None when both worked, else rclone's error."""
    from .. import runner

    target = f"{source(remote, bucket)}/{key}"
    flags = ["--config", str(config), *_one_try()]
    try:
        put = runner.run([binary, "rcat", *flags, target], timeout=30,
                         input="visionlab-buckets --doctor --write: safe to delete\n")
    except CommandTimeout:
        return "no answer within 30s"
    if not put.ok:
        return summarize_error(put.stderr)
    deleted = runner.run([binary, "deletefile", *flags, target], timeout=30)
    if not deleted.ok:
        return "wrote, but could not delete it: " + summarize_error(deleted.stderr)
    return None


class ObjectInfo(NamedTuple):
    path: str  # relative to the listed prefix
    size: int
    modified: str  # the server's last-modified time: changes whenever the object is rewritten


# What a listing may cost: rclone's own modtime (object metadata) and MIME type, or a hash that
# is not the ETag, each cost one HEAD per object, one at a time: 43 s instead of 0.14 s for
# 2,000 objects 20 ms away (bench/stage_results.md). The server's last-modified time is in the
# listing itself.
# No --fast-list: it is one sequential stream of 1,000-key pages held whole in rclone's memory
# (~1 KB per object). Walked folder by folder instead, 64 folders at once, a folder's objects
# are let go once it is done: at 200,000 objects in 1,000 folders, `rclone sync` peaked at
# 112 MB instead of 221 MB at the same speed (86 s), and `lsjson` took 7.1 s instead of 13.7 s
# (bench/results.md, "Staging at ImageNet's shape"). Its order is then not S3's key order:
# staging.listing sorts it on disk.
_CHEAP_LISTING = ["--checkers", "64", "--use-server-modtime"]


def list_objects(binary: str, config: Path, remote: str, bucket: str, prefix: str = "",
                 timeout: float = 3600) -> Iterator[ObjectInfo]:
    """Every object under `bucket/prefix` with its size and last-modified time, as rclone lists
    them (folders walked in parallel, so in no set order): one listing, no request per object,
    read line by line (`lsjson` writes one object per line), never held whole. Raises when the
    listing fails, after the last object."""
    from .. import runner

    target = f"{source(remote, bucket)}/{prefix}".rstrip("/")
    with runner.Stream([binary, "lsjson", "-R", "--files-only", "--no-mimetype", *_CHEAP_LISTING,
                        "--config", str(config), target], timeout=timeout,
                       hint="a very large bucket lists slowly; stage one prefix of it") as listing:
        for line in listing:
            line = line.strip().rstrip(",")
            if line in ("[", "]", ""):
                continue
            try:
                item = json.loads(line)
                yield ObjectInfo(str(item["Path"]), int(item.get("Size", 0)),
                                 str(item.get("ModTime", "")))
            except (ValueError, KeyError, TypeError) as exc:
                raise BucketsError(f"rclone listed {target} in a form not understood: {exc}",
                                   "check the rclone version (install.sh installs a current one)"
                                   ) from exc
        result = listing.finish()
    if not result.ok:
        error = classify(remote, bucket, result.stderr)
        raise error or BucketsError(f"rclone cannot list {target}: "
                                    f"{last_error_line(result.stderr)}",
                                    f"try 'rclone lsf -R {target}'")


def sync_argv(binary: str, config: Path, remote: str, bucket: str, prefix: str, dest: Path,
              log: Path, socket_path: Path) -> list[str]:
    """`rclone sync` of bucket/prefix into a local dir, tuned for many small objects on a
    far-away S3 (bench/stage_results.md: 64 transfers 1.55x faster than 32 at 20 ms, never
    slower on loopback): folders listed 64 at once, downloads starting while the walk goes on,
    memory flat in the object count; the server's modification times (no HEAD per object), and
    downloads to a temp name renamed into place (so a file hard-linked from an older copy is
    replaced, never changed in place)."""
    target = f"{source(remote, bucket)}/{prefix}".rstrip("/")
    return [binary, "sync", target, str(dest), "--config", str(config),
            "--transfers", "64", *_CHEAP_LISTING,
            "--log-file", str(log), "--log-level", "INFO",
            "--rc", "--rc-addr", f"unix://{socket_path}", "--rc-no-auth"]
