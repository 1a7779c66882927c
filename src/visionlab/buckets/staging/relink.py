"""Moving links between the mounts and the node's copy: may a staged mount share a link, every
read-only mount's links onto a new copy (each one atomic rename, under the mount's lock), back
to their mounts before a copy goes away, and the stage dir's `mount` link kept on a live mount."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

from ..errors import BucketsError, LockTimeout
from ..records import layout, links, state
from ..records.lock import bucket_lock
from ..system import mounttable, procs
from .record import scopes

SWITCH_LOCK_TIMEOUT = 30.0  # the stager waits this long for a mount's lock to move its links


def _read_only(profile: str) -> bool:
    from ..records import profiles

    try:
        return profiles.get(profile).read_only
    except BucketsError:
        return False


def may_share(link: Path, mine: layout.BucketPaths) -> bool:
    """May a staged mount use `link` that another mount of ours has? Yes when it points at the
    node's copy (it outlives every job), or at another live read-only mount of this bucket (it
    moves to the copy once ready, and to this mount if that one goes first). "Live" here is
    in the mount table with its rclone running, not a stat probe: under load a probe can time
    out here and answer in time for the caller's next check, which would then refuse the link."""
    target = links.target_of(link)
    if target and target == str(layout.stage_paths(mine.bucket).current):
        return True
    for scope in scopes():
        other = layout.paths_for(mine.bucket, scope)
        if scope != mine.scope and target == str(other.mount_point):
            st = state.load(other.state)
            return bool(st and _read_only(st.profile) and procs.is_alive(st.pid)
                        and mounttable.find(target))
    return False


def move_links(mount: layout.BucketPaths, current: Path,
               timeout: float = SWITCH_LOCK_TIMEOUT) -> None:
    """Under the mount's lock: each link of a read-only mount that points at a mount of ours
    (this one, or another job's it shares) moves to `current` (one atomic rename), and the mount
    is marked staged. A recorded link that has vanished is made again only when our code took
    it away (another mount's end: `links.was_taken`); one the user removed stays removed and
    leaves the state file."""
    with bucket_lock(mount.lock, timeout):
        st = state.load(mount.state)
        if not st or not _read_only(st.profile):
            return
        ours = {str(layout.paths_for(mount.bucket, scope).mount_point) for scope in scopes()}
        taken = layout.taken_links()
        kept = []
        for link in map(Path, st.symlinks):
            target = links.target_of(link)
            if target in ours:
                links.replace(link, current)
            elif not os.path.lexists(link):
                again = links.was_taken(taken, link) and _make_again(link, current)
                links.forget_taken(taken, link)
                if not again:
                    continue  # the user removed it (or its folder): not ours to bring back
            kept.append(str(link))
        if st.staged != str(current) or kept != list(st.symlinks):
            state.save(mount.state, st._replace(staged=str(current), symlinks=kept))


def _make_again(link: Path, current: Path) -> bool:
    if not link.parent.is_dir():
        return False
    try:
        os.symlink(current, link)
    except FileExistsError:
        return links.target_of(link) == str(current)
    except OSError:
        return False
    return True


def links_back(mount: layout.BucketPaths, current: Path) -> None:
    """Under the mount's lock: its links on `current` move back to the mount (one atomic
    rename each), before the copy goes away."""
    with bucket_lock(mount.lock, SWITCH_LOCK_TIMEOUT):
        st = state.load(mount.state)
        if not st or not st.staged:
            return
        for link in st.symlinks:
            links.retarget(Path(link), str(current), mount.mount_point)
        state.save(mount.state, st._replace(staged=""))


def switch_all(bucket: str, paths: layout.StagePaths, new_copy: Path) -> None:
    """Point `current` at the new copy (one atomic rename), then the links of every read-only
    mount of the bucket on this node, in every scope, at `current` (each one atomic): no link is
    ever missing or half-copied. A mount busy beyond the timeout moves its links later (its
    waiter, or its next --stage)."""
    links.replace(paths.current, new_copy.name)
    for scope in scopes():
        mount = layout.paths_for(bucket, scope)
        if os.path.exists(mount.state):
            with contextlib.suppress(LockTimeout, OSError):
                move_links(mount, paths.current)


def keep_mount_link(bucket: str, prefer: Optional[layout.BucketPaths] = None) -> None:
    """Keep the stage dir's `mount` link (what a prefix copy's other entries lead through) on a
    live mount of the bucket: `prefer`, else any scope's. Called when a mount joins and when
    one goes away; a mount that answers is left as it is."""
    from ..health.liveness import is_live

    paths = layout.stage_paths(bucket)
    target = links.target_of(paths.mount)
    if not target and prefer is None:
        return  # no prefix copy made yet: nothing leads through it
    candidates = [prefer] if prefer else []
    candidates += [layout.paths_for(bucket, scope) for scope in scopes()]
    for mount in candidates:
        if target == str(mount.mount_point) and is_live(mount):
            return
    for mount in candidates:
        if os.path.exists(mount.state) and is_live(mount):
            links.replace(paths.mount, mount.mount_point)
            return
