"""The one way this package runs an external command: no stdin, captured output, a timeout.

Generic: it knows nothing of rclone or FUSE. A caller that can say what a timeout means passes
`hint`; the runner raises CommandTimeout and nothing else.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Optional

from ..errors import CommandTimeout


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: Sequence[str],
    timeout: float,
    env: Optional[Mapping[str, str]] = None,
    new_session: bool = False,
    hint: str = "try again; if it keeps happening, run with VISIONLAB_BUCKETS_DEBUG=1",
    input: Optional[str] = None,
) -> Result:
    """Run argv and return its result; raise CommandTimeout when it outlives `timeout` seconds.

    The command reads `input`, else /dev/null, so it can never wait for a prompt. A missing
    program is returncode 127, as in a shell.
    """
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
            start_new_session=new_session,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(
            f"{os.path.basename(argv[0])} did not answer within {timeout:g}s", hint
        ) from exc
    except FileNotFoundError as exc:
        return Result(127, "", str(exc))
    return Result(proc.returncode, proc.stdout, proc.stderr)


class Stream:
    """A command whose stdout is read line by line, never held whole (a listing of millions of
    objects); its stderr goes to an unnamed temp file. Killed past `timeout` seconds, then
    `finish` raises CommandTimeout. Use it as a context manager: leaving early kills it."""

    def __init__(self, argv: Sequence[str], timeout: float,
                 hint: str = "try again; if it keeps happening, run with VISIONLAB_BUCKETS_DEBUG=1"
                 ) -> None:
        import tempfile
        import threading

        self.argv, self.timeout, self.hint, self.timed_out = list(argv), timeout, hint, False
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish or __exit__)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, bufsize=1 << 16)
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.timed_out = True
        self.proc.kill()

    def __iter__(self):
        assert self.proc.stdout is not None
        return iter(self.proc.stdout)

    def finish(self) -> Result:
        """Wait for the end (stdout read to its end first); its status and stderr."""
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        code = self.proc.wait()
        self._timer.cancel()
        self._err.seek(0)
        stderr = self._err.read().decode(errors="replace")
        self._err.close()
        if self.timed_out:
            raise CommandTimeout(
                f"{os.path.basename(self.argv[0])} did not finish within {self.timeout:g}s",
                self.hint)
        return Result(code, "", stderr)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._timer.cancel()
        if not self._err.closed:
            self._err.close()


def spawn_detached(argv: Sequence[str], log_path: str) -> Optional[int]:
    """Start argv detached and return its pid (None when it could not be started): own session,
    reparented to init, stdin from /dev/null, output appended to `log_path` (never a pipe a
    caller could wait on forever).

    A short-lived /bin/sh starts it in the background and exits, so the process is never our
    child: nothing has to reap it, and a long-running Python that started it gains no zombie.
    """
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    script = 'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!'
    launcher = run(["/bin/sh", "-c", script, "sh", log_path, *argv], timeout=30, new_session=True)
    pid_text = launcher.stdout.strip()
    if not launcher.ok or not pid_text.isdigit():
        return None
    return int(pid_text)


def start_logged(argv: Sequence[str], log_path: str) -> subprocess.Popen:
    """Start argv as a child with no stdin and its output appended to `log_path`."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=fd, stderr=fd)
    finally:
        os.close(fd)


def run_foreground(argv: Sequence[str], forward: Sequence[int]) -> int:
    """Run argv with our stdin/stdout/stderr, pass the signals in `forward` on to it, wait for it
    and return its exit status (128+N when signal N ended it, 127 when it does not exist).

    SIGINT is passed on only when no terminal would deliver it to the command itself.
    """
    import signal
    import sys

    try:
        child = subprocess.Popen(list(argv))
    except (FileNotFoundError, PermissionError) as exc:
        print(f"error: {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126

    def pass_on(signum: int, frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    interactive = sys.stdin is not None and sys.stdin.isatty()
    previous = {}
    for sig in forward:
        if sig == signal.SIGINT and interactive:
            previous[sig] = signal.signal(sig, signal.SIG_IGN)  # the terminal tells the command
        else:
            previous[sig] = signal.signal(sig, pass_on)
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code
