"""Is a recorded mount alive: it answers a stat in time and its recorded rclone still runs;
and which remote a live mount serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..records import state
from ..system import mounttable, procs

if TYPE_CHECKING:
    from ..records import layout

PROBE_TIMEOUT = 2.0


def answers(paths: layout.BucketPaths, st: Optional[state.MountState],
            probed: Optional[tuple] = None) -> tuple:
    """(alive, reason): the mount answers a stat in time and its recorded rclone still runs."""
    alive, reason = probed or mounttable.probe(str(paths.mount_point), PROBE_TIMEOUT)
    if alive and st and st.pid and not procs.is_alive(st.pid):
        return False, f"rclone (pid {st.pid}) is gone"
    return alive, reason


def still_serving(paths: layout.BucketPaths, st: Optional[state.MountState]) -> bool:
    """The recorded rclone still runs and is ours (by its command line). A mount that did not
    answer the quick probe while it runs is slow (a loaded machine) or hung, never dead: only
    rclone itself (its rc) can say what is not yet uploaded."""
    from ..system import rclone

    return bool(st and st.pid and rclone.is_mount_process(st.pid, st.remote, paths.bucket,
                                                          str(paths.mount_point)))


def is_live(paths: layout.BucketPaths, st: Optional[state.MountState] = None,
            probed: Optional[tuple] = None) -> bool:
    """In the mount table, answering, and served by its recorded rclone. `st` is read from the
    state file when not given."""
    if not mounttable.find(str(paths.mount_point)):
        return False
    if st is None:
        st = state.load(paths.state)
    return answers(paths, st, probed)[0]


def mounted_remote(entry: mounttable.MountEntry, st: Optional[state.MountState]) -> str:
    """The remote a live mount came from: its state file says; else rclone reads the source."""
    if st:
        return st.remote
    from ..system import rclone

    return rclone.remote_of(entry.source)
