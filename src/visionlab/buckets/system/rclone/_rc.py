"""rclone's remote-control (rc) API over the unix socket of a mount or a copy: is it answering,
its upload queue, its upload rate, a copy's progress. The only place that names an rc method."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple, Optional


class QueueItem(NamedTuple):
    """One file waiting in rclone's VFS upload queue (rc `vfs/queue`)."""

    id: int
    name: str
    size: int
    tries: int  # upload attempts started, the one under way included
    uploading: bool
    expiry: float = 0.0  # seconds until rclone starts its upload (<= 0: due now)

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
                                   bool(raw.get("uploading", False)),
                                   float(raw.get("expiry", 0.0))))
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
    """Ask rclone to upload every queued file now instead of after its write-back delay (or
    its retry's back-off). One request per file not yet due: a file already due is left alone,
    so a queue of 20,000 small files costs one request each once, not once per call."""
    try:
        queue = upload_queue(socket_path)
    except OSError:
        return
    for item in queue:
        if item.uploading or item.expiry <= 0:
            continue
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


class CopyStats(NamedTuple):
    bytes_done: int
    files_done: int


def copy_stats(socket_path: Path) -> CopyStats:
    """Progress of a running `rclone sync` (rc `core/stats`)."""
    stats = _rc(socket_path, "core/stats", timeout=2)
    return CopyStats(int(stats.get("bytes", 0)), int(stats.get("transfers", 0)))
