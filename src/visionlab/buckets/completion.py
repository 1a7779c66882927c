"""Values for shell completion (Click `shell_complete=` callbacks). Never blocks a TAB for long."""

from __future__ import annotations


def mounted_buckets(incomplete: str) -> list[str]:
    """Buckets with a mount or state of this user (mount table + state files, no network)."""
    try:
        from .mounts import _known_buckets

        return [b for b in _known_buckets() if b.startswith(incomplete)]
    except Exception:
        return []


def remotes(incomplete: str) -> list[str]:
    try:
        from .rclone import read_remotes

        return sorted(r for r in (read_remotes() or {}) if r.startswith(incomplete))
    except Exception:
        return []


def remote_buckets(remote: str, incomplete: str) -> list[str]:
    """Buckets of `remote`; the mounted ones until a cached listing exists."""
    return mounted_buckets(incomplete)
