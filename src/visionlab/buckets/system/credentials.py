"""The credential rules for an rclone S3 remote with env_auth: the one implementation, used by
the mount preflight, `--doctor` and install.sh (through `visionlab-buckets credentials`)."""

from __future__ import annotations

import configparser
import os
from typing import Optional

from ..errors import CredentialsMissing


def uses_env_auth(cfg: dict[str, str]) -> bool:
    return cfg.get("env_auth", "false").strip().lower() in ("true", "1", "yes")


def _aws_profile_exists(profile: str) -> bool:
    home = os.path.expanduser("~")
    creds = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")
    conf = os.environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    for path, section in ((creds, profile), (conf, f"profile {profile}"), (conf, profile)):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error:
            continue
        if parser.has_section(section):
            return True
    return False


def source() -> Optional[str]:
    """Where AWS credentials would come from (never the values), or None when nowhere."""
    env = os.environ
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return "the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)"
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return "the container's credentials endpoint"
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    if _aws_profile_exists(profile):
        return f"AWS profile '{profile}'"
    return None


def check(remote: str, cfg: dict[str, str]) -> None:
    """An env_auth remote needs credentials from the environment or an AWS profile."""
    if not uses_env_auth(cfg) or source():
        return  # keys in the config, or anonymous access to a public bucket
    env = os.environ
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_SECRET_ACCESS_KEY"):
        missing = "AWS_SECRET_ACCESS_KEY" if env.get("AWS_ACCESS_KEY_ID") else "AWS_ACCESS_KEY_ID"
        raise CredentialsMissing(
            f"{missing} is not set (remote '{remote}' reads credentials from the environment)",
            f"export {missing}=... in your shell startup file",
        )
    raise CredentialsMissing(
        f"no AWS credentials found for remote '{remote}'",
        "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or set AWS_PROFILE); "
        "see the README's 'AWS Credentials Setup'",
    )
