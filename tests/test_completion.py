"""Shell completion: Click's protocol driven directly (exact output), the bucket-listing cache, and
the committed completions/ files against what the commands generate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import bin_path

from visionlab.buckets.records import layout
from visionlab.buckets.setup import completion

ROOT = Path(__file__).resolve().parent.parent


def complete(line: str) -> str:
    """What bash's completion function gets for `line<TAB>` (Click's bash_complete protocol)."""
    words = line.split(" ")
    prog = words[0]
    var = "_" + prog.replace("-", "_").upper() + "_COMPLETE"
    env = {**os.environ, var: "bash_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    result = subprocess.run([bin_path(prog)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def fake_state(*buckets: str) -> None:
    """State files as a mount leaves them: enough for unmount-bucket's completion (no network)."""
    meta = layout.ensure_private_dir(layout.runtime_dir() / "buckets")
    for bucket in buckets:
        (meta / f"{bucket}.json").write_text("{}")


def cache_file(remote: str = "s3_remote") -> Path:
    path = completion.cache_path(remote)
    assert path is not None
    return path


# ---------------------------------------------------------------------------- unmount-bucket


def test_unmount_offers_nothing_when_nothing_is_mounted(env):
    assert complete("unmount-bucket ") == "\n"  # Click prints one empty line for no values


def test_unmount_offers_known_buckets(env):
    fake_state("teamspace-lrm", "other-data")
    assert complete("unmount-bucket ") == "plain,other-data\nplain,teamspace-lrm\n"
    assert complete("unmount-bucket te") == "plain,teamspace-lrm\n"
    assert complete("unmount-bucket x") == "\n"


def test_unmount_never_offers_the_completion_cache(env):
    fake_state("teamspace-lrm")
    completion.remote_buckets("s3_remote", "")  # writes buckets/completion/s3_remote.json
    assert cache_file().exists()
    assert complete("unmount-bucket ") == "plain,teamspace-lrm\n"


def test_unmount_options(env):
    assert complete("unmount-bucket --ti") == "plain,--timeout\n"
    assert complete("unmount-bucket --st") == "plain,--stale\n"


# ---------------------------------------------------------------------------- mount-bucket


def test_remote_offers_the_remotes_of_rclone_conf(env):
    assert complete("mount-bucket --remote ") == "plain,s3_remote\nplain,s3_remote_private\n"
    assert complete("mount-bucket --remote s3_remote_") == "plain,s3_remote_private\n"


def test_root_offers_directories(env):
    assert complete("mount-bucket --root ") == "dir,\n"
    assert complete("mount-bucket --root /tm") == "dir,/tm\n"


def test_bucket_offers_the_remote_listing_and_caches_it(env):
    env["s3"].make_bucket("other-data")
    assert complete("mount-bucket ") == "plain,other-data\nplain,teamspace-lrm\n"
    assert complete("mount-bucket --remote s3_remote_private te") == "plain,teamspace-lrm\n"
    cached = json.loads(cache_file().read_text())
    assert cached["buckets"] == ["other-data", "teamspace-lrm"]
    assert os.stat(cache_file().parent).st_mode & 0o777 == 0o700
    # Within the TTL the cache answers: a bucket created now is not listed yet.
    env["s3"].make_bucket("newer")
    assert complete("mount-bucket ") == "plain,other-data\nplain,teamspace-lrm\n"


def test_stale_cache_is_refreshed(env):
    env["s3"].make_bucket("other-data")
    path = cache_file()
    path.parent.mkdir(parents=True, mode=0o700)
    old = time.time() - completion.CACHE_TTL - 10
    path.write_text(json.dumps({"buckets": ["gone"], "listed_at": old, "tried_at": old}))
    assert complete("mount-bucket ") == "plain,other-data\nplain,teamspace-lrm\n"


def test_unreachable_endpoint_falls_back_fast(env):
    """A hung server: the listing gives up within LIST_TIMEOUT, the TAB offers the stale cache
    plus the mounted buckets, and the next TABs do not wait again."""
    fake_state("mounted-one")
    path = cache_file()
    path.parent.mkdir(parents=True, mode=0o700)
    old = time.time() - completion.CACHE_TTL - 10
    path.write_text(json.dumps({"buckets": ["cached-one"], "listed_at": old, "tried_at": old}))
    env["s3"].pause()
    try:
        start = time.monotonic()
        assert complete("mount-bucket ") == "plain,cached-one\nplain,mounted-one\n"
        first = time.monotonic() - start
        tried = json.loads(path.read_text())["tried_at"]
        assert complete("mount-bucket c") == "plain,cached-one\n"
    finally:
        env["s3"].resume()
    assert first < completion.LIST_TIMEOUT + 5, first  # a safety bound: it gave up, no hang
    cached = json.loads(path.read_text())
    assert cached["listed_at"] == pytest.approx(old)  # the failed listing kept the old list
    assert tried > old + completion.CACHE_TTL  # the first TAB tried, and recorded when
    assert cached["tried_at"] == tried  # the second TAB did not try again


def test_unknown_remote_lists_nothing_and_writes_nothing(env):
    fake_state("teamspace-lrm")
    assert complete("mount-bucket --remote nope ") == "plain,teamspace-lrm\n"
    assert not cache_file("nope").exists()
    assert completion.cache_path("../x") is None


def test_unsafe_runtime_dir_gets_no_cache_file(env):
    runtime = layout.ensure_private_dir(layout.runtime_dir())
    runtime.chmod(0o755)
    try:
        assert complete("mount-bucket te") == "plain,teamspace-lrm\n"
        assert not (runtime / "buckets").exists()
    finally:
        runtime.chmod(0o700)


def test_unmount_tab_lists_no_remote(env):
    """unmount-bucket's TAB answers from the state files and the mount table alone: no rclone,
    no network (so it is fast; bench/shell_results.md has the numbers)."""
    fake_state("teamspace-lrm")
    env["s3"].make_bucket("not-mounted-one")
    assert complete("unmount-bucket ") == "plain,teamspace-lrm\n"
    assert complete("unmount-bucket te") == "plain,teamspace-lrm\n"
    assert not cache_file().exists()  # no listing was even tried


# ---------------------------------------------------------------------------- completions/


def test_committed_completions_match_the_commands():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-completions"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bash_file_is_what_click_prints(env):
    """The generator runs the same protocol as `_MOUNT_BUCKET_COMPLETE=bash_source mount-bucket`."""
    for prog in ("mount-bucket", "unmount-bucket"):
        var = "_" + prog.replace("-", "_").upper() + "_COMPLETE"
        printed = subprocess.run([bin_path(prog)], env={**os.environ, var: "bash_source"},
                                 capture_output=True, text=True, check=True, timeout=60).stdout
        committed = (ROOT / "completions" / f"{prog}.bash").read_text()
        assert committed.split("\n", 2)[2] == printed.rstrip("\n") + "\n"  # after 2 header lines
