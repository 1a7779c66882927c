"""FUSE is usable only when this user can open the device read-write: checked before anything is
created, with the cause and the fix in one line. Root opens any file, so the unopenable device is
a stand-in here (a directory, via VISIONLAB_BUCKETS_DEV_FUSE); tests/test_normal_user.py shows
the real /dev/fuse refusing a normal user."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess

import pytest
from conftest import bin_path

from visionlab.buckets.errors import FuseUnavailable
from visionlab.buckets.system import fuse

needs_fusermount = pytest.mark.skipif(
    not (shutil.which("fusermount3") or shutil.which("fusermount")),
    reason="needs fusermount3 (apt-get install fuse3)")


@needs_fusermount
def test_a_device_that_opens_is_ok(tmp_path, monkeypatch):
    device = tmp_path / "fuse"
    device.write_text("")
    monkeypatch.setenv("VISIONLAB_BUCKETS_DEV_FUSE", str(device))
    assert fuse.check().startswith(f"{device} and ")
    assert fuse.status().startswith("ok ")


def test_a_device_that_does_not_open_names_the_cause_and_the_fix(tmp_path, monkeypatch):
    device = tmp_path / "fuse"
    device.mkdir()  # exists, but cannot be opened read-write (as the real one for a normal user)
    monkeypatch.setenv("VISIONLAB_BUCKETS_DEV_FUSE", str(device))
    with pytest.raises(FuseUnavailable) as caught:
        fuse.check()
    error = caught.value
    assert error.message.startswith(f"cannot open {device} read-write as ")
    assert "Is a directory (drwx" in error.message
    for words in ("ask your admins", "'fuse' group", "compute node", "login node"):
        assert words in error.hint
    assert "\n" not in str(error)
    assert fuse.status() == f"fail {error}"


def test_a_missing_device(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLAB_BUCKETS_DEV_FUSE", str(tmp_path / "none"))
    with pytest.raises(FuseUnavailable, match="is missing"):
        fuse.check()


def test_a_group_device_names_the_group(tmp_path, monkeypatch):
    """crw-rw---- root:fuse and the user not in 'fuse': the hint names that group."""
    device = tmp_path / "fuse"
    device.mkdir()
    monkeypatch.setenv("VISIONLAB_BUCKETS_DEV_FUSE", str(device))
    real_stat = os.stat

    def fake_stat(path, *a, **kw):
        st = real_stat(path, *a, **kw)
        if str(path) != str(device):
            return st
        fields = list(st)
        fields[0], fields[5] = 0o20660, 4242  # st_mode: crw-rw----, st_gid
        return os.stat_result(fields)

    real_getgrgid = grp.getgrgid

    def fake_getgrgid(gid):
        return grp.struct_group(("fuse", "x", 4242, [])) if gid == 4242 else real_getgrgid(gid)

    monkeypatch.setattr(os, "stat", fake_stat)
    monkeypatch.setattr(grp, "getgrgid", fake_getgrgid)
    monkeypatch.setattr(os, "getgroups", lambda: [0])
    with pytest.raises(FuseUnavailable) as caught:
        fuse.check()
    assert "(crw-rw---- " in caught.value.message and ":fuse)" in caught.value.message
    assert "add you to the group 'fuse'" in caught.value.hint


@needs_fusermount
def test_doctor_fails_the_fuse_line_with_the_cause(tmp_path):
    device = tmp_path / "fuse"
    device.mkdir()
    env = {**os.environ, "VISIONLAB_BUCKETS_DEV_FUSE": str(device),
           "VISIONLAB_BUCKETS_RUNTIME_DIR": str(tmp_path / "rt"), "HOME": str(tmp_path / "home"),
           "RCLONE_CONFIG": str(tmp_path / "rclone.conf")}
    proc = subprocess.run([bin_path("mount-bucket"), "--doctor"], capture_output=True, text=True,
                          timeout=120, env=env)
    fuse_lines = [ln for ln in proc.stdout.splitlines() if ln.split()[1:2] == ["fuse:"]]
    assert len(fuse_lines) == 1, proc.stdout
    assert fuse_lines[0].startswith(f"fail  fuse: cannot open {device} read-write as ")
    assert "ask your admins" in fuse_lines[0]
    assert proc.returncode == 1


@needs_fusermount
def test_mount_stops_before_creating_anything(tmp_path):
    device = tmp_path / "fuse"
    device.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "VISIONLAB_BUCKETS_DEV_FUSE": str(device),
           "VISIONLAB_BUCKETS_RUNTIME_DIR": str(tmp_path / "rt"), "HOME": str(home),
           "RCLONE_CONFIG": str(tmp_path / "rclone.conf")}
    (tmp_path / "rclone.conf").write_text(
        "[s3_remote]\ntype = s3\nprovider = Other\nenv_auth = true\n")
    proc = subprocess.run([bin_path("mount-bucket"), "some-bucket"], capture_output=True, text=True,
                          timeout=120, env={**env, "AWS_ACCESS_KEY_ID": "k" * 10,
                                            "AWS_SECRET_ACCESS_KEY": "s" * 10})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and f"cannot open {device} read-write" in proc.stderr
    assert not (tmp_path / "rt").exists()
    assert list(home.iterdir()) == []


def test_macos_fuse_t_usable(tmp_path, monkeypatch):
    """macOS has no /dev/fuse for FUSE-T (it serves mounts over local NFS): its framework and its
    server must be usable by this user."""
    framework, server = tmp_path / "fuse_t.framework", tmp_path / "go-nfsv4"
    framework.mkdir()
    server.write_text("#!/bin/sh\n")
    monkeypatch.setattr(fuse.sys, "platform", "darwin")
    monkeypatch.setattr(fuse, "_FUSE_T", str(framework))
    monkeypatch.setattr(fuse, "_FUSE_T_SERVER", str(server))
    monkeypatch.setattr(fuse, "_MACFUSE", str(tmp_path / "none"))
    server.chmod(0o644)  # present, not executable (root too is refused exec without an x bit)
    with pytest.raises(FuseUnavailable, match="cannot run FUSE-T's"):
        fuse.check()
    server.chmod(0o755)
    assert fuse.check() == "FUSE-T"
    framework.rmdir()
    with pytest.raises(FuseUnavailable, match="no FUSE on this Mac"):
        fuse.check()
