"""A process under a mount: the `-- CMD` wrapper, the drain at a program's exit (the Python
API), and the release of its hold when it ends.

    wrapper     `mount-bucket B -- CMD`: mount, run CMD, pass signals on, drain, exit with its status
    exitdrain   a program that mounted through the API does not exit before its writes reached S3
    release     a hold released at its end: sync, drop the hold, unmount a job's mount nobody holds

May import: mounts, staging, uploads, health, system, records, errors.
"""
