"""Processes running under a mount (`mount-bucket B -- CMD`, a program using the Python API):
one file each, so the last one to end a SLURM job's mount unmounts it, and no other sooner.

Outside SLURM a mount is this user's shared mount: nobody unmounts it on their way out.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable

from . import layout, mounts, procs
from .errors import BucketsError
from .lock import bucket_lock


class Hold:
    def __init__(self, result: mounts.MountResult) -> None:
        self.result = result
        self.runtime = layout.runtime_dir()  # the environment it was made in
        self.paths = layout.paths_for(result.bucket, layout.scope_of(result.mount_point))
        self.file = self.paths.holds / str(os.getpid())
        with bucket_lock(self.paths.lock):
            layout.ensure_private_dir(self.paths.holds)
            self.file.touch(mode=0o600)

    def _others(self) -> bool:
        try:
            entries = list(self.paths.holds.iterdir())
        except FileNotFoundError:  # the mount was taken down meanwhile
            return False
        for entry in entries:
            if entry == self.file:
                continue
            if entry.name.isdigit() and procs.is_alive(int(entry.name)):
                return True
            with contextlib.suppress(OSError):
                entry.unlink()  # a holder that died
        return False

    def release(self, timeout: float, report: Callable[[str], None],
                progress: Callable[[str], mounts.Progress] | None = None) -> bool:
        """Sync what was written, drop this hold, and unmount a SLURM job's mount this process
        made when no other process holds it. False when something failed (reported)."""
        ok = True
        try:
            mounts.sync(self.result.bucket, timeout, progress)
        except BucketsError as exc:
            report(f"error: {exc}")
            ok = False
        with bucket_lock(self.paths.lock):
            with contextlib.suppress(FileNotFoundError):
                self.file.unlink()
            last = not self._others()
        if ok and last and self.result.newly_mounted and self.paths.scope:
            try:
                mounts.unmount(self.result.bucket, timeout, scope=self.paths.scope)
            except BucketsError as exc:
                report(f"error: {exc}")
                ok = False
        return ok
