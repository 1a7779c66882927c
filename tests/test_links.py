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
