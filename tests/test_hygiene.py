"""The suite's own rules (top of conftest.py), checked on every test file, new ones included: a
failing test must fail within its bound and never hurt the run.

- every subprocess.run/check_output/check_call/call has a timeout, every wait()/communicate() a
  bound, and no test reads a child's pipe with .read() (an orphan holding it never lets go);
- os.kill/os.killpg appear only in conftest.py (signal_checked, the runtime clean-up that checks
  each command line) and slurm_cluster.py (the dedicated job user's processes, by uid): every
  other test signals through signal_checked or its own Popen object."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
SIGNALLERS = {"conftest.py", "slurm_cluster.py"}


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node, node.func


def _problems(path: Path) -> list[str]:
    found = []
    for node, func in _calls(path):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        keywords = {k.arg for k in node.keywords}
        where = f"{path.name}:{node.lineno}"
        if owner == "subprocess" and func.attr in ("run", "check_output", "check_call", "call") \
                and "timeout" not in keywords:
            found.append(f"{where}: subprocess.{func.attr} without timeout=")
        if func.attr in ("wait", "communicate") and not node.args and "timeout" not in keywords \
                and owner not in ("threading", "event"):
            found.append(f"{where}: .{func.attr}() without a bound")
        if func.attr == "read" and isinstance(func.value, ast.Attribute) and \
                func.value.attr in ("stdout", "stderr"):
            found.append(f"{where}: a child's .{func.value.attr}.read() (use finish())")
        if owner == "os" and func.attr in ("kill", "killpg") and path.name not in SIGNALLERS:
            found.append(f"{where}: os.{func.attr} (use signal_checked())")
    return found


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_every_child_is_bounded_and_every_signal_checked(path: Path):
    assert _problems(path) == []


def test_the_checker_finds_each_hazard(tmp_path: Path):
    bad = tmp_path / "test_bad.py"
    bad.write_text(
        "import os, subprocess\n"
        "subprocess.run(['true'])\n"
        "p = subprocess.Popen(['true'], stderr=subprocess.PIPE)\n"
        "p.wait()\n"
        "p.communicate()\n"
        "assert p.wait(5) == 0, p.stderr.read()\n"
        "os.killpg(0, 9)\n"
    )
    assert [line.split(": ", 1)[1] for line in _problems(bad)] == [
        "subprocess.run without timeout=", ".wait() without a bound",
        ".communicate() without a bound", "a child's .stderr.read() (use finish())",
        "os.killpg (use signal_checked())"]
