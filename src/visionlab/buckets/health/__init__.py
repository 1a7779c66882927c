"""Is a recorded mount alive: its mount answers in time and its recorded rclone still runs.
Below the flows and staging, which both ask it; above the systems it reads.

    liveness    answers / still_serving / is_live / mounted_remote

May import: system, records, errors.
"""
