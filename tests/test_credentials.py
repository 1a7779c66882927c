"""The credential rules for env_auth remotes (credentials.py: the one implementation)."""

from __future__ import annotations

import pytest

from visionlab.buckets.errors import CredentialsMissing
from visionlab.buckets.system import credentials

AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")
ENV_AUTH = {"type": "s3", "env_auth": "true"}

# (environment, files under ~/.aws, expected source or the error's first words)
CASES = [
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, {}, "the environment"),
    ({"AWS_ACCESS_KEY_ID": "k"}, {}, "AWS_SECRET_ACCESS_KEY is not set"),
    ({"AWS_SECRET_ACCESS_KEY": "s"}, {}, "AWS_ACCESS_KEY_ID is not set"),
    ({}, {}, "no AWS credentials found for remote 's3_remote'"),
    ({}, {"credentials": "[default]\naws_access_key_id = k\n"}, "AWS profile 'default'"),
    ({"AWS_PROFILE": "lab"}, {"credentials": "[default]\nx = 1\n"}, "no AWS credentials found"),
    ({"AWS_PROFILE": "lab"}, {"config": "[profile lab]\nregion = x\n"}, "AWS profile 'lab'"),
    ({"AWS_DEFAULT_PROFILE": "lab"}, {"credentials": "[lab]\nx = 1\n"}, "AWS profile 'lab'"),
    ({"AWS_WEB_IDENTITY_TOKEN_FILE": "/t"}, {}, "a web identity token"),
    ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://x"}, {}, "the container's credentials"),
    ({}, {"credentials": "not an ini file ["}, "no AWS credentials found"),
]


@pytest.mark.parametrize(("environ", "files", "expected"), CASES)
def test_rules(tmp_path, monkeypatch, environ, files, expected):
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".aws").mkdir()
    for name, text in files.items():
        (tmp_path / ".aws" / name).write_text(text)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    source = credentials.source()
    if source is not None:
        assert source.startswith(expected)
        credentials.check("s3_remote", ENV_AUTH)
        return
    with pytest.raises(CredentialsMissing) as info:
        credentials.check("s3_remote", ENV_AUTH)
    assert info.value.message.startswith(expected)


def test_keys_in_the_config_need_no_environment(monkeypatch):
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    credentials.check("s3_remote", {"type": "s3", "env_auth": "false", "access_key_id": "k"})
    credentials.check("s3_remote", {"type": "s3"})
