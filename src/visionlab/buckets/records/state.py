"""The per-bucket state file: what we mounted, with which rclone, and where its symlinks are."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Optional


class MountState(NamedTuple):
    bucket: str
    remote: str
    mount_point: str
    pid: int
    socket: str
    cache_dir: str
    log_file: str
    profile: str = "default"
    started_at: float = 0.0
    symlinks: Sequence[str] = ()  # a list once loaded from JSON; replaced, never mutated
    log_start: int = 0  # where this rclone's lines begin in the (appended) log
    staged: str = ""  # when the links were moved to a staged local copy: its `current` path


def load(path: Path) -> Optional[MountState]:
    """The state in `path`, or None when there is none or it is unreadable/corrupt."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="utf-8") as f:
            data = json.load(f)
        return MountState(**data)
    except (OSError, ValueError, TypeError):
        return None


def save(path: Path, state: MountState) -> None:
    """Write atomically (temp file + os.replace), mode 0600: readers never see half a file."""
    import tempfile  # lazy: only writers need it

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state._asdict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def remove(path: Path) -> None:
    _unlink_quietly(str(path))


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
