"""Mount profiles: named sets of rclone flags, chosen by measurement (see bench/results.md)."""

from __future__ import annotations

from typing import NamedTuple

from ..errors import BucketsError


class Profile(NamedTuple):
    name: str
    summary: str
    flags: list[str]
    read_only: bool = False
    min_rclone: tuple[int, ...] = ()  # beyond rclone.MIN_VERSION, for the flags above
    linux_flags: tuple[str, ...] = ()  # added to `flags` on Linux only

    def flags_for(self, linux: bool) -> list[str]:
        return [*self.flags, *(self.linux_flags if linux else ())]


# Flags every read-only profile shares. --no-modtime: S3 keeps the modtime in object metadata, so
# without it every stat and open costs a HEAD (listing with sizes 6-8x slower, cold small reads
# 15-30% slower).
# Long dir/attr caches: a dataset does not change under a running job.
# No backend options (--s3-*) here: with them, as flags or as RCLONE_S3_* in rclone's environment
# alike, rclone names the remote "s3_remote{hash}": --devname keeps the mount table's source, but
# the VFS cache moves to vfs/s3_remote{hash}/, where a mount with other options never uploads
# what an earlier one stranded. And the measured gain of --s3-no-head-object was within noise.
_READ_ONLY = ["--read-only", "--no-modtime", "--dir-cache-time", "1h", "--attr-timeout", "1h"]
# VFS cache on node-local disk (the runtime dir), capped so a big dataset cannot fill the disk.
# (--vfs-cache-min-free-space would be better still, but needs rclone >= 1.62.)
_CACHE_CAPS = ["--vfs-cache-max-age", "24h", "--vfs-cache-max-size", "50G"]
# The write path's cache holds a written file until it is on S3, then drops it: rclone removes a
# file neither open nor waiting for upload once it was not touched for 1 s, checked every 5 s
# (bench/results.md, "The write path"). Kept for 24 h, as before, every checkpoint stayed on the
# local disk after its upload, the cache grew by its size each round and its pages were written
# to the disk though S3 already had them; dropped, they never reach the disk. A file opened for
# writing again is fetched back from S3 first.
_WRITE_CACHE = ["--vfs-cache-max-age", "1s", "--vfs-cache-poll-interval", "5s",
                "--vfs-cache-max-size", "50G"]

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "default",
            "read-write; writes cached on local disk and uploaded after 5 s "
            "(unmount-bucket waits for every upload)",
            # --use-server-modtime: modtimes from the listing (the upload time), not one HEAD
            # per file: listing with sizes 6-8x faster, cold small reads +15-30%.
            # Large files (bench/results.md, checkpoints): cp + --sync 1.3-1.9x a plain
            # `rclone copyto` on 2 cores (1 GiB, 10 in a row, medians 1.4-1.7x; 8 GiB
            # 1.33-1.46x): rclone uploads a file only once it is closed. Bigger parts or more
            # at once (chunk 16M, concurrency 16) were slower here.
            # No --write-back-cache (the kernel's): it hands rclone large writes, but with it a
            # `cp` or a truncate into the mount also sets the file's time, and with
            # --use-server-modtime rclone stores that time by copying the uploaded object onto
            # itself on S3: a second, server-side copy of each checkpoint (above 4.6 GiB one in
            # parts, which took the mount down against our test server). A time the user sets
            # (touch, cp -p) still costs that copy. bench/results.md, "Checkpoints of 8 GiB".
            # --low-level-retries 3: a failing upload then fails its try in ~1 s instead of
            # ~40 s (rclone's VFS retries each upload forever on its own, with backoff), so
            # --status and --sync can tell a refusing server within seconds.
            # --transfers 64: files uploaded at once (rclone's default 4). Each small file's
            # upload is a few round trips, so 4 at once bound a results folder to ~85 files/s
            # at 20 ms from S3: 10,000 x 4 KiB written + --sync 123 s, against 20 s with 64, 22 s
            # with 32 and 9 s for `rclone copy --transfers 64` (bench/results.md, "Small files through a
            # 20 ms proxy"). A file over the part size uploads in parts, 4 at once, as before.
            ["--vfs-cache-mode", "writes", "--vfs-write-back", "5s", "--use-server-modtime",
             "--dir-cache-time", "1m", "--low-level-retries", "3", "--transfers", "64",
             *_WRITE_CACHE],
            # --no-unicode-normalization: creating a new name otherwise compares it, NFC-
            # normalized, with every name of its folder (20% of the mount's CPU for 10,000
            # small files in one folder; 10k x 4 KiB written + --sync 33 s instead of 53 s on
            # a bare mount, bench/results.md, "The write path"). Linux compares names byte for
            # byte anyway; macOS (NFD names) keeps rclone's default.
            linux_flags=("--no-unicode-normalization",),
        ),
        Profile(
            "dataset",
            "read-only, for training data read many times: whole-file cache on local disk "
            "(second epoch 2x plain rclone on loopback, 8x at 20 ms from S3; first pass ~40% "
            "slower on loopback, as fast at 20 ms), long metadata caching",
            # --buffer-size 1M: per open file (default 16M); more only costs memory here, and
            # --buffer-size 0 halves large sequential reads in full cache mode.
            [*_READ_ONLY, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
             "--buffer-size", "1M", *_CACHE_CAPS],
            read_only=True,
        ),
        Profile(
            "stream",
            "read-only, no disk cache: data read once, or larger than the local disk; "
            "parallel ranged reads",
            [*_READ_ONLY, "--vfs-read-chunk-streams", "4", "--vfs-read-chunk-size", "8M"],
            read_only=True,
            min_rclone=(1, 68),  # --vfs-read-chunk-streams
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
