"""Setting a machine up and checking it: what install.sh hands over to `visionlab-buckets`,
`mount-bucket --doctor`, and the values of shell completion.

    machine     the two remotes in rclone.conf, where credentials come from, the facts install.sh reads
    doctor      one line per check (ok / warn / fail) with a hint
    completion  values for TAB: buckets of a remote (cached), mounted buckets, remotes

May import: mounts, staging, uploads, health, system, records, errors.
"""
