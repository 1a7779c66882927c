"""Real shells: bash, zsh and fish load shell/ and completions/, a TAB in an interactive shell (tmux
send-keys + capture-pane) completes `unmount-bucket te`, and `cdbucket` lands in the bucket.

Set VB_TRANSCRIPTS=<dir> to keep each shell's screen (the closing note's transcripts)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BUCKET, needs_fuse

ROOT = Path(__file__).resolve().parent.parent
SHELL_FILES = sorted((ROOT / "shell").iterdir())
COMPLETIONS = sorted((ROOT / "completions").iterdir())
SYNTAX = {".sh": ["bash", "-n"], ".bash": ["bash", "-n"], ".zsh": ["zsh", "-n"],
          ".fish": ["fish", "--no-execute"]}


# ---------------------------------------------------------------------------- syntax and lint


@pytest.mark.parametrize("path", SHELL_FILES + COMPLETIONS, ids=lambda p: p.name)
def test_syntax(path: Path):
    checks = [SYNTAX[path.suffix]] + ([["zsh", "-n"]] if path.suffix == ".sh" else [])
    for argv in checks:
        result = subprocess.run([*argv, str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{argv[0]}: {result.stderr}"


def test_shellcheck():
    result = subprocess.run(["shellcheck", str(ROOT / "shell" / "buckets.sh")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


# ---------------------------------------------------------------------------- interactive shells


class Pane:
    """One interactive shell in a private tmux server."""

    def __init__(self, shell: str, tmp: Path, env: dict[str, str]) -> None:
        self.socket = str(tmp / "tmux.sock")
        argv = self._shell_argv(shell, tmp)
        self.tmux("new-session", "-d", "-x", "160", "-y", "50", "env", *[f"{k}={v}" for k, v in env.items()],
                  *argv)

    @staticmethod
    def _shell_argv(shell: str, tmp: Path) -> list[str]:
        src = ROOT / "shell"
        if shell == "bash":
            rc = tmp / "bashrc"
            rc.write_text(f"PS1='$ '\n. {src / 'buckets.sh'}\n")
            return ["bash", "--noprofile", "--rcfile", str(rc), "-i"]
        if shell == "zsh":
            zdot = tmp / "zdot"
            zdot.mkdir()
            (zdot / ".zshrc").write_text(
                f"PS1='$ '\nautoload -Uz compinit\ncompinit -u -D\n. {src / 'buckets.sh'}\n")
            return ["env", f"ZDOTDIR={zdot}", "zsh", "-i"]
        return ["fish", "-C", "set -g fish_greeting; function fish_prompt; echo -n '$ '; end; "
                f"source {src / 'buckets.fish'}"]

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], check=True, capture_output=True,
                              text=True, timeout=10).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J")

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def wait_for(self, pattern: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(pattern, screen, re.M):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} on the screen:\n{self.screen()}")

    def run(self, command: str, marker: str) -> str:
        """Type `command; echo <marker>` and wait for the marker's output line."""
        self.send("-l", f"{command}; echo {marker}")
        self.send("Enter")
        return self.wait_for(rf"^{marker}\s*$")

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10)


def shell_env(env) -> dict[str, str]:
    keep = ("HOME", "VISIONLAB_BUCKETS_RUNTIME_DIR", "RCLONE_CONFIG", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "LANG", "TMPDIR")
    out = {k: os.environ[k] for k in keep if k in os.environ}
    out["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    out["TERM"] = "xterm-256color"
    out["XDG_CONFIG_HOME"] = str(env["home"] / ".config")
    out["XDG_DATA_HOME"] = str(env["home"] / ".local" / "share")
    return out


@needs_fuse
@pytest.mark.fuse
@pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_tab_and_cdbucket_in_a_real_shell(env, shell):
    if not shutil.which(shell):
        pytest.skip(f"{shell} not installed")
    link = env["home"] / "s3_buckets" / BUCKET
    pane = Pane(shell, env["tmp"], shell_env(env))
    try:
        pane.wait_for(r"^\$ ")
        # A bucket that does not exist: a message, non-zero status, and the shell stays put.
        status = "$status" if shell == "fish" else "$?"
        screen = pane.run(f"cdbucket no-such-bucket-x; echo status={status}; pwd", "M1")
        assert "cdbucket: could not mount 'no-such-bucket-x'" in screen
        assert "status=1" in screen
        assert re.search(rf"^{re.escape(str(env['tmp']))}$", screen, re.M), screen

        # cdbucket mounts the bucket and leaves the shell inside it.
        screen = pane.run(f"cdbucket {BUCKET}; pwd; ls", "M2")
        assert re.search(rf"^{re.escape(str(link))}$", screen, re.M), screen
        assert "hello.txt" in screen

        # TAB completes a mounted bucket for unmount-bucket.
        pane.send("-l", "unmount-bucket te")
        pane.send("Tab")
        pane.wait_for(rf"unmount-bucket {BUCKET} ?$", timeout=10)
        pane.send("C-u")  # clear the line, then wait for the empty prompt before typing on
        pane.wait_for(r"^\$[ \t]*$", timeout=10)

        # `cdbucket <TAB>` completes like mount-bucket (here from the remote's listing).
        pane.send("-l", "builtin cd /; cdbucket teamsp")
        pane.send("Tab")
        pane.wait_for(rf"cdbucket {BUCKET} ?$", timeout=10)
        screen = pane.run("; pwd", "M3")
        assert re.search(rf"^{re.escape(str(link))}$", screen, re.M), screen

        screen = pane.run(f"builtin cd /; unmount-bucket {BUCKET}", "M4")
        assert f"unmounted s3_remote:{BUCKET}" in screen
    finally:
        keep = os.environ.get("VB_TRANSCRIPTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            Path(keep, f"{shell}.txt").write_text(pane.screen())
        pane.close()
        subprocess.run(["unmount-bucket", "--all", "--quiet"], capture_output=True, timeout=60)
