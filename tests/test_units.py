"""Unit tests of single functions: names, mount-table parsing, platform, layout, links, procs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionlab.buckets import layout, links, mounttable, names, platform, procs
from visionlab.buckets.errors import InvalidBucketName, LinkConflict, UnsafePath

FIXTURES = Path(__file__).parent / "fixtures"


# ---------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("text", "name"),
    [("teamspace-lrm", "teamspace-lrm"), ("s3://teamspace-lrm", "teamspace-lrm"),
     ("S3://teamspace-lrm/", "teamspace-lrm"), ("teamspace-lrm//", "teamspace-lrm"),
     ("my.bucket.01", "my.bucket.01"), (" abc ", "abc"), ("bucket\n", "bucket")],
)
def test_parse_accepts(text, name):
    assert names.parse(text) == name


@pytest.mark.parametrize(
    "text",
    ["", "/", "ab", "a" * 64, "Bad_Bucket!", "UPPER", "a..b", "a.-b", "-abc", "abc-",
     "192.168.1.1", "xn--abc", "abc-s3alias", "../../etc", "a/b", "s3://a/b", "buck\net",
     "tab\tname", "naïve"],
)
def test_parse_refuses(text):
    with pytest.raises(InvalidBucketName) as info:
        names.parse(text)
    assert "\n" not in str(info.value)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_parse_fuzz_is_name_or_one_line_error(text):
    try:
        name = names.parse(text)
    except InvalidBucketName as exc:
        assert "\n" not in str(exc) and exc.hint
    else:
        assert 3 <= len(name) <= 63 and "/" not in name and name == name.lower()
        assert names.parse(name) == name


# ---------------------------------------------------------------------------- mount table


def test_parse_mountinfo_unescapes_and_reads_source():
    text = ("36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n"
            "42 27 0:39 / /tmp/u/rclone/b rw,nosuid,nodev - fuse.rclone s3_remote:b rw,user_id=0\n")
    entries = mounttable.parse_mountinfo(text)
    assert entries[0] == mounttable.MountEntry("/dev/root", "/mnt/with space", "ext3")
    assert entries[1] == mounttable.MountEntry("s3_remote:b", "/tmp/u/rclone/b", "fuse.rclone")


def test_parse_macos_fuse_t():
    entries = mounttable.parse_macos_mount((FIXTURES / "macos_mount_fuse_t.txt").read_text())
    ours = [e for e in entries if "/rclone/" in e.mount_point]
    assert ours == [
        mounttable.MountEntry("s3_remote:teamspace-lrm", "/private/tmp/alice/rclone/teamspace-lrm", "nfs"),
        mounttable.MountEntry("s3_remote_private:my private bucket",
                              "/private/tmp/alice/rclone/odd name", "nfs"),
    ]


def test_parse_macos_macfuse():
    entries = mounttable.parse_macos_mount((FIXTURES / "macos_mount_macfuse.txt").read_text())
    assert entries[-1] == mounttable.MountEntry(
        "s3_remote:teamspace-lrm", "/private/tmp/alice/rclone/teamspace-lrm", "macfuse")
    assert entries[0].mount_point == "/" and entries[0].fstype == "apfs"


def test_find_resolves_private_tmp_alias(tmp_path):
    real = tmp_path / "private-tmp"
    (real / "alice" / "rclone").mkdir(parents=True)
    alias = tmp_path / "tmp"
    alias.symlink_to(real)  # as macOS's /tmp -> /private/tmp
    table = [mounttable.MountEntry("s3_remote:b", str(real / "alice" / "rclone" / "b"), "nfs")]
    assert mounttable.find(str(alias / "alice" / "rclone" / "b"), table) == table[0]
    assert mounttable.find(str(alias / "alice" / "rclone" / "c"), table) is None


def test_probe_answers_for_plain_dir_and_missing(tmp_path):
    assert mounttable.probe(str(tmp_path), 1) == (True, "")
    alive, reason = mounttable.probe(str(tmp_path / "missing"), 1)
    assert not alive and "No such file" in reason


# ---------------------------------------------------------------------------- platform


def test_platform_detection(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for var in ("LIGHTNING_CLOUD_PROJECT_ID", "LIGHTNING_CLOUDSPACE_HOST", "LIGHTNING_CLOUDSPACE_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(platform, "_LIGHTNING_DIR", "/nonexistent/teamspace")
    monkeypatch.setattr(platform, "has_gpu", lambda: False)
    assert platform.is_linux() is sys.platform.startswith("linux")
    assert platform.is_macos() is (sys.platform == "darwin")
    assert platform.get_platform_name() == "linux"
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert platform.is_slurm() and platform.get_platform_name() == "slurm"
    monkeypatch.setenv("LIGHTNING_CLOUD_PROJECT_ID", "p")
    assert platform.is_lightning_studio() and platform.get_platform_name() == "lightning"


def test_has_gpu_uses_nvidia_smi_with_timeout(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA A100 (UUID: GPU-x)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(platform.glob, "glob", lambda pattern: [])
    calls = []
    real_run = platform.runner.run

    def recording_run(argv, *args, **kwargs):
        calls.append((list(argv), args, kwargs))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(platform.runner, "run", recording_run)
    platform.has_gpu.cache_clear()
    try:
        assert platform.has_gpu() is True
        smi.write_text("#!/bin/sh\nexit 9\n")
        platform.has_gpu.cache_clear()
        assert platform.has_gpu() is False
    finally:
        platform.has_gpu.cache_clear()
    # Both calls ran nvidia-smi -L with the 5 s bound (a hung driver must not hang the caller).
    assert calls == [([str(smi), "-L"], (), {"timeout": 5})] * 2


def test_import_is_stdlib_only_and_lazy():
    code = ("import sys, visionlab.buckets as b; from visionlab.buckets import mount_bucket; "
            "assert 'click' not in sys.modules, 'click imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "ok\n"


# ---------------------------------------------------------------------------- layout


def test_runtime_dir_override_and_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("VISIONLAB_BUCKETS_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert layout.runtime_dir() == tmp_path / "rt"
    assert layout.default_root() == tmp_path / "home" / "s3_buckets"
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert layout.default_root() == tmp_path / "rt" / "s3_buckets"
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


# ---------------------------------------------------------------------------- links


def test_link_create_is_idempotent_and_never_clobbers(tmp_path):
    target = tmp_path / "mp"
    link = tmp_path / "root" / "deep" / "b"
    created = links.create(link, target)
    assert created == [tmp_path / "root", tmp_path / "root" / "deep"]
    assert os.readlink(link) == str(target)
    assert links.create(link, target) == []
    other = tmp_path / "other"
    other.write_text("mine")
    with pytest.raises(LinkConflict):
        links.create(other, target)
    assert other.read_text() == "mine"
    assert links.remove_ours([str(link), str(other)], target) == [str(link)]
    assert other.read_text() == "mine"


# ---------------------------------------------------------------------------- procs


def test_zombie_is_dead():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert procs.is_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 5
        while procs.is_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Not yet reaped (no wait()): a zombie, which must count as dead.
        assert Path(f"/proc/{child.pid}").exists()
        assert procs.is_alive(child.pid) is False
    finally:
        child.wait()


def test_cli_profile_names_match_profiles():
    from visionlab.buckets import cli, profiles

    assert sorted(cli.PROFILE_NAMES) == sorted(profiles.PROFILES)
