"""rclone.conf: where rclone reads it, its remotes, and the two remotes this tool seeds.

The one place that knows rclone's config lookup rule (install.sh asks this module through
`visionlab-buckets config-file`, and a test compares it with `rclone config file`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from ..errors import RemoteNotFound

ENCRYPTED_MARKER = "RCLONE_ENCRYPT_V0:"
DEFAULT_REMOTE = "s3_remote"
PRIVATE_REMOTE = "s3_remote_private"

# The remotes install.sh adds (written once here; the installer asks for them).
SEED_REMOTES: dict[str, dict[str, str]] = {
    DEFAULT_REMOTE: {"type": "s3", "provider": "AWS", "env_auth": "true",
                     "region": "us-east-1", "acl": "public-read"},
    PRIVATE_REMOTE: {"type": "s3", "provider": "AWS", "env_auth": "true",
                     "region": "us-east-1", "acl": "private"},
}


def config_path(binary: Optional[str] = None) -> Path:
    """The file rclone reads, by rclone's own rule (fs/config: makeConfigPath):
    $RCLONE_CONFIG; else rclone.conf beside the rclone binary, if it exists; else
    $XDG_CONFIG_HOME/rclone/rclone.conf (or ~/.config/rclone/rclone.conf) if it exists; else
    ~/.rclone.conf if it exists; else the XDG path (where rclone would create it).
    """
    env = os.environ.get("RCLONE_CONFIG")
    if env:
        return Path(os.path.expanduser(env))
    if binary:
        beside = Path(os.path.realpath(binary)).parent / "rclone.conf"
        if beside.is_file():
            return beside
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    default = Path(xdg) / "rclone" / "rclone.conf"
    legacy = Path(home) / ".rclone.conf"
    if not default.exists() and legacy.exists():
        return legacy
    return default


def in_use() -> Path:
    """The file the rclone this package would run reads (`config_path` of the rclone found,
    or rclone's rule without a binary when none is installed)."""
    from ..errors import RcloneNotFound
    from .rclone import find_rclone

    try:
        return config_path(find_rclone())
    except RcloneNotFound:
        return config_path()


def parse_remotes(text: str, path: Path) -> dict[str, dict[str, str]]:
    """The sections of rclone.conf text as {name: {key: value}} (the file only, no environment)."""
    import configparser  # lazy: DEFAULT_REMOTE is imported on every start-up of the CLI

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise RemoteNotFound(f"cannot parse {path}: {first}", "fix the file or run install.sh") from exc
    return {name: dict(parser.items(name)) for name in parser.sections()}


def seed_text(name: str) -> str:
    """The section install.sh adds for seed remote `name`, as rclone.conf text."""
    return f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in SEED_REMOTES[name].items())


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
    if ENCRYPTED_MARKER in text:
        return None
    remotes.update(parse_remotes(text, path))
    for key, value in os.environ.items():
        match = re.fullmatch(r"RCLONE_CONFIG_([A-Z0-9_]+)_TYPE", key)
        if match:
            remotes.setdefault(match.group(1).lower(), {"type": value})
    return remotes


def remote_config(remote: str, path: Optional[Path] = None) -> dict[str, str]:
    """The config of `remote`, or RemoteNotFound naming the remotes that do exist."""
    path = path or config_path()
    remotes = read_remotes(path)
    if remotes is None:  # encrypted config: rclone itself will tell
        return {}
    if remote in remotes:
        return remotes[remote]
    known = ", ".join(sorted(remotes)) or "none"
    raise RemoteNotFound(
        f"remote '{remote}' is not in {path} (remotes there: {known})",
        f"run install.sh to add {DEFAULT_REMOTE} and {PRIVATE_REMOTE}, or pass --remote NAME",
    )
