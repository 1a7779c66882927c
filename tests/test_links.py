"""Bucket links: creating symlinks idempotently, never clobbering, removing only our own."""

from __future__ import annotations

import os

import pytest

from visionlab.buckets.errors import LinkConflict
from visionlab.buckets.records import links


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


def test_a_removed_link_is_noted_as_taken_until_it_is_ours_again(tmp_path):
    target = tmp_path / "mnt"
    target.mkdir()
    link, other, taken = tmp_path / "a" / "b", tmp_path / "c", tmp_path / "taken"
    link.parent.mkdir()
    os.symlink(target, link)
    os.symlink(target, other)
    assert links.remove_ours([str(link)], target, taken=taken) == [str(link)]
    assert links.was_taken(taken, link) and not links.was_taken(taken, other)
    assert oct(os.stat(taken).st_mode & 0o777) == "0o700"
    links.forget_taken(taken, link)
    assert not links.was_taken(taken, link)
    assert links.remove_ours([str(other)], target) == [str(other)]  # no record asked for
    assert not links.was_taken(taken, other)
