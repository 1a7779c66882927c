"""What the commands print, as lines: the --list table, a --status report, a mount's line, an
unmount's line, a --doctor check, the note that a batch script's mount ends with its job.
Plain strings: cli.py echoes them (it alone imports click)."""

from __future__ import annotations

from typing import Optional


def list_lines(mounts: list) -> list[str]:
    """`mount-bucket --list`: a table of MountInfo, then each mount's uploads and stage notes."""
    if not mounts:
        return ["no buckets mounted"]
    rows = [("BUCKET", "STATE", "REMOTE", "PID", "MOUNT POINT", "SYMLINKS")]
    for m in mounts:
        rows.append((m.bucket, m.state, m.remote or "-", str(m.pid or "-"), m.mount_point,
                     ", ".join(m.symlinks) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
    for m in mounts:
        for note in (m.uploads_note, m.stage_note):
            if note:
                lines.append(f"{m.bucket}: {note}")
    return lines


def status_lines(info) -> list[str]:
    """`mount-bucket --status B`: one MountInfo."""
    if info.state == "not-mounted":
        lines = [f"{info.bucket}: not mounted"]
        if info.uploads_note:  # files an ended SLURM job left unsaved on this node
            lines.append(f"  {info.uploads_note}")
        return lines
    where = f"{info.remote}:{info.bucket} at {info.mount_point}"
    extra = f", pid {info.pid}" if info.pid else ""
    extra += f", profile {info.profile}" if info.profile else ""
    reason = f" ({info.reason})" if info.reason else ""
    lines = [f"{info.bucket}: {info.state}{reason} — {where}{extra}"]
    lines += [f"  link: {link}" for link in info.symlinks]
    lines += [f"  {note}" for note in (info.uploads_note, info.stage_note) if note]
    if info.state == "stale":
        lines.append(f"  heal it with 'mount-bucket {info.bucket}', "
                     f"or clean it with 'unmount-bucket {info.bucket}'")
    return lines


def mounted_line(result) -> str:
    """A plain `mount-bucket B`: what was done, where, and the link (a MountResult)."""
    verb = ("remounted (was stale)" if result.healed else
            "mounted" if result.newly_mounted else "already mounted")
    return (f"{verb} {result.remote}:{result.mount_point.name} at {result.mount_point}"
            f"; link {result.link}")


def unmount_line(result) -> str:
    """One unmount (an UnmountResult): what was done, the links removed, files left unsaved."""
    what = "cleaned up stale mount" if result.was_stale else (
        "lazily unmounted" if result.lazy else "unmounted")
    links = f"; removed {len(result.removed_links)} link(s)" if result.removed_links else ""
    kept = (f"\n  {len(result.stranded)} file(s) never uploaded are kept in the cache on this "
            f"node: 'mount-bucket {result.bucket}' uploads them" if result.stranded else "")
    return f"{what} {result.remote}:{result.bucket} from {result.mount_point}{links}{kept}"


def check_line(check) -> str:
    """One `--doctor` check: level, name, detail, and the hint."""
    hint = f" — {check.hint}" if check.hint else ""
    return f"{check.level:<5} {check.name}: {check.detail}{hint}"


def job_end_note(step, result) -> Optional[str]:
    """Inside a SLURM batch script (not a step): how to end the job without losing writes."""
    if step is None or step.is_srun_step or not result.scope:
        return None
    return (f"note: this mount ends with {step.describe()}; end the script with "
            f"'mount-bucket --sync' (or run your program as 'exec mount-bucket "
            f"{result.bucket} -- CMD') so every write reaches S3 first")
