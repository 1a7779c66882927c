"""FUSE on this OS: is it usable, and unmounting (fusermount3/fusermount on Linux, umount on macOS)."""

from __future__ import annotations

import os
import shutil
import sys

from . import runner
from .errors import FuseUnavailable

UNMOUNT_TIMEOUT = 30.0
_MACOS_FRAMEWORKS = ("/Library/Frameworks/fuse_t.framework", "/Library/Filesystems/macfuse.fs")


def check() -> str:
    """What provides FUSE here (for messages); raise FuseUnavailable when it is not usable."""
    if sys.platform == "darwin":
        if not any(os.path.exists(p) for p in _MACOS_FRAMEWORKS):
            raise FuseUnavailable(
                "no FUSE on this Mac", "install FUSE-T: 'brew install --cask fuse-t'"
            )
        return "FUSE-T/macFUSE present"
    if not os.path.exists("/dev/fuse"):
        raise FuseUnavailable(
            "/dev/fuse is missing", "FUSE is not available here; ask your admins to enable it"
        )
    helper = fusermount()
    if not helper:
        raise FuseUnavailable(
            "fusermount3 not found", "install FUSE: 'sudo apt-get install -y fuse3'"
        )
    return f"/dev/fuse and {helper}"


def fusermount() -> str:
    """The setuid helper that unmounts FUSE filesystems for a normal user ('' when missing)."""
    return shutil.which("fusermount3") or shutil.which("fusermount") or ""


def unmount(mount_point: str, lazy: bool) -> runner.Result:
    """Unmount a FUSE filesystem; `lazy` detaches it even while it is busy."""
    if sys.platform == "darwin":
        argv = ["/sbin/umount", "-f", mount_point] if lazy else ["/sbin/umount", mount_point]
    else:
        argv = [fusermount() or "fusermount3", "-uz" if lazy else "-u", mount_point]
    return runner.run(argv, timeout=UNMOUNT_TIMEOUT,
                      hint=f"the mount at {mount_point} does not let go; try 'unmount-bucket --force'")


def is_busy_error(result: runner.Result) -> bool:
    return "busy" in result.stderr.lower()
