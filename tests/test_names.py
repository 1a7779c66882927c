"""Bucket names: what names.parse accepts, normalizes and refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionlab.buckets.errors import InvalidBucketName
from visionlab.buckets.records import names


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
