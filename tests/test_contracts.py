"""The import contracts in pyproject.toml (run by .ci/run as `lint-imports`) hold on the tree,
and each one turns red under a one-line change: the change is made in a copy of src/, and
lint-imports runs there (nothing in the checkout is touched).

import-linter reads every import statement from source: at module level, inside a function (a
lazy import) and under `if TYPE_CHECKING:` alike; the mutations below include both kinds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")

LAYERS = "The folders are floors: each imports only the floors below it"
CIRCLE = "No import circle between the modules of any folder"
PRIVATE = "rclone's parts are private to its package: others call the face"
CLICK = "Only cli imports click"
STDLIB = "The package imports nothing outside the standard library (cli's click aside)"
CONTRACTS = [LAYERS, CIRCLE, PRIVATE, CLICK, STDLIB]

# (file under src/visionlab/buckets, the line appended to it, the contracts it breaks)
MUTATIONS = [
    # staging asks the mount flow: the upward import the folders were cut to avoid (lazy)
    ("staging/plan.py", "def _f():\n    from ..mounts import mountinfo  # noqa", {LAYERS, CIRCLE}),
    # the bottom floor reaches up, only for type checking
    ("records/state.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from ..staging import StageState  # noqa", {LAYERS, CIRCLE}),
    # a new module at the top that no floor names (the layers contract is exhaustive)
    ("../buckets/newmodule.py", "X = 1", {LAYERS}),
    # a circle inside one folder: scopes would import mount, which imports scopes (lazy)
    ("mounts/scopes.py", "def _f():\n    from . import mount  # noqa", {CIRCLE}),
    # reaching inside rclone's package instead of calling its face
    ("uploads/pending.py", "from ..system.rclone._rc import uploads as _u  # noqa", {PRIVATE}),
    # click below the CLI
    ("mounts/mount.py", "import click  # noqa", {CLICK, STDLIB}),
    # a third-party package anywhere in the package (lazy, deep in a function)
    ("records/state.py", "def _f():\n    import yaml  # noqa", {STDLIB}),
]


def lint_imports(tree: Path) -> dict[str, str]:
    """{contract name: 'KEPT' or 'BROKEN'} of `lint-imports` run on `tree` (its src/ first on
    sys.path, so the copy is what is read)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run([str(LINT), "--no-logo", "--no-cache"], cwd=tree, env=env,
                         capture_output=True, text=True, timeout=120)
    verdicts = {}
    for line in out.stdout.splitlines():
        for name in CONTRACTS:
            if line.startswith(name + " "):
                verdicts[name] = line[len(name) + 1:].split()[0]
    assert set(verdicts) == set(CONTRACTS), out.stdout + out.stderr
    assert (out.returncode == 0) == all(v == "KEPT" for v in verdicts.values()), out.stdout
    return verdicts


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    top = tmp_path_factory.mktemp("contracts")
    shutil.copy(ROOT / "pyproject.toml", top)
    shutil.copytree(ROOT / "tools", top / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "src", top / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return top


def test_every_contract_is_kept_on_the_tree(tree):
    assert lint_imports(tree) == dict.fromkeys(CONTRACTS, "KEPT")


@pytest.mark.parametrize(("path", "line", "broken"), MUTATIONS,
                         ids=[f"{m[0]}:{next(iter(sorted(m[2])))[:24]}" for m in MUTATIONS])
def test_each_contract_turns_red_under_a_one_line_change(tree, path, line, broken):
    target = (tree / "src" / "visionlab" / "buckets" / path).resolve()
    before = target.read_text() if target.exists() else None
    try:
        target.write_text((before or "") + "\n" + line + "\n")
        verdicts = lint_imports(tree)
    finally:
        if before is None:
            target.unlink()
        else:
            target.write_text(before)
    assert {name for name, v in verdicts.items() if v == "BROKEN"} == broken


def test_the_readmes_layout_table_is_the_layers_contract():
    """The README's table of floors names the folders in the contract's order, floor by floor."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11, as CI has
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    contract = [sorted(name.strip() for name in layer.split("|")) for layer in layers]
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Layout of the code"):].split("\n\n")[2]
    floors = []
    for row in table.splitlines()[2:]:
        folders = re.findall(r"`([a-z_]+)(?:/|\.py)`", row.split("|")[2])
        floors.append(sorted(folders))
    assert floors == contract
