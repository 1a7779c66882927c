"""Everything about rclone, behind one face: callers use `rclone.X` and never reach inside.

    _binary   where the binary is, its version
    _source   the `remote:bucket` source (what rclone mounts, what the mount table shows)
    _argv     the commands: the reachability probe, listings, `rclone mount`, `rclone sync`
    _rc       the remote-control API over a mount's (or a copy's) unix socket
    _log      reading what rclone writes: what its errors mean, its log, its VFS cache records

Other modules never build rclone argv, parse rclone output or name an rc method (the
private_modules contract in pyproject.toml keeps the parts private to this package).
"""

from ._argv import (
    MountSpec,
    ObjectInfo,
    is_mount_process,
    list_buckets,
    list_objects,
    mount_argv,
    probe_bucket,
    start_mount,
    sync_argv,
    write_test,
)
from ._binary import MIN_VERSION, find_rclone, format_version, require_version, version
from ._log import (
    classify,
    copied_files,
    failure_cause,
    last_error_line,
    log_error,
    log_offset,
    short,
    summarize_error,
    unsaved_files,
    upload_failures,
)
from ._rc import (
    CopyStats,
    QueueItem,
    UploadRate,
    Uploads,
    copy_stats,
    expedite_uploads,
    rc_answers,
    upload_queue,
    upload_rate,
    uploads,
    wait_rc,
)
from ._source import remote_of, source

__all__ = [
    "MIN_VERSION", "CopyStats", "MountSpec", "ObjectInfo", "QueueItem", "UploadRate", "Uploads",
    "classify", "copied_files", "copy_stats", "expedite_uploads", "failure_cause", "find_rclone",
    "format_version", "is_mount_process", "last_error_line", "list_buckets", "list_objects",
    "log_error", "log_offset", "mount_argv", "probe_bucket", "rc_answers", "remote_of",
    "require_version", "short", "source", "start_mount", "summarize_error", "sync_argv",
    "unsaved_files", "upload_failures", "upload_queue", "upload_rate", "uploads", "version",
    "wait_rc", "write_test",
]
