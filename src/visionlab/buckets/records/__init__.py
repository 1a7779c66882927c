"""What this tool records and where: paths, state files, locks, links, bucket names, profiles.

    layout     where things live, and creating the private directories safely
    state      the per-bucket state file
    lock       one flock per bucket
    links      symlinks <root>/<bucket> -> mount point, atomic, never replacing anything
    names      bucket names: accept what a user types, refuse what S3 would refuse
    profiles   mount profiles: named sets of rclone flags

May import: errors (and each other).
"""
