"""The listing of a copy on disk, never held whole in memory (1.3M objects are ~100 MB of it):
NDJSON, a header line `{"prefix": P, "v": 2}` then one `[path, size, modified]` line per
object, sorted by line. It is written while rclone lists, then streamed back: the comparison
with the copy's listing (what to download, how many files and folders to create, unchanged or
not) is one merge of two sorted files, and the stager's check reads it line by line.

A listing of the layout before (one JSON object `{"prefix", "objects"}`) is still read, whole:
only a copy made by the previous version has one."""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) does to a str
from pathlib import Path
from typing import IO, NamedTuple

VERSION = 2
SORT_CHUNK = 200_000  # lines sorted in memory at once when rclone's order is not the file's


class Totals(NamedTuple):
    objects: int
    bytes: int
    needed: int  # bytes of the objects the copy in use does not have
    inodes: int  # files (not in the copy in use) and folders to create
    unchanged: bool  # the same listing as the copy in use's


class _Unsorted(Exception):
    pass


def line_of(path: str, size: int, modified: str) -> str:
    """`json.dumps([path, size, modified], ensure_ascii=False, separators=(",", ":"))` and a
    newline, built without json.dumps's per-call encoder (1.3M lines per listing)."""
    return f"[{encode_basestring(path)},{int(size)},{encode_basestring(modified)}]\n"


def _path_size(line: str) -> tuple[str, int]:
    """The path (still JSON-escaped: "/" never is, so its folders split alike) and the size of a
    line_of line, without a JSON parse when the modified time (the last field) holds no comma:
    then the last part opens with the time's quote (a quote inside a string is escaped)."""
    head, size, modified = line.rsplit(",", 2)
    if modified.startswith('"') and size.isdigit():
        return head[2:-1], int(size)
    path, size, _modified = json.loads(line)  # a time with a comma in it: parse it properly
    return encode_basestring(path)[1:-1], size


def header(prefix: str) -> str:
    return json.dumps({"prefix": prefix, "v": VERSION}) + "\n"


def new_folders(path: str, previous: str) -> int:
    """Folders of `path` that `previous` (the line before in the sorted listing) is not in:
    summed over the listing, the number of folders it holds (the objects of one folder are one
    run of lines in any lexicographic order)."""
    if path.rpartition("/")[0] == previous.rpartition("/")[0]:
        return 0  # the run of one folder's objects goes on
    folders = path.split("/")[:-1]
    before = previous.split("/")[:-1]
    same = 0
    while same < min(len(folders), len(before)) and folders[same] == before[same]:
        same += 1
    return len(folders) - same


def _lines(f: IO[str]) -> Iterator[str]:
    """The object lines of a listing file (after its header); an old-format listing's objects
    as lines, sorted."""
    f.seek(0)
    first = f.readline()
    try:
        head = json.loads(first) if first else {}
    except ValueError:
        return
    if "objects" in head:  # the layout before: one JSON object
        yield from sorted(line_of(p, s, m) for p, s, m in head["objects"])
        return
    yield from f


def prefix_of(path: Path) -> str | None:
    """The prefix a listing file is of; None when there is none (or it does not read)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    return head.get("prefix") if isinstance(head, dict) else None


def records(path: Path) -> Iterator[tuple[str, int, str]]:
    """(path, size, modified) of every object of a listing file, read line by line."""
    with open(path, encoding="utf-8") as f:
        for line in _lines(f):
            rel, size, modified = json.loads(line)
            yield rel, size, modified


def _merge(items: Iterable[str], old: Iterator[str]) -> Totals:
    """One pass over the new listing's lines (sorted), the old one's beside it."""
    objects = total = needed = inodes = 0
    unchanged = True
    previous_line, previous_path = "", ""
    current = next(old, None)
    for line in items:
        if line < previous_line:
            raise _Unsorted
        rel, size = _path_size(line)
        while current is not None and current < line:
            unchanged = False  # in the copy in use, no more in the bucket
            current = next(old, None)
        have = current == line
        if have:
            current = next(old, None)
        else:
            unchanged = False
            needed += size
        objects += 1
        total += size
        inodes += new_folders(rel, previous_path) + (not have)
        previous_line, previous_path = line, rel
    return Totals(objects, total, needed, inodes, unchanged and current is None)


def _sorted_lines(f: IO[str], where: str) -> Iterator[str]:
    """The object lines of `f`, sorted on disk: runs of SORT_CHUNK lines, merged."""
    runs = []
    chunk: list[str] = []
    for line in _lines(f):
        chunk.append(line)
        if len(chunk) >= SORT_CHUNK:
            runs.append(_run(sorted(chunk), where))
            chunk = []
    runs.append(_run(sorted(chunk), where))
    yield from heapq.merge(*runs)


def _run(lines: list[str], where: str) -> Iterator[str]:
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=where) as f:
        f.writelines(lines)
        del lines[:]
        f.seek(0)
        yield from f


def write(objects: Iterable[tuple[str, int, str]], prefix: str, where: Path,
          old: Path) -> tuple[IO[str], Totals]:
    """Write the listing (streamed from rclone) to an unnamed temp file in `where`, and compare
    it with the listing `old` of the copy in use as it comes; sorted on disk first when rclone's
    order is not the file's. Nothing named is created."""
    out = tempfile.TemporaryFile("w+", encoding="utf-8", dir=where)  # noqa: SIM115 (returned)
    out.write(header(prefix))

    def written() -> Iterator[str]:
        for rel, size, modified in objects:
            line = line_of(rel, size, modified)
            out.write(line)
            yield line

    items = written()
    try:
        with _open_old(old, prefix) as previous:
            try:
                totals = _merge(items, previous)
            except _Unsorted:
                for _line in items:  # the rest of the listing, then sort it on disk
                    pass
                totals = None
        if totals is None:
            unsorted = out
            out = tempfile.TemporaryFile("w+", encoding="utf-8", dir=where)  # noqa: SIM115
            out.write(header(prefix))
            out.writelines(_sorted_lines(unsorted, str(where)))
            unsorted.close()
            with _open_old(old, prefix) as previous:
                totals = _merge(_lines(out), previous)
    except BaseException:
        out.close()
        raise
    out.flush()
    return out, totals


class _open_old:
    """The old listing's object lines (none when it is missing, unreadable or of another
    prefix: then nothing counts as already there)."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path, self.prefix, self.f = path, prefix, None

    def __enter__(self) -> Iterator[str]:
        if prefix_of(self.path) != self.prefix:
            return iter(())
        try:
            self.f = open(self.path, encoding="utf-8")  # noqa: SIM115 (closed by __exit__)
        except OSError:
            return iter(())
        return _lines(self.f)

    def __exit__(self, *exc: object) -> None:
        if self.f:
            self.f.close()


def save(listing: IO[str], path: Path) -> None:
    """Write the temp listing to `path` (a temp name renamed into place), streamed."""
    import shutil

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    listing.seek(0)
    with open(tmp, "w", encoding="utf-8") as f:
        shutil.copyfileobj(listing, f, 1 << 16)
    os.replace(tmp, path)


def identity(path: Path) -> tuple:
    """Which file `path` is now (inode, size, mtime): the copy in use's listing at plan time is
    checked to be the same one when the plan is acted on."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return st.st_ino, st.st_size, st.st_mtime_ns
