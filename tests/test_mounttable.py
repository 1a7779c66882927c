"""The mount table: parsing Linux mountinfo and macOS `mount` output, finding a mount, probing it."""

from __future__ import annotations

from pathlib import Path

from visionlab.buckets.system import mounttable

FIXTURES = Path(__file__).parent / "fixtures"


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
