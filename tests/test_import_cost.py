"""Import cost: importing the package pulls in only the standard library (no click) until used."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_stdlib_only_and_lazy():
    code = ("import sys, visionlab.buckets as b; from visionlab.buckets import mount_bucket; "
            "assert 'click' not in sys.modules, 'click imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout == "ok\n"
