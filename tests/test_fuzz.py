"""Scenario 10: fuzzed bucket names, s3:// forms and root paths, through the API and the CLI.

Every input either mounts the valid bucket or raises a BucketsError with a one-line message; the
CLI never raises (an uncaught exception is a traceback for the user); nothing is created outside
the runtime dir and the root. Roots are kept inside the test's sandbox (a root of '/' or '..' would
put a real link outside it), and the examples are derandomized so CI runs the same ones each time;
crashes found once are pinned with @example.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from click.testing import CliRunner
from conftest import BUCKET, files_under, needs_fuse
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from visionlab.buckets import BucketsError, cli, mount_bucket

pytestmark = needs_fuse

names = st.one_of(
    st.sampled_from([BUCKET, f"s3://{BUCKET}", f"s3://{BUCKET}/", f"{BUCKET}//", f"S3://{BUCKET}",
                     "no-such-bucket", "../../etc", "a/b", "Bad_Bucket!", "", "s3://", "..",
                     f"{BUCKET}/sub", "xn--bucket", "1.2.3.4"]),
    st.text(max_size=70),
    st.from_regex(r"(s3://)?[a-z0-9.\-]{1,64}/?", fullmatch=True),
)
roots = st.one_of(
    st.none(),
    st.sampled_from(["data", "./data", "a/b/c", "~/proj", ".", "weird name", "dots..", "-x"]),
    st.text(alphabet="abc._- /", min_size=1, max_size=20),
)



def inside(sandbox: Path, root: Optional[str]) -> bool:
    """Would a link under `root` stay inside the sandbox? (None: the default root, in HOME.)"""
    if root is None or "\0" in root or root == "":
        return True  # the default root, or rejected before anything is created
    where = os.path.realpath(os.path.abspath(os.path.expanduser(root)))
    return where == str(sandbox) or where.startswith(str(sandbox) + os.sep)


def roots_in(args: list[str]) -> list[str]:
    """The --root values a CLI argv passes."""
    found = [a.split("=", 1)[1] for a in args if a.startswith("--root=")]
    found += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--root"]
    return found


FUZZ = settings(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])


@settings(FUZZ, max_examples=60)
@given(name=names, root=roots)
@example(name=BUCKET, root="\x00")
@example(name=BUCKET, root="a/../b")
def test_api_fuzz(env, name, root):
    sandbox = env["tmp"]  # holds HOME and the cwd; the runtime dir lives elsewhere
    assume(inside(sandbox, root))
    before = files_under(sandbox)
    try:
        link = mount_bucket(name, root_dir=root)
    except BucketsError as exc:
        assert "\n" not in str(exc) and exc.message
        assert files_under(sandbox) == before  # an error creates nothing
    else:
        assert link.name == BUCKET and (link / "hello.txt").exists()
        assert str(link).startswith(str(sandbox)), link
        # The only things created: the link and the directories leading to it.
        for rel in files_under(sandbox) - before:
            assert str(link).startswith(str(sandbox / rel)), rel


@settings(FUZZ, max_examples=40)
@given(args=st.lists(st.one_of(names, st.sampled_from(
    ["--root", "--remote", "--list", "--status", "--json", "-q", "--profile", "--doctor"])),
    max_size=4))
@example(args=["--root", "\x00"])  # crashed with ValueError('embedded null byte') in click.Path
@example(args=["--root", "\x00", BUCKET])
def test_cli_fuzz_never_raises(env, args):
    if "--doctor" in args:
        args = [a for a in args if a != "--doctor"]
    assume(all(inside(env["tmp"], r) for r in roots_in(args)))
    result = CliRunner().invoke(cli.mount_cmd, args)
    # CliRunner catches what the command raises: an uncaught exception shows only here.
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        (repr(result.exception), result.output)
    if result.exit_code not in (0, 3, 4):
        errors = [ln for ln in result.output.splitlines() if ln.startswith("error")
                  or ln.startswith("Error")]
        assert len(errors) == 1, result.output

