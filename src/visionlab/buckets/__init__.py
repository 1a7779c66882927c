"""visionlab-buckets: S3 buckets as folders, one rclone FUSE mount per bucket, many symlinks.

Importing this package loads only the standard library.
"""

from .errors import BucketsError

# The mount machinery is imported on first use (PEP 562), so `import visionlab.buckets` and the
# platform helpers stay cheap for code that only asks where it runs.
_LAZY = {
    "MountInfo": "mounts.mountinfo",
    "is_mounted": "mounts.mountinfo",
    "list_mounts": "mounts.mountinfo",
    "mount_bucket": "api",
    "status": "mounts.mountinfo",
    "sync_bucket": "api",
    "unmount_bucket": "api",
    "get_platform_name": "system.platform",
    "has_gpu": "system.platform",
    "is_lightning_studio": "system.platform",
    "is_linux": "system.platform",
    "is_macos": "system.platform",
    "is_slurm": "system.platform",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "BucketsError",
    "MountInfo",
    "get_platform_name",
    "has_gpu",
    "is_lightning_studio",
    "is_linux",
    "is_macos",
    "is_mounted",
    "is_slurm",
    "list_mounts",
    "mount_bucket",
    "status",
    "sync_bucket",
    "unmount_bucket",
]
