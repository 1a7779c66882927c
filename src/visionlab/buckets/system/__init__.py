"""One module per outside system; each owns its details (commands, files, output formats), and
the layers above call it, never reaching inside.

    rclone/      rclone: binary, commands, rc API, log (a package with one face)
    rcconf       rclone.conf: where rclone reads it, its remotes, the two seeded ones
    credentials  the credential rules for an env_auth S3 remote
    fuse         FUSE on this OS: usable or not, unmounting
    mounttable   the OS mount table, a liveness probe, bind mounts, hard-link trees
    procs        processes: alive, what they are, who holds a path open
    slurm        SLURM: the job and step this process runs in
    platform     where we run (Lightning Studio, SLURM, macOS, Linux, a GPU)
    runner       the one way an external command is run

May import: records, errors (and each other).
"""
