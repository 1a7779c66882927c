"""A process's hold released at its end (the `-- CMD` wrapper, the API at exit): an unmount that
left files never uploaded is reported and fails the release, as `unmount-bucket` fails.

A unit test of Hold.release alone: the flows it calls (sync, unmount) are replaced by what they
return when a file was closed after the last sync (the real flows are tested in test_unmount.py,
test_promises.py and on real SLURM in test_slurm*.py)."""

from __future__ import annotations

from visionlab.buckets.jobs import release
from visionlab.buckets.mounts import mount, unmount
from visionlab.buckets.records import layout


def test_release_fails_and_names_files_its_unmount_left(env, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "801")
    paths = layout.paths_for("results-bkt", "801")
    made = mount.MountResult(scope="job 801", bucket="results-bkt", remote="s3_remote",
                              link=env["tmp"] / "results-bkt", mount_point=paths.mount_point,
                              profile="default", newly_mounted=True)
    left = unmount.UnmountResult(bucket="results-bkt", mount_point=str(paths.mount_point),
                                remote="s3_remote", was_stale=False, lazy=False,
                                removed_links=[], stranded=["ckpt.pt"])
    monkeypatch.setattr(unmount, "sync", lambda *args, **kwargs: ["results-bkt"])
    monkeypatch.setattr(unmount, "unmount", lambda *args, **kwargs: left)
    said: list[str] = []
    assert release.Hold(made).release(5, said.append) is False
    assert len(said) == 1 and said[0].startswith(
        "error: results-bkt: 1 file(s) never uploaded: ckpt.pt"), said
