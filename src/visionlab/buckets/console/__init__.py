"""What the commands print (no click here: cli.py echoes what these return or write).

    report     the lines of --list, --status, a mount, an unmount, a --doctor check, and the
               note that a batch script's mount ends with its job
    progress   the status line on stderr: a staged copy's progress, uploads being waited for

May import: mounts, staging, uploads, health, system, records, errors.
"""
