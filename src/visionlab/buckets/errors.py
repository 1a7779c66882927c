"""Errors: a one-line message saying what went wrong, and a hint saying what to do."""

from __future__ import annotations


class BucketsError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class InvalidBucketName(BucketsError):
    exit_code = 2


class UnsafePath(BucketsError):
    """A path we would use is controlled by someone else, or is not what it should be."""


class LinkConflict(BucketsError):
    """Something that is not our symlink already sits where the symlink would go."""


class RcloneNotFound(BucketsError):
    pass


class FuseUnavailable(BucketsError):
    pass


class RemoteNotFound(BucketsError):
    pass


class CredentialsMissing(BucketsError):
    pass


class AccessDenied(BucketsError):
    pass


class BucketNotFound(BucketsError):
    pass


class EndpointUnreachable(BucketsError):
    pass


class RemoteMismatch(BucketsError):
    """The bucket is already mounted, but from another remote."""


class MountFailed(BucketsError):
    pass


class MountDiesWithStep(BucketsError):
    """A plain mount inside an srun step would die with the step."""


class NotMounted(BucketsError):
    exit_code = 3


class BusyMount(BucketsError):
    pass


class PendingUploads(BucketsError):
    """Uploads did not drain before the deadline; the mount was left in place."""


class UploadsFailing(BucketsError):
    """Every pending upload keeps failing (rclone's error in the message)."""


class LockTimeout(BucketsError):
    pass


class CommandTimeout(BucketsError):
    pass
