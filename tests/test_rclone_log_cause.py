"""The failure line rclone's log gives is its innermost cause: real logs of `rclone mount` (a normal
user who cannot open /dev/fuse) and `rclone sync` (a wrong secret key), from rclone 1.60 and 1.75;
how they were captured: tests/fixtures/rclone_stderr/README.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionlab.buckets.system import rclone

SAMPLES = Path(__file__).parent / "fixtures" / "rclone_stderr"

# (version, sample, the line shown, what must not be shown: the wrapper)
CASES = [
    ("1.75", "mount_fuse_denied", "fusermount3: failed to open /dev/fuse: Permission denied",
     "exit status 1"),
    ("1.60", "mount_fuse_denied", "fusermount: failed to open /dev/fuse: Permission denied",
     "exit status 1"),
    ("1.75", "sync_signature_mismatch",
     "HTTP 403: SignatureDoesNotMatch: The request signature we calculated does not match the "
     "signature you provided. Check your key and signing method.", "operation error"),
    ("1.60", "sync_signature_mismatch",
     "Failed to sync: SignatureDoesNotMatch: The request signature we calculated does not match "
     "the signature you provided. Check your key and signing method.", "status code"),
]


@pytest.mark.parametrize(("version", "sample", "shown", "wrapper"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_log_error_is_the_innermost_cause(tmp_path, version, sample, shown, wrapper):
    text = (SAMPLES / version / f"{sample}.txt").read_text()
    log = tmp_path / "mount.log"
    log.write_text("2026/12/02 03:00:00 INFO  : an earlier run\n" + text)
    since = len("2026/12/02 03:00:00 INFO  : an earlier run\n")
    assert rclone.log_error(log, since) == shown
    assert wrapper not in rclone.log_error(log, since)


def test_the_wrapper_alone_is_still_shown():
    """No helper line and no S3 error: the last error line stays (better than nothing)."""
    line = "CRITICAL: Fatal error: failed to mount FUSE fs: fusermount: exit status 1"
    assert rclone.failure_cause(f"2026/12/02 03:52:28 {line}\n") == line


def test_an_unwrapped_last_error_is_kept_over_an_earlier_helper_line():
    """The helper's line explains only the wrapper that follows it, not a later, other error."""
    text = (SAMPLES / "1.75" / "mount_fuse_denied.txt").read_text()
    text += "2026/12/02 04:00:00 ERROR : images/1.txt: vfs cache: no space left on device\n"
    assert rclone.failure_cause(text) == "ERROR : images/1.txt: vfs cache: no space left on device"


def test_only_the_lines_after_the_offset_count(tmp_path):
    """An earlier run's helper line does not explain this run's failure."""
    old = (SAMPLES / "1.75" / "mount_fuse_denied.txt").read_text()
    line = "CRITICAL: Fatal error: failed to mount FUSE fs: fusermount: exit status 1"
    log = tmp_path / "mount.log"
    log.write_text(old + f"2026/12/02 04:00:00 {line}\n")
    assert rclone.log_error(log, len(old)) == line
