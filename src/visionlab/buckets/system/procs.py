"""Processes: is a pid alive (a zombie is not), what is it, and who holds a path open."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Optional


def is_alive(pid: int) -> bool:
    """True when `pid` runs and is not a zombie (a killed rclone lingers as state Z)."""
    if pid <= 0:
        return False
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            return False
        # Field 3, after the ")" that closes the command name (which may contain spaces).
        state = stat[stat.rfind(")") + 2 :].split(" ", 1)[0]
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `pid` to end; True when it has."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if `pid` is still there after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_exit(pid, grace):
            return


def cmdline(pid: int) -> list[str]:
    """The argv of `pid` on Linux ([] when unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _ps(pid: int, field: str) -> str:
    from . import runner

    try:
        return runner.run(["/bin/ps", "-o", f"{field}=", "-p", str(pid)], timeout=5).stdout.strip()
    except Exception:
        return ""


def command_line(pid: int) -> str:
    """The command line of `pid` as one string ('' when unknown): /proc, else `ps`."""
    if sys.platform.startswith("linux"):
        return " ".join(cmdline(pid))
    return _ps(pid, "command")


def owner_uid(pid: int) -> Optional[int]:
    """The uid `pid` runs as, or None when unknown."""
    if sys.platform.startswith("linux"):
        try:
            return os.stat(f"/proc/{pid}").st_uid
        except OSError:
            return None
    text = _ps(pid, "uid")
    return int(text) if text.isdigit() else None


def holders(path: str, limit: int = 5) -> list[tuple[int, str]]:
    """Processes whose cwd or an open file is below `path` (Linux /proc scan; ours only)."""
    if not sys.platform.startswith("linux"):
        return []
    prefix = path.rstrip("/") + "/"
    found: list[tuple[int, str]] = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if _holds(pid, path, prefix):
            found.append((pid, " ".join(cmdline(pid))[:80] or "?"))
            if len(found) >= limit:
                break
    return found


def _inside(link: str, path: str, prefix: str) -> bool:
    try:
        target = os.readlink(link)
    except OSError:
        return False
    return target == path or target.startswith(prefix)


def _holds(pid: int, path: str, prefix: str) -> bool:
    if _inside(f"/proc/{pid}/cwd", path, prefix) or _inside(f"/proc/{pid}/root", path, prefix):
        return True
    return bool(has_open_file_under(pid, path))


def has_open_file_under(pid: int, path: str) -> Optional[bool]:
    """Does `pid` hold a file below `path` open? None when that cannot be seen here (no /proc,
    as on macOS, or not our process)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    prefix = path.rstrip("/") + "/"
    return any(_inside(f"/proc/{pid}/fd/{fd}", path, prefix) for fd in fds)


def describe(holder: Optional[tuple[int, str]]) -> str:
    return f"pid {holder[0]} ({holder[1]})" if holder else "a process"
