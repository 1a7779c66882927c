"""Bucket names: accept what a user types ("s3://name/", "name"), refuse what S3 would refuse."""

from __future__ import annotations

import re

from ..errors import InvalidBucketName

_ALLOWED = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_LIKE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_HINT = "use the bucket's name as S3 shows it, e.g. 'my-bucket' or 's3://my-bucket'"


def _shown(text: str) -> str:
    """The input as it can safely appear in a one-line message."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 80 else shown[:77] + "..."


def parse(text: str) -> str:
    """Return the bucket name in `text`, or raise InvalidBucketName.

    Strips a leading "s3://" and trailing slashes. Applies S3's general-purpose bucket rules:
    3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a
    letter or digit, no "..", not shaped like an IP address, no reserved prefix or suffix.
    """
    if not isinstance(text, str):
        raise InvalidBucketName(f"bucket name must be text, not {type(text).__name__}", _HINT)
    name = text.strip()
    if name[:5].lower() == "s3://":
        name = name[5:]
    name = name.rstrip("/")
    shown = _shown(text)
    if not name:
        raise InvalidBucketName(f"no bucket name in '{shown}'", _HINT)
    if "/" in name:
        raise InvalidBucketName(
            f"'{shown}' is a path, not a bucket name",
            "mount the bucket and use the path below its folder",
        )
    if not _ALLOWED.fullmatch(name):
        if name.lower() != name:
            problem = "has uppercase letters"
        elif not 3 <= len(name) <= 63:
            problem = "must be 3 to 63 characters long"
        else:
            problem = "may contain only a-z, 0-9, '.' and '-', and must start and end with a-z or 0-9"
        raise InvalidBucketName(f"invalid bucket name '{shown}': {problem}", _HINT)
    if ".." in name or ".-" in name or "-." in name:
        raise InvalidBucketName(f"invalid bucket name '{shown}': bad dot placement", _HINT)
    if _IP_LIKE.fullmatch(name):
        raise InvalidBucketName(f"invalid bucket name '{shown}': shaped like an IP address", _HINT)
    if name.startswith(_BAD_PREFIXES) or name.endswith(_BAD_SUFFIXES):
        raise InvalidBucketName(f"invalid bucket name '{shown}': reserved prefix or suffix", _HINT)
    return name
