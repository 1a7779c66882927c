"""Uploads through a mount: what is pending or failing, waiting until it all reached S3 (the
drain), what a dead mount left unsaved, and the deadline line on SIGTERM.

    pending     what is not on S3 yet, and waiting until nothing is (sync, unmount, exit)
    deadline    on SIGTERM: the bytes still to upload, the rate, and the time left before SIGKILL

May import: health, system, records, errors.
"""
