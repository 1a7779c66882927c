"""The `remote:bucket` source: what rclone mounts, and what the mount table shows as its source."""

from __future__ import annotations


def source(remote: str, bucket: str) -> str:
    """What rclone mounts, and what the mount table shows as the mount's source."""
    return f"{remote}:{bucket}"


def remote_of(mount_source: str) -> str:
    """The remote of a mount-table source `remote:bucket` (the source itself if it has no ':')."""
    return mount_source.rsplit(":", 1)[0]
