"""What a user reads: the README's "Two ways in" commands run as written (for real, in a copy of
the clone with its own HOME), the manual rclone.conf matches what install.sh writes, and no word
from our internal documents appears in the README, docs/, bench/README.md, --help or messages."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import bin_path

from visionlab.buckets.system import rcconf

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# Words users never saw: our internal documents and issue numbers (rclone's own issues may be
# cited; `seed-config` is a command).
INTERNAL = [r"\bseed\b(?!-config)", r"(?<!rclone )\bissues?\s*#?\d+", r"\bthe seed\b"]


def internal_words(text: str) -> list[str]:
    found = []
    for pattern in INTERNAL:
        found += [text[max(0, m.start() - 40):m.end() + 40]
                  for m in re.finditer(pattern, text, re.IGNORECASE)]
    return found


def test_readme_has_no_internal_words():
    assert internal_words(README) == []


@pytest.mark.parametrize("path", ["docs/install.md", "docs/shell.md", "bench/README.md",
                                  "bench/results.md", "bench/stage_results.md",
                                  "install.sh", "scripts/try-without-aws.sh", "shell/buckets.sh",
                                  "shell/buckets.fish"])
def test_docs_and_scripts_have_no_internal_words(path):
    assert internal_words((ROOT / path).read_text()) == []


def _helps() -> list[tuple[str, ...]]:
    subcommands = ("config-file", "credentials", "facts", "purge-config", "seed-config")
    return [("mount-bucket",), ("unmount-bucket",), ("visionlab-buckets",),
            *(("visionlab-buckets", sub) for sub in subcommands)]


@pytest.mark.parametrize("command", _helps(), ids=" ".join)
def test_help_has_no_internal_words(command):
    proc = subprocess.run([bin_path(command[0]), *command[1:], "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert internal_words(proc.stdout) == []


def _messages(path: Path) -> list[str]:
    """The string literals of a module that are not docstrings: its messages."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_messages_have_no_internal_words():
    found = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        hits = [w for text in _messages(path) for w in internal_words(text)]
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert found == {}


def test_the_manual_rclone_conf_is_what_install_sh_writes():
    section = README[README.index("### Reference: rclone.conf by hand"):]
    blocks = re.findall(r"```ini\n(.*?)```", section, re.DOTALL)[:2]
    assert blocks == [rcconf.seed_text(name) for name in rcconf.SEED_REMOTES]
    assert README.count("nano ~/.config/rclone/rclone.conf") == 0  # no second setup path


def two_ways_in() -> list[str]:
    """The commands of the README's "Two ways in" block (comments dropped)."""
    start = README.index("Two ways in")
    block = re.search(r"```bash\n(.*?)```", README[start:], re.DOTALL)
    assert block
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [c for c in commands if c]


def test_two_ways_in_are_the_demo_and_install_sh_not_ci():
    assert two_ways_in() == ["scripts/try-without-aws.sh", "bash install.sh"]
    intro = README[:README.index("## Features")]
    assert "`bash .ci/run`" in intro and "needs root" in intro and "slurm-wlm" in intro


def _fuse_opens() -> bool:
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists("/dev/fuse"),
                    reason="needs /dev/fuse: FUSE is not available on this machine")
def test_two_ways_in_run_as_written():
    """In a copy of the clone, as a new user would: HOME empty, only the system's PATH (no venv,
    no uv, no rclone); each command of the block, as written, must succeed."""
    assert _fuse_opens(), "this test's user cannot open /dev/fuse (the demo would say so)"
    top = Path(tempfile.mkdtemp(prefix="vbr-", dir="/tmp"))
    try:
        clone = top / "clone"
        ignore = shutil.ignore_patterns(".venv", ".try-venv", "__pycache__", "*.egg-info", ".git")
        shutil.copytree(ROOT, clone, ignore=ignore, symlinks=True)
        home = top / "home"
        home.mkdir()
        env = {"HOME": str(home), "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "SHELL": "/bin/bash", "LANG": "C.UTF-8", "TMPDIR": str(top), "USER": "root",
               **{k: v for k, v in os.environ.items()
                  if k.startswith(("PIP_", "SSL_CERT", "REQUESTS_CA", "CURL_CA", "http_", "https_",
                                   "HTTP_", "HTTPS_", "no_proxy", "NO_PROXY"))}}
        for command in two_ways_in():
            proc = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True,
                                  text=True, timeout=900, stdin=subprocess.DEVNULL)
            assert proc.returncode == 0, (command, proc.stdout[-3000:], proc.stderr[-3000:])
            if command == "scripts/try-without-aws.sh":
                assert "try: done in" in proc.stdout
            else:
                assert (home / ".local" / "bin" / "mount-bucket").exists()
                assert "s3_remote_private" in (home / ".config" / "rclone" / "rclone.conf").read_text()
    finally:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                if line.split()[4].startswith(str(top)):
                    subprocess.run(["fusermount3", "-uz", line.split()[4]], capture_output=True,
                                   timeout=30, check=False)
        shutil.rmtree(top, ignore_errors=True)
