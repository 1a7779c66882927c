"""Reading what rclone writes: its stderr and log (what its errors mean, the innermost cause,
upload failures, the files a copy fetched) and its VFS cache's records (files never uploaded).

The patterns are compiled on first use (re caches them); logs are read from their tail."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

from ...errors import (
    AccessDenied,
    BucketNotFound,
    BucketsError,
    EndpointUnreachable,
)
from ._source import source

_TIMESTAMP = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s+"
# The innermost cause of a failed request, as Go's net/http and crypto/tls word it.
_NETWORK_CAUSE = (
    r"dial tcp[^\n]*?: (?:connect: )?(?:connection refused|no route to host|network is unreachable"
    r"|connection timed out|i/o timeout)"
    r"|dial tcp: lookup \S+(?: on \S+)?: no such host"
    r"|net/http: timeout awaiting response headers|net/http: TLS handshake timeout"
    r"|tls: [^\n,]+|x509: [^\n,]+|connection reset by peer|context deadline exceeded"
    r"|i/o timeout|unexpected EOF"
)
_NOT_FOUND = r"\bNoSuchBucket\b[^\n]*|directory not found|bucket not found"
_DENIED = (
    r"\b(?:AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|InvalidToken"
    r"|AllAccessDisabled|AccountProblem|InvalidSecurity)\b[^\n]*"
)
_STATUS = r"(?:StatusCode|status code): (\d{3})"
_CA_BUNDLE = r"LoadCustomCABundleError[^\n]*"


def short(line: str, limit: int = 200) -> str:
    line = re.sub(_TIMESTAMP, "", line.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "ERROR" in line or "CRITICAL" in line or "Failed" in line or "error" in line:
            return short(line)
    return short(lines[-1]) if lines else ""


def classify(remote: str, bucket: str, stderr: str) -> Optional[BucketsError]:
    """What a failed request to `remote:bucket` means, from rclone's stderr (1.60 to 1.75).

    Structured signals first, most specific first: a network cause (the request never got an
    HTTP answer), S3 error codes as whole words, then the HTTP status. None when unknown.
    """
    network = re.search(_NETWORK_CAUSE, stderr)
    if network:
        return EndpointUnreachable(
            f"cannot reach the S3 endpoint of remote '{remote}': {short(network.group(0))}",
            "check the network (and the endpoint in rclone.conf), then try again",
        )
    statuses = {int(s) for s in re.findall(_STATUS, stderr)}
    if re.search(_NOT_FOUND, stderr) or 404 in statuses:
        return BucketNotFound(
            f"bucket '{bucket}' not found on remote '{remote}'",
            f"check the name with 'rclone lsd {remote}:' (or ask the bucket's owner)",
        )
    denied = re.search(_DENIED, stderr)
    if denied or 403 in statuses:
        detail = short(denied.group(0)) if denied else "HTTP 403 Forbidden"
        return AccessDenied(
            f"access denied to {source(remote, bucket)}: {detail}",
            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy",
        )
    ca_bundle = re.search(_CA_BUNDLE, stderr)
    if ca_bundle:
        return BucketsError(
            f"rclone cannot use the CA bundle in AWS_CA_BUNDLE: {short(ca_bundle.group(0))}",
            "unset AWS_CA_BUNDLE for rclone, or install rclone >= 1.65",
        )
    return None


def log_offset(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return 0


# rclone's last CRITICAL line only wraps a helper's failure ("failed to mount FUSE fs:
# fusermount: exit status 1"); the helper's own words come earlier, in a NOTICE line.
_HELPER_ERROR = r"mount helper error: (?P<cause>[^\n]+)"
_WRAPPED = r"failed to mount FUSE fs|exit status \d+|mount helper|operation error S3|https response error"


def failure_cause(text: str) -> str:
    """The innermost cause of a failed rclone run, in one line: when its last error line wraps a
    helper's error, the helper's own line (fusermount's), or the S3 error; else that line."""
    last = last_error_line(text)
    if not re.search(_WRAPPED, last):
        return last
    helpers = [m.group("cause") for m in re.finditer(_HELPER_ERROR, text)]
    if helpers:
        return short(helpers[-1])
    if re.search(_NETWORK_CAUSE + "|" + _API_ERROR, text):
        return summarize_error(text)
    return last


def log_error(log: Path, since: int = 0) -> str:
    """The cause of the failure rclone wrote to its log after byte offset `since` (one line)."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return failure_cause(text)


# "ERROR : dir/f.txt: vfs cache: failed to upload try #2, will retry in 4s: <error>"
_UPLOAD_FAILED = (
    r"ERROR : (?P<name>.+?): vfs cache: failed to upload try #(?P<try>\d+), will retry in \S+: "
    r"(?:vfs cache: failed to transfer file from cache to remote: )?(?P<error>.*)")
_API_ERROR = r"api error (\w+: [^\n]*)"
_LOG_TAIL = 256 * 1024  # the last upload errors are at the end; never read a huge log whole


def summarize_error(text: str) -> str:
    """The innermost cause of a failed request, in one short line."""
    network = re.search(_NETWORK_CAUSE, text)
    if network:
        return short(network.group(0))
    status = re.search(_STATUS, text)
    api = re.search(_API_ERROR, text)
    if api:
        return short(f"HTTP {status.group(1)}: {api.group(1)}" if status else api.group(1))
    return short(text)


def upload_failures(log: Path, since: int = 0) -> dict[str, str]:
    """{file: its last upload error} from the mount's log after byte offset `since`."""
    try:
        with open(log, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(since, size - _LOG_TAIL))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return {}
    failures: dict[str, str] = {}
    for match in re.finditer(_UPLOAD_FAILED, text):
        failures[match.group("name")] = summarize_error(match.group("error"))
    return failures


def unsaved_files(cache_dir: Path, bucket: str) -> list[str]:
    """Files rclone's VFS cache holds that were written and never uploaded ("Dirty" in their
    metadata, under vfsMeta/<remote>/<bucket>/): what a killed rclone left behind. The next
    mount of that remote with this cache uploads them."""
    found = []
    for meta in sorted(Path(cache_dir).glob(f"vfsMeta/*/{bucket}")):
        found += _dirty_under(meta)
    return sorted(found)


def _dirty_under(meta: Path) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(meta):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                with open(path, encoding="utf-8") as f:
                    dirty = json.load(f).get("Dirty") is True
            except (OSError, ValueError, AttributeError):
                continue
            if dirty:
                found.append(os.path.relpath(path, meta))
    return found


def copied_files(log: Path, since: int) -> int:
    """Objects a sync downloaded, by its own log ("INFO : path: Copied (new)" per file)."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            return sum(1 for line in f if b": Copied (" in line)
    except OSError:
        return 0
