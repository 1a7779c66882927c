"""Mount profiles: named sets of rclone flags, chosen by measurement (see bench/results.md)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BucketsError


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    flags: list[str]
    read_only: bool = False


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "default",
            "read-write; writes cached on local disk and uploaded after 5 s "
            "(unmount-bucket waits for every upload)",
            ["--vfs-cache-mode", "writes", "--vfs-write-back", "5s",
             "--dir-cache-time", "1m", "--vfs-cache-max-age", "24h"],
        ),
        Profile(
            "dataset",
            "read-only, for training data read many times: whole-file cache on local disk, "
            "long metadata caching",
            ["--read-only", "--vfs-cache-mode", "full", "--no-modtime",
             "--dir-cache-time", "1h", "--attr-timeout", "1h",
             "--vfs-cache-max-age", "24h", "--vfs-cache-max-size", "50G",
             "--vfs-read-chunk-size", "32M", "--buffer-size", "16M"],
            read_only=True,
        ),
    )
}
DEFAULT_PROFILE = "default"


def get(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise BucketsError(
            f"unknown profile '{name}'", f"choose one of: {', '.join(sorted(PROFILES))}"
        ) from None
