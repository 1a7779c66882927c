"""The one way this package runs an external command: no stdin, captured output, a timeout."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from .errors import CommandTimeout


@dataclass
class Result:
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
) -> Result:
    """Run argv and return its result; raise CommandTimeout when it outlives `timeout` seconds.

    The command gets /dev/null as stdin, so it can never wait for a prompt.
    """
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(
            f"{os.path.basename(argv[0])} did not answer within {timeout:g}s",
            "check the network and the S3 endpoint, then try again",
        ) from exc
    except FileNotFoundError as exc:
        return Result(127, "", str(exc))
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_detached(argv: Sequence[str], timeout: float, log_path: str) -> int:
    """Run a command that daemonizes (e.g. `rclone mount --daemon`).

    Its output goes to `log_path`, never to a pipe: a daemon keeps inherited pipes open, and a
    parent that reads them would wait forever.
    """
    with open(log_path, "ab", buffering=0) as log:
        os.chmod(log_path, 0o600)
        try:
            proc = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                timeout=timeout,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(
                f"{os.path.basename(argv[0])} did not finish within {timeout:g}s",
                f"see its log: {log_path}",
            ) from exc
    return proc.returncode
