"""Symlinks <root>/<bucket> -> mount point: created atomically, never replacing anything."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import LinkConflict


def _describe(path: Path) -> str:
    if path.is_symlink():
        return f"a symlink to {os.readlink(path)}"
    if path.is_dir():
        return "a directory"
    return "a file"


def _points_at(link: str | Path, target: Path) -> bool:
    """Is `link` a symlink whose text is exactly `target`? (Never follows it.)"""
    return target_of(link) == str(target)


def check(link: Path, target: Path) -> bool:
    """True when `link` already is our symlink; raise LinkConflict if anything else is there."""
    if _points_at(link, target):
        return True
    if os.path.lexists(link):
        raise LinkConflict(
            f"{link} already exists ({_describe(link)}); not replacing it",
            "move it away, or pick another --root",
        )
    parent = link.parent
    if os.path.lexists(parent) and not parent.is_dir():
        raise LinkConflict(f"{parent} is not a directory", "pick another --root")
    return False


def create(link: Path, target: Path) -> list[Path]:
    """Make `link` point at `target`. Returns the directories it had to create (for undo).

    os.symlink fails when anything appeared at `link` meanwhile, so nothing is ever clobbered.
    """
    if check(link, target):
        return []
    created: list[Path] = []
    missing = []
    parent = link.parent
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        os.mkdir(directory)
        created.append(directory)
    try:
        os.symlink(target, link)
    except FileExistsError:
        if not _points_at(link, target):
            remove_dirs(created)
            raise LinkConflict(
                f"{link} appeared while mounting; not replacing it", "move it away and retry"
            ) from None
    except OSError:
        remove_dirs(created)
        raise
    return created


def replace(link: Path, target: str | Path) -> None:
    """Make `link` a symlink to `target` atomically: a new symlink renamed over it, so at no
    moment is it missing."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def retarget(link: Path, old: str, new: Path) -> bool:
    """Point `link` from `old` to `new` atomically, only if it still points at `old`."""
    if not _points_at(link, Path(old)):
        return False
    replace(link, new)
    return True


def target_of(link: str | Path) -> str:
    """The text of a symlink ('' when it is not one)."""
    try:
        return os.readlink(link)
    except OSError:
        return ""


def remove_dirs(created: Iterable[Path]) -> None:
    for directory in sorted(created, key=lambda p: len(str(p)), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def alive(links: Iterable[str], *targets: Path) -> list[str]:
    """The recorded links that still point at one of `targets`."""
    return [link for link in links if any(_points_at(link, t) for t in targets)]


def remove_ours(links: Iterable[str], *targets: Path) -> list[str]:
    """Remove each recorded link that still points at one of `targets`; leave anything else."""
    removed = []
    for link in alive(links, *targets):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
            removed.append(link)
    return removed
