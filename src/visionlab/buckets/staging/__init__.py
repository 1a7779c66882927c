"""Staged copies (`mount-bucket B --stage`): the bucket (or one prefix of it) copied to
node-local disk in the background while the mount serves reads, then every link of the bucket
moved to the copy at once.

One copy per node and user, shared by every mount of the bucket on the node (this user's own,
and each SLURM job's or step's): concurrent --stage calls start one stager (the stage lock);
when the copy is ready, the links of every read-only mount of the bucket move to it (each
under its mount's lock); a waiter (--wait) makes sure its own links are on it, and takes over a
copy whose stager died (its job ended) by resuming the work directory.

The mount flow calls this face at one seam: `prepare` before anything is created (listing,
free space), `may_share` (may the link be shared), `attach` once the mount is there, `wait` for
--wait; unmount calls `stop_for`, `--drop-stage` calls `drop`, --status reads `load`.

    record    stage.json (StageState) and the finished copies; the stage dir's layout
    plan      the listing and the free-space check (bytes, inodes), before anything is created
    listing   the listing on disk (NDJSON, sorted): written as rclone lists, merged, read back
    relink    links between the mounts and the copy
    start     attach, start the stager, take over, wait
    removal   stop a copy in progress, remove copies, drop the stage dir
    stager    the background process itself (`python -m visionlab.buckets.staging.stager`)

May import: health, system, records, errors.
"""

from .plan import Plan, prepare
from .record import StageState, load
from .relink import may_share
from .removal import drop, stop_for
from .start import attach, wait

__all__ = ["Plan", "StageState", "attach", "drop", "load", "may_share", "prepare", "stop_for",
           "wait"]
