"""The runtime layout: runtime dir and default root, and private (0700, our own) directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from visionlab.buckets.errors import UnsafePath
from visionlab.buckets.records import layout


def test_runtime_dir_override_and_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("VISIONLAB_BUCKETS_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert layout.runtime_dir() == tmp_path / "rt"
    assert layout.default_root(in_slurm_job=False) == tmp_path / "home" / "s3_buckets"
    assert layout.default_root(in_slurm_job=True) == tmp_path / "rt" / "s3_buckets"
    monkeypatch.delenv("VISIONLAB_BUCKETS_RUNTIME_DIR")
    assert layout.runtime_dir() == Path("/tmp") / layout.user_name()


def test_private_dir_created_0700(tmp_path):
    path = tmp_path / "a" / "b"
    layout.ensure_private_dir(path)
    assert (os.stat(path).st_mode & 0o777) == 0o700


@pytest.mark.parametrize("problem", ["symlink", "group-writable", "world-readable", "file"])
def test_private_dir_refusals(tmp_path, problem):
    path = tmp_path / "rt"
    if problem == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        path.symlink_to(tmp_path / "elsewhere")
    elif problem == "file":
        path.write_text("x")
    else:
        path.mkdir()
        path.chmod(0o770 if problem == "group-writable" else 0o704)
    with pytest.raises(UnsafePath):
        layout.ensure_private_dir(path)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to chown to another user")
def test_private_dir_owned_by_another_user(tmp_path):
    path = tmp_path / "rt"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    with pytest.raises(UnsafePath, match="owned by uid 65534"):
        layout.ensure_private_dir(path)
