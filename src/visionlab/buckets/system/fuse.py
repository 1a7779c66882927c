"""FUSE on this OS: is it usable, and unmounting (fusermount3/fusermount on Linux, umount on macOS)."""

from __future__ import annotations

import os
import shutil
import sys

from ..errors import FuseUnavailable
from . import runner

UNMOUNT_TIMEOUT = 30.0
_FUSE_T = "/Library/Frameworks/fuse_t.framework"
_MACFUSE = "/Library/Filesystems/macfuse.fs"
# What FUSE-T runs to serve a mount (it uses a local NFS server instead of a /dev/fuse device).
_FUSE_T_SERVER = "/Library/Application Support/fuse-t/bin/go-nfsv4"
_ACCESS_HINT = ("ask your admins for access to /dev/fuse (often: membership of the 'fuse' group, "
                "then log in again); on a cluster, run on a compute node (srun --pty bash), "
                "not a login node")


def check() -> str:
    """What provides FUSE here (for messages); raise FuseUnavailable when this user cannot use
    it: the device missing, not openable read-write by this user, or no fusermount3."""
    if sys.platform == "darwin":
        return _check_macos()
    device = os.environ.get("VISIONLAB_BUCKETS_DEV_FUSE") or "/dev/fuse"  # tests: a stand-in
    if not os.path.exists(device):
        raise FuseUnavailable(
            f"{device} is missing", "FUSE is not available here; ask your admins to enable it "
            "(a container needs --device /dev/fuse --cap-add SYS_ADMIN)"
        )
    _check_open(device)
    helper = fusermount()
    if not helper:
        raise FuseUnavailable(
            "fusermount3 not found", "install FUSE: 'sudo apt-get install -y fuse3'"
        )
    return f"{device} and {helper}"


def _check_open(device: str) -> None:
    """rclone (through fusermount3) opens the device read-write as this user: so do we."""
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        raise FuseUnavailable(f"cannot open {device} read-write as {_user()}: "
                              f"{exc.strerror or exc} ({_describe(device)})",
                              _hint(device, exc)) from None


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def _describe(device: str) -> str:
    """'crw------- root:root' (mode, owner, group), as `ls -l` shows it."""
    import grp
    import pwd
    import stat

    try:
        st = os.stat(device)
    except OSError:
        return "cannot stat it"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{stat.filemode(st.st_mode)} {owner}:{group}"


def _hint(device: str, exc: OSError) -> str:
    import errno
    import grp

    if exc.errno in (errno.ENODEV, errno.ENXIO):
        return ("the FUSE kernel module is not loaded here: ask your admins "
                "('modprobe fuse'; a container needs --device /dev/fuse --cap-add SYS_ADMIN)")
    try:
        st = os.stat(device)
        group = grp.getgrgid(st.st_gid).gr_name
    except (OSError, KeyError):
        return _ACCESS_HINT
    if st.st_gid != 0 and st.st_mode & 0o060 == 0o060 and st.st_gid not in os.getgroups():
        return (f"ask your admins to add you to the group '{group}' that may open {device} "
                "(then log in again); on a cluster, run on a compute node (srun --pty bash), "
                "not a login node")
    return _ACCESS_HINT


def _check_macos() -> str:
    """FUSE-T (no kernel extension: a local NFS server) or macFUSE, usable by this user."""
    if os.path.isdir(_FUSE_T):
        if not os.access(_FUSE_T, os.R_OK | os.X_OK):
            raise FuseUnavailable(f"cannot read {_FUSE_T} as {_user()}",
                                  "reinstall FUSE-T: 'brew reinstall --cask fuse-t'")
        if os.path.exists(_FUSE_T_SERVER) and not os.access(_FUSE_T_SERVER, os.X_OK):
            raise FuseUnavailable(f"cannot run FUSE-T's {_FUSE_T_SERVER} as {_user()}",
                                  "reinstall FUSE-T: 'brew reinstall --cask fuse-t'")
        return "FUSE-T"
    if os.path.isdir(_MACFUSE):
        return "macFUSE"
    raise FuseUnavailable("no FUSE on this Mac", "install FUSE-T: 'brew install --cask fuse-t'")


def status() -> str:
    """One line for install.sh and the demo script: 'ok <what>' or 'fail <why> — <fix>'."""
    try:
        return f"ok {check()}"
    except FuseUnavailable as exc:
        return f"fail {exc}"


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


if __name__ == "__main__":  # `python3 -m visionlab.buckets.system.fuse`: before anything is installed
    line = status()
    print(line)
    sys.exit(0 if line.startswith("ok ") else 1)
