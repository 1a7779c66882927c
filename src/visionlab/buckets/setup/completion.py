"""Values for shell completion (Click `shell_complete=` callbacks). Never blocks a TAB for long.

Every function returns a (possibly empty) list and never raises: a TAB must not print a traceback.
Only `remote_buckets` may touch the network, at most once per CACHE_TTL per remote, for at most
LIST_TIMEOUT seconds; its answer is cached in <runtime>/buckets/completion/<remote>.json (a
subdirectory: buckets/*.json are the state files of mounts).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Optional

CACHE_TTL = 300.0  # a successful listing is reused this long
RETRY_AFTER = 30.0  # after a failed listing, TABs use what they have for this long
LIST_TIMEOUT = 1.5  # hard limit on one `rclone lsf` (the TAB waits for it)
_SAFE_REMOTE = re.compile(r"[A-Za-z0-9_.+@-]+")


def mounted_buckets(incomplete: str) -> list[str]:
    """Buckets with a mount or state of this user (mount table + state files, no network)."""
    try:
        from ..mounts.mountinfo import known_buckets

        return [b for b in known_buckets() if b.startswith(incomplete)]
    except Exception:
        return []


def remotes(incomplete: str) -> list[str]:
    try:
        from ..system.rcconf import read_remotes

        return sorted(r for r in (read_remotes() or {}) if r.startswith(incomplete))
    except Exception:
        return []


def remote_buckets(remote: str, incomplete: str) -> list[str]:
    """Buckets of `remote` (cached listing, refreshed when old) plus the mounted ones."""
    try:
        listed = _listing(remote)
    except Exception:
        listed = []
    found = set(listed) | set(mounted_buckets(""))
    return sorted(b for b in found if b.startswith(incomplete))


# ---------------------------------------------------------------------------- the cache


def cache_path(remote: str) -> Optional[Path]:
    """Where the listing of `remote` is cached; None for a name unfit for a file name."""
    from ..records import layout

    if not _SAFE_REMOTE.fullmatch(remote) or remote.startswith("."):
        return None
    return layout.completion_cache(remote)


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict) -> None:
    """Atomically, and only inside a private directory that layout accepts."""
    from ..errors import UnsafePath
    from ..records import layout

    try:
        for directory in (layout.runtime_dir(), path.parent.parent, path.parent):
            layout.ensure_private_dir(directory)
    except (UnsafePath, OSError):
        return
    fd, tmp = tempfile.mkstemp(prefix=".completion-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _listing(remote: str, now: Optional[float] = None) -> list[str]:
    """The cached bucket list of `remote`, refreshed with one bounded `rclone lsf` when stale."""
    from ..system.rcconf import read_remotes

    path = cache_path(remote)
    known = read_remotes()
    if path is None or (known is not None and remote not in known):
        return []  # no such remote: nothing to list, and no cache file named after a typo
    now = time.time() if now is None else now
    cache = _read_cache(path)
    buckets = [b for b in cache.get("buckets", []) if isinstance(b, str)]
    listed_at = float(cache.get("listed_at", 0) or 0)
    tried_at = float(cache.get("tried_at", 0) or 0)
    if 0 <= now - listed_at < CACHE_TTL or 0 <= now - tried_at < RETRY_AFTER:
        return buckets
    fresh = _list_remote(remote)
    if fresh is None:  # failed or timed out: keep the stale list, retry later
        _write_cache(path, {"remote": remote, "buckets": buckets, "listed_at": listed_at,
                            "tried_at": now})
        return buckets
    _write_cache(path, {"remote": remote, "buckets": fresh, "listed_at": now, "tried_at": now})
    return fresh


def _list_remote(remote: str) -> Optional[list[str]]:
    """The remote's buckets within LIST_TIMEOUT; None on any failure."""
    from ..errors import BucketsError
    from ..system import rclone
    from ..system.rcconf import config_path

    try:
        binary = rclone.find_rclone()
        return rclone.list_buckets(binary, config_path(binary), remote, LIST_TIMEOUT)
    except (BucketsError, OSError):
        return None
