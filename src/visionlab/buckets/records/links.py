"""Symlinks <root>/<bucket> -> mount point: created atomically, never replacing anything; and
the record of the links our code removed (so that only those are ever made again)."""

from __future__ import annotations

import contextlib
import hashlib
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


def remove_ours(links: Iterable[str], *targets: Path, taken: Path | None = None) -> list[str]:
    """Remove each recorded link that still points at one of `targets`; leave anything else.
    Each one removed is noted in the directory `taken` (when given): see `was_taken`."""
    removed = []
    for link in alive(links, *targets):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
            removed.append(link)
            if taken is not None:
                note_taken(taken, link)
    return removed


def _taken_file(taken: Path, link: str | Path) -> Path:
    return taken / hashlib.sha256(os.fsencode(str(link))).hexdigest()[:32]


def note_taken(taken: Path, link: str | Path) -> None:
    """Record that our code removed `link` (one file named by a hash of its path, holding it)."""
    from .layout import ensure_private_dir

    with contextlib.suppress(OSError):
        ensure_private_dir(taken)
        record = _taken_file(taken, link)
        tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
        tmp.write_text(str(link))
        os.replace(tmp, record)


def was_taken(taken: Path, link: str | Path) -> bool:
    """Did our code remove `link` (and nothing made it again since)? A link that vanished
    without such a record was removed by the user, and is never made again."""
    try:
        return _taken_file(taken, link).read_text() == str(link)
    except OSError:
        return False


def forget_taken(taken: Path, link: str | Path) -> None:
    """`link` is ours again (made again, or created by a mount): a later removal is the user's
    unless our code notes it again."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_taken_file(taken, link))
