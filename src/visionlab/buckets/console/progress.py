"""Progress on stderr while the commands wait: a staged copy (--stage --wait) and uploads
(--sync, unmount, the `-- CMD` wrapper). One line rewritten in place on a terminal, plain
lines else. Output goes through the `write` the caller passes (cli.py: click's echo)."""

from __future__ import annotations

import sys
import time
from typing import Callable

Write = Callable[[str], None]  # writes text to stderr as it is (no newline added)


class StatusLine:
    """One line rewritten in place on a terminal (at most 5 times a second), else a plain line
    at most every `plain_every` seconds."""

    def __init__(self, quiet: bool, plain_every: float, write: Write) -> None:
        self.quiet, self.tty, self.write = quiet, sys.stderr.isatty(), write
        self.every = 0.2 if self.tty else plain_every
        self.last, self.drawn = 0.0, False

    def due(self) -> bool:
        now = time.monotonic()
        if self.quiet or now - self.last < self.every:
            return False
        self.last = now
        return True

    def show(self, line: str) -> None:
        if self.tty:
            self.write(f"\r\033[K{line}")
            self.drawn = True
        else:
            self.write(f"{line}\n")

    def done(self) -> None:
        if self.drawn:
            self.write("\r\033[K")
            self.drawn = False


class UploadProgress(StatusLine):
    """Upload progress of one bucket (sync, unmount, the `-- CMD` wrapper)."""

    def __init__(self, bucket: str, quiet: bool, write: Write, verb: str = "waiting for") -> None:
        super().__init__(quiet, plain_every=2.0, write=write)
        self.bucket, self.verb = bucket, verb

    def __call__(self, report, remaining: float) -> None:
        if not self.due():
            return
        names = report.names[:3]
        shown = f": {', '.join(names)}{' ...' if report.pending > 3 else ''}" if names else ""
        line = f"{self.bucket}: {self.verb} {report.pending} upload(s), {remaining:.0f}s left{shown}"
        if report.failing:
            line += f" — {report.failing} failing: {report.last_error or 'see the log'}"
        self.show(line)


def stage_progress(bucket: str, quiet: bool, write: Write):
    """(the status line, the progress callback) of a --stage --wait: files, bytes, rate, ETA."""
    line, started, first = StatusLine(quiet, plain_every=5.0, write=write), time.monotonic(), []

    def progress(st) -> None:
        if not first:  # a copy joined part-way: the rate counts what came since
            first.append(st.bytes_done)
        if st.state != "copying" or not line.due():
            return
        rate = max(st.bytes_done - first[0], 0) / max(time.monotonic() - started, 1e-3)
        eta = f"{(st.bytes_total - st.bytes_done) / rate:,.0f}s" if rate > 0 else "?"
        done = st.bytes_done / st.bytes_total if st.bytes_total else 0
        line.show(f"{bucket}: [{'#' * int(done * 30):<30}] {st.files_done}/{st.files_total} files, "
                  f"{st.bytes_done / 1e6:,.0f}/{st.bytes_total / 1e6:,.0f} MB, "
                  f"{rate / 1e6:,.1f} MB/s, ETA {eta}")

    return line, progress
