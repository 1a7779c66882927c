"""Mount profiles: the CLI offers exactly the profiles that exist."""

from __future__ import annotations


def test_cli_profile_names_match_profiles():
    from visionlab.buckets import cli
    from visionlab.buckets.records import profiles

    assert sorted(cli.PROFILE_NAMES) == sorted(profiles.PROFILES)
