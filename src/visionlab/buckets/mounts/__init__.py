"""The flows: mount, sync, unmount, status, and the parts they stand on.

    mount       mount a bucket (or reuse, or heal, its mount) and link it
    unmount     sync, unmount one bucket, --all, --stale
    mountinfo   status / is_mounted / list_mounts: read-only
    scopes      which tree (the user's, a SLURM job's, a step's) a mount lives in
    holds       processes running under a mount (one file each)
    teardown    the ways a mount goes away, and the dead-mount clean-up

No face here: callers import the module they use, so --status and --list (mountinfo) never load
the mount and unmount flows.

May import: staging, uploads, health, system, records, errors (lower floors only).
"""
