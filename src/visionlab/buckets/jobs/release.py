"""A process's hold on a mount, released at its end (the `-- CMD` wrapper, a program using the
Python API through exitdrain): sync what it wrote, drop its hold file (mounts/holds.py), and unmount
a SLURM job's mount it made when no other process holds it. This sits above mounts/ (it calls
unmount.sync and unmount.unmount); the mount flow only takes holds (holds.take), so nothing imports
back in a circle.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Optional

from ..errors import BucketsError
from ..mounts import unmount
from ..records import layout
from ..records.lock import bucket_lock


class Hold:
    """This process's hold on the mount of `result` (a mount.MountResult)."""

    def __init__(self, result) -> None:
        self.result = result
        self.runtime = layout.runtime_dir()  # the environment it was made in
        self.paths = layout.paths_for(result.bucket, layout.scope_of(result.mount_point))
        self.file = self.paths.holds / str(os.getpid())

    def release(self, timeout: float, report: Callable[[str], None],
                progress: Optional[Callable] = None) -> bool:
        """Sync what was written, drop this hold, and unmount a SLURM job's mount this process
        made when no other process holds it. False when something failed (reported)."""
        try:
            unmount.sync(self.result.bucket, timeout, progress, scope=self.paths.scope)
        except BucketsError as exc:
            report(f"error: {exc}")
            return False
        if self.result.newly_mounted and self.paths.scope:
            try:
                done = unmount.unmount(self.result.bucket, timeout, scope=self.paths.scope,
                                      release_hold=self.file)
            except BucketsError as exc:
                report(f"error: {exc}")
                return False
            if done and done.stranded:  # closed after the sync, or the mount died meanwhile
                report(f"error: {unmount.left_unsaved(done)}")
                return False
            return True
        with bucket_lock(self.paths.lock), contextlib.suppress(FileNotFoundError):
            self.file.unlink()
        return True
