"""Scenario 10: fuzzed bucket names, s3:// forms and root paths, through the API and the CLI.

Every input either mounts the valid bucket or raises a BucketsError with a one-line message; the
CLI never prints a traceback; nothing is created outside the runtime dir and the root.
"""

from __future__ import annotations

from click.testing import CliRunner
from conftest import BUCKET, files_under, needs_fuse
from hypothesis import HealthCheck, given, settings
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


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=names, root=roots)
def test_api_fuzz(env, name, root):
    sandbox = env["tmp"]  # holds HOME and the cwd; the runtime dir lives elsewhere
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


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=st.lists(st.one_of(names, st.sampled_from(
    ["--root", "--remote", "--list", "--status", "--json", "-q", "--profile", "--doctor"])),
    max_size=4))
def test_cli_fuzz_never_tracebacks(env, args):
    if "--doctor" in args:
        args = [a for a in args if a != "--doctor"]
    result = CliRunner().invoke(cli.mount_cmd, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    if result.exit_code not in (0, 3, 4):
        errors = [ln for ln in result.output.splitlines() if ln.startswith("error")
                  or ln.startswith("Error")]
        assert len(errors) == 1, result.output

