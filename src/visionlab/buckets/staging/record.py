"""A bucket's stage directory as records: its state file (stage.json, written by the stager about
twice a second, read by --status and the waiters) and its finished copies.

    <stage root>/<bucket>/         $VISIONLAB_BUCKETS_STAGE_DIR, else <runtime>/stage
      current -> copy-<n>          the verified copy the links point at (swapped atomically)
      copy-<n>/                    read-only: files 0444, directories 0555
      work/                        the copy being made; kept when interrupted (resumed)
      stage.json  listing.json  copy.log  copy.sock  stage.lock

listing.json (and listing.new, the one of the copy in progress) is NDJSON, see staging.listing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import NamedTuple, Optional

from ..records import layout
from ..system import procs

# The stager's `python -m` entry, and the one of the layout before the folders (a flat
# `visionlab.buckets.stager`): a copy in progress at upgrade time is still known for a stager
# (unmount stops it; when it ends, a waiter resumes its work dir with the new entry).
STAGER = "visionlab.buckets.staging.stager"
STAGERS = frozenset({STAGER, "visionlab.buckets.stager"})


class StageState(NamedTuple):
    state: str  # "copying", "ready" or "failed"
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    path: str = ""  # the local copy (the `current` symlink the links point at)
    error: Optional[str] = None
    prefix: str = ""
    pid: int = 0  # the stager process
    downloaded: int = 0  # objects fetched by the last run (0: the copy was up to date)
    scope: str = ""  # the scope of the mount it was staged for (its unmount stops the copy)
    started_at: float = 0.0
    updated_at: float = 0.0
    remote: str = ""
    died: bool = False  # (not saved) "failed" because the stager was killed: a waiter resumes it
    warning: str = ""  # e.g. root could not make the copy read-only (no bind mounts here)

    def to_dict(self) -> dict:
        keys = ("state", "files_done", "files_total", "bytes_done", "bytes_total", "path", "error")
        return {k: getattr(self, k) for k in keys}

    def describe(self, bucket: str) -> str:
        """One line for --status / --list."""
        size = f"{self.bytes_done / 1e6:,.0f}/{self.bytes_total / 1e6:,.0f} MB"
        if self.state == "copying":
            return f"staging: {self.files_done}/{self.files_total} files, {size} -> {self.path}"
        if self.state == "ready":
            note = f" — warning: {self.warning}" if self.warning else ""
            return (f"staged: {self.files_total} files, {self.bytes_total / 1e6:,.0f} MB local at "
                    f"{self.path}{note}")
        return f"staging failed: {self.error} — 'mount-bucket {bucket} --stage' resumes it"


def load(paths: layout.StagePaths) -> Optional[StageState]:
    try:
        with open(paths.state, encoding="utf-8") as f:
            data = json.load(f)
        found = StageState(**data)
    except (OSError, ValueError, TypeError):
        return None
    if found.state == "copying" and found.pid and not procs.is_alive(found.pid):
        return found._replace(state="failed", died=True,
                              error=f"the copy process (pid {found.pid}) ended before finishing "
                              "(killed, or its SLURM job ended)")
    return found


def save(paths: layout.StagePaths, st: StageState) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=paths.root, prefix=".stage.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(st._replace(updated_at=time.time(), died=False)._asdict(), f)
    os.replace(tmp, paths.state)


def copies(paths: layout.StagePaths) -> list[Path]:
    """The finished copies of a bucket, oldest first."""
    return sorted(paths.root.glob("copy-*"), key=lambda p: int(p.name.split("-")[1]))


def scopes() -> list[str]:
    return ["", *layout.job_scopes()]
