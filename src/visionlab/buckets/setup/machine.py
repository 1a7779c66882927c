"""Setting a machine up: this tool's two remotes in rclone.conf, where credentials come from, and
the facts install.sh needs. install.sh hands these steps over to `visionlab-buckets` (cli.py),
the way rustup-init.sh hands over to rustup, so that they are written once, here.

Standard library only. rclone.conf is read with configparser (rcconf.parse_remotes) but edited
as text, so that every byte outside the sections added or removed stays as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from .. import __version__
from ..errors import RcloneNotFound
from ..system import credentials, fuse, rcconf, rclone

Say = Callable[[str], None]

_HEADER = re.compile(r"^[ \t]*\[[ \t]*(.*?)[ \t]*\][ \t]*$")
SHELLS = ("bash", "zsh", "fish")


def _print(line: str) -> None:
    print(line)


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def find_binary() -> Optional[str]:
    """The rclone rclone.conf is looked up for (its directory may hold a portable rclone.conf)."""
    try:
        return rclone.find_rclone()
    except RcloneNotFound:
        return None


def config_file() -> Path:
    """The rclone.conf rclone reads here (rclone's own rule)."""
    return rcconf.in_use()


def recommended(name: str) -> str:
    return "; ".join(f"{k} = {v}" for k, v in rcconf.SEED_REMOTES[name].items())


class Outcome(NamedTuple):
    path: Path
    changed: list[str]  # remotes added (seed) or removed (purge)
    kept: list[str]  # remotes present but not as seeded: left alone
    backup: Optional[Path]
    encrypted: bool = False


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None


def _backup_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    return candidate


def _write(path: Path, text: str, dry_run: bool, say: Say) -> Optional[Path]:
    """Replace path by text: parent made 0700 if missing, a backup of the old file, mode 0600,
    atomic (same-directory temp file + rename); a symlinked rclone.conf is written through."""
    parent = path.parent
    if dry_run:
        if not parent.is_dir():
            say(f"  would run: mkdir -p {parent}")
        if path.exists():
            say(f"  would back up: {path} -> {path}.bak-<timestamp>")
        say(f"  would write: {path}")
        return None
    if not parent.is_dir():
        parent.mkdir(parents=True, mode=0o700)
        os.chmod(parent, 0o700)
        say(f"  created: {parent} (mode 700)")
    backup = None
    if path.exists():
        backup = _backup_name(path)
        shutil.copy2(path, backup)
        say(f"  backup: {backup}")
    data = text.encode("utf-8")
    if path.is_symlink():  # a dotfiles repo: keep the link
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
    else:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    say(f"  wrote: {path}")
    return backup


def _encrypted(path: Path, action: str, warn: Say) -> Outcome:
    seeds = "".join("\n" + rcconf.seed_text(name) for name in rcconf.SEED_REMOTES)
    warn(f"{path} is encrypted: {action} these remotes with 'rclone config' yourself:\n{seeds.rstrip()}")
    return Outcome(path, [], [], None, encrypted=True)


def seed(path: Optional[Path] = None, dry_run: bool = False, say: Say = _print,
         warn: Say = _warn) -> Outcome:
    """Add the seed remotes that are missing; keep (and warn about) any that differ."""
    path = path or config_file()
    text = _read(path)
    if text is not None and rcconf.ENCRYPTED_MARKER in text:
        return _encrypted(path, "add", warn)
    present = rcconf.parse_remotes(text or "", path)
    missing, kept = [], []
    for name, settings in rcconf.SEED_REMOTES.items():
        if name not in present:
            missing.append(name)
        elif present[name] != settings:
            kept.append(name)
            warn(f"[{name}] in {path} differs from the recommended settings; kept as is. "
                 f"Recommended: {recommended(name)}")
    if not missing:
        say(f"already configured: {' and '.join(rcconf.SEED_REMOTES)}")
        return Outcome(path, [], kept, None)
    new = text or ""
    if new:
        new += "\n" if new.endswith("\n") else "\n\n"
    new += "\n".join(rcconf.seed_text(name) for name in missing)
    say("adding: " + " ".join(missing))
    backup = _write(path, new, dry_run, say)
    return Outcome(path, missing, kept, backup)


def without_sections(text: str, names: list[str]) -> str:
    """text without the sections `names`, and without the blank lines that led up to them."""
    out: list[str] = []
    held: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        match = _HEADER.match(line.rstrip("\r\n"))
        if match:
            if match.group(1) in names:
                if not skipping:
                    held = []
                    while out and not out[-1].strip():
                        held.insert(0, out.pop())
                skipping = True
                continue
            if skipping:
                out.extend(held)  # another section follows: keep the separator
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out)


def purge(path: Optional[Path] = None, dry_run: bool = False, say: Say = _print,
          warn: Say = _warn) -> Outcome:
    """Remove the seed remotes that are exactly as seeded; keep (and warn about) changed ones."""
    path = path or config_file()
    text = _read(path)
    if text is None:
        say(f"already absent: {path}")
        return Outcome(path, [], [], None)
    if rcconf.ENCRYPTED_MARKER in text:
        return _encrypted(path, "remove", warn)
    present = rcconf.parse_remotes(text, path)
    remove, kept = [], []
    for name, settings in rcconf.SEED_REMOTES.items():
        if name not in present:
            continue
        if present[name] == settings:
            remove.append(name)
        else:
            kept.append(name)
            warn(f"[{name}] in {path} was changed after install: kept")
    if not remove:
        say(f"nothing to remove from {path}")
        return Outcome(path, [], kept, None)
    say(f"removing from {path}: {' '.join(remove)}")
    backup = _write(path, without_sections(text, remove), dry_run, say)
    return Outcome(path, remove, kept, backup)


# ---------------------------------------------------------------------------- credentials


def credential_lines(shell: str, lightning: bool) -> list[str]:
    """What to tell a user without credentials (the rule itself is credentials.source)."""
    source = credentials.source()
    lines: list[str] = []
    if source:
        lines.append(f"found: AWS credentials come from {source}")
    else:
        lines += [
            "no AWS credentials found. rclone's remotes use env_auth = true: they read",
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment. This installer",
            "never writes secrets; add them yourself:",
            "",
        ]
        if lightning:
            lines += [
                "  Lightning Studio: in the Studio's settings, under Environment Variables (global",
                "  user variables, kept across restarts), add:",
                "    AWS_ACCESS_KEY_ID = <your access key id>",
                "    AWS_SECRET_ACCESS_KEY = <your secret access key>",
            ]
        elif shell == "fish":
            lines += [
                "  in ~/.config/fish/config.fish:",
                '    set -gx AWS_ACCESS_KEY_ID "<your access key id>"',
                '    set -gx AWS_SECRET_ACCESS_KEY "<your secret access key>"',
            ]
        else:
            rc = f"{os.environ.get('ZDOTDIR') or '~'}/.zshrc" if shell == "zsh" else "~/.bashrc"
            lines += [
                f"  in {rc}:",
                '    export AWS_ACCESS_KEY_ID="<your access key id>"',
                '    export AWS_SECRET_ACCESS_KEY="<your secret access key>"',
            ]
    acl = rcconf.SEED_REMOTES[rcconf.DEFAULT_REMOTE]["acl"]
    private_acl = rcconf.SEED_REMOTES[rcconf.PRIVATE_REMOTE]["acl"]
    lines += [
        "",
        f"note: objects written through {rcconf.DEFAULT_REMOTE} are {acl} (acl = {acl}).",
        f"      Use {rcconf.PRIVATE_REMOTE} (acl = {private_acl}) for anything that must stay private.",
    ]
    return lines


# ---------------------------------------------------------------------------- facts


def facts() -> list[tuple[str, str]]:
    """KEY=value facts for install.sh (one line each, no quoting needed, no secrets)."""
    items = [
        ("VERSION", __version__),
        ("CONFIG_FILE", str(config_file())),
        ("REMOTES", " ".join(rcconf.SEED_REMOTES)),
        ("DEFAULT_REMOTE", rcconf.DEFAULT_REMOTE),
        ("PRIVATE_REMOTE", rcconf.PRIVATE_REMOTE),
    ]
    for name in rcconf.SEED_REMOTES:
        items.append((f"REMOTE_{name.upper()}", recommended(name)))
    items += [
        ("RCLONE_MIN_VERSION", rclone.format_version(rclone.MIN_VERSION)),
        ("RCLONE", find_binary() or ""),
        ("CREDENTIALS", credentials.source() or "none"),
        ("FUSE", fuse.status()),
    ]
    return items
