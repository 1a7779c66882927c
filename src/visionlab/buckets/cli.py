"""The command-line tools `mount-bucket` and `unmount-bucket` (the only module importing click).

Exit codes: 0 ok; 1 error; 2 bad usage or bucket name; 3 not mounted; 4 mounted but stale.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn, Optional

import click

from . import __version__
from .console import report
from .console.progress import UploadProgress, stage_progress
from .errors import BucketsError
from .system.rcconf import DEFAULT_REMOTE

# Kept in step with profiles.PROFILES by a test; listed here so start-up need not import it.
PROFILE_NAMES = ("default", "dataset", "stream")
EXIT_NOT_MOUNTED = 3
EXIT_STALE = 4
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(exc: BucketsError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


class _RootPath(click.Path):
    """A directory path; a NUL byte is a usage error, not a crash in os.stat."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "\0" in value:
            self.fail(f"{value!r} contains a NUL byte.", param, ctx)
        return super().convert(value, param, ctx)


def _complete_bucket(ctx: click.Context, param: click.Parameter, incomplete: str):
    remote = ctx.params.get("remote") or DEFAULT_REMOTE
    from .setup import completion

    return completion.remote_buckets(remote, incomplete)


def _complete_mounted(ctx: click.Context, param: click.Parameter, incomplete: str):
    from .setup import completion

    return completion.mounted_buckets(incomplete)


def _complete_remote(ctx: click.Context, param: click.Parameter, incomplete: str):
    from .setup import completion

    return completion.remotes(incomplete)


def _run(func, *args, **kwargs):
    """Call into the core; BucketsError becomes one `error:` line, never a traceback."""
    try:
        return func(*args, **kwargs)
    except BucketsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if os.environ.get("VISIONLAB_BUCKETS_DEBUG"):
            raise
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"error: {exc.strerror or exc}{where} — run again with "
                   "VISIONLAB_BUCKETS_DEBUG=1 for details", err=True)
        sys.exit(1)


# ---------------------------------------------------------------------------- mount-bucket


def _print_list(as_json: bool) -> None:
    from .mounts.mountinfo import list_mounts

    mounts = _run(list_mounts)
    if as_json:
        import json

        click.echo(json.dumps([m.to_dict() for m in mounts], indent=2))
        return
    for line in report.list_lines(mounts):
        click.echo(line)


def _print_status(bucket: str, as_json: bool, quiet: bool) -> NoReturn:
    from .mounts.mountinfo import status

    info = _run(status, bucket)
    code = {"alive": 0, "not-mounted": EXIT_NOT_MOUNTED, "stale": EXIT_STALE}[info.state]
    if as_json:
        import json

        click.echo(json.dumps(info.to_dict(), indent=2))
    elif not quiet:
        for line in report.status_lines(info):
            click.echo(line)
    sys.exit(code)


def _doctor(remote: str, bucket: Optional[str], write: bool) -> NoReturn:
    from .setup.doctor import run_checks

    checks = _run(run_checks, remote, bucket, lambda check: click.echo(report.check_line(check)),
                  write)
    sys.exit(1 if any(c.level == "fail" for c in checks) else 0)


@click.command(context_settings=_CONTEXT)
@click.argument("bucket", required=False, shell_complete=_complete_bucket)
@click.option("--root", metavar="DIR", type=_RootPath(file_okay=False),
              help="Directory for the symlink <DIR>/<bucket> "
                   "[default: ~/s3_buckets, or /tmp/$USER/s3_buckets in a SLURM job].")
@click.option("--remote", default=DEFAULT_REMOTE, show_default=True, metavar="NAME",
              shell_complete=_complete_remote, help="rclone remote to mount from.")
@click.option("--profile", type=click.Choice(PROFILE_NAMES), metavar="NAME",
              help="Mount profile: 'default' (read-write, writes uploaded 5 s after close), "
                   "'dataset' (read-only, whole-file cache on local disk for data read many "
                   "times), 'stream' (read-only, no cache, parallel reads: data read once; "
                   "rclone >= 1.68).")
@click.option("--list", "list_", is_flag=True, help="List this user's mounts and exit.")
@click.option("--status", "status_", is_flag=True,
              help="Report BUCKET's mount: exit 0 alive, 3 not mounted, 4 stale.")
@click.option("--doctor", is_flag=True,
              help="Check rclone, FUSE, config, credentials, endpoint and runtime dir.")
@click.option("--sync", "sync_", is_flag=True,
              help="Wait until every upload queued so far reached S3 (BUCKET, or all mounts); "
                   "exit 1 with rclone's error when uploads keep failing.")
@click.option("--timeout", type=click.FloatRange(min=0), default=600, show_default=True,
              metavar="SECONDS", help="With --sync or -- CMD: how long to wait for uploads.")
@click.option("--stage", is_flag=True,
              help="Mount read-only and copy the bucket to node-local disk in the background; "
                   "its links move to the copy once complete and verified.")
@click.option("--stage-prefix", metavar="PREFIX", default="",
              help="With --stage: copy only this prefix (e.g. train/).")
@click.option("--wait", is_flag=True,
              help="With --stage: return (or start CMD) once the link is on the complete copy.")
@click.option("--write", is_flag=True,
              help="With --doctor BUCKET: also put and delete one small object.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: the mount (one record), or with --list/--status.")
@click.option("--print-link", is_flag=True,
              help="Print only the link's path (for scripts and shell functions).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.version_option(__version__, "-V", "--version", prog_name="visionlab-buckets")
def mount_cmd(bucket: Optional[str], root: Optional[str], remote: str, profile: Optional[str],
              list_: bool, status_: bool, doctor: bool, sync_: bool, timeout: float, stage: bool,
              stage_prefix: str, wait: bool, write: bool, as_json: bool, print_link: bool,
              quiet: bool) -> None:
    """Mount the S3 bucket BUCKET (or s3://BUCKET) and link it at <root>/BUCKET.

    One rclone mount per bucket lives at /tmp/$USER/rclone/BUCKET; each call adds a symlink.
    Inside a SLURM job the mount is the job's own and ends with it (see the README's "On SLURM").

    mount-bucket BUCKET [OPTIONS] -- CMD [ARGS...] runs CMD with the bucket mounted, passes
    SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2 on to it, waits for it, waits until its writes
    reached S3, and exits with CMD's status. With --stage --wait, CMD starts once the link is
    on the node's complete local copy.
    """
    modes = [name for name, on in (("--list", list_), ("--status", status_),
                                   ("--doctor", doctor), ("--sync", sync_)) if on]
    if len(modes) > 1:
        raise click.UsageError(f"{' and '.join(modes)} cannot be combined")
    if print_link and (modes or as_json):
        raise click.UsageError("--print-link goes with a plain mount, not with "
                               f"{'--json' if as_json else modes[0]}")
    if write and not (doctor and bucket):
        raise click.UsageError("--write goes with --doctor BUCKET")
    if doctor:
        _doctor(remote, bucket, write)
    if sync_:
        _sync(bucket, timeout, quiet)
        return
    if list_:
        if bucket:
            raise click.UsageError("--list takes no BUCKET")
        _print_list(as_json)
        return
    if bucket is None:
        raise click.UsageError("missing BUCKET (or use --list / --doctor)")
    if status_:
        _print_status(bucket, as_json, quiet)
    from .mounts.mount import mount

    command = (click.get_current_context().obj or {}).get("command")
    if (stage_prefix or wait) and not stage:
        raise click.UsageError("--stage-prefix and --wait go with --stage")
    if command:
        if modes or as_json or print_link:
            raise click.UsageError("'-- CMD' goes with a plain mount (or --stage), not with "
                                   "other modes")
        _run_under_mount(bucket, command, root, remote, profile, timeout, quiet,
                         (stage, wait, stage_prefix))
    result = _run(mount, bucket, root, remote, profile, False, stage, stage_prefix)
    if not quiet and not as_json and not print_link:
        _warn_job_end(result)
    _print_mounted(result, as_json, print_link, quiet)
    if stage and wait:
        _wait_staged(result.bucket, quiet or as_json or print_link)


def _print_mounted(result, as_json: bool, print_link: bool, quiet: bool) -> None:
    if as_json:
        import json

        click.echo(json.dumps(result.to_dict(), indent=2))
    elif print_link:
        click.echo(str(result.link))
    elif not quiet:
        click.echo(report.mounted_line(result))


# ---------------------------------------------------------------------------- unmount-bucket


def _wait_staged(bucket: str, quiet: bool) -> None:
    """--stage --wait: a progress bar on a terminal (files, bytes, rate, ETA), plain lines else."""
    from .mounts.mount import wait_staged

    line, progress = stage_progress(bucket, quiet, _to_stderr)
    try:
        info = _run(wait_staged, bucket, progress)
    finally:
        line.done()
    if not quiet:
        click.echo(f"{bucket}: {info.stage_note}")


def _warn_job_end(result) -> None:
    """Inside a SLURM batch script: say, once, how to end the job without losing writes."""
    from .system import slurm

    note = report.job_end_note(slurm.current(), result)
    if note:
        click.echo(note, err=True)


def _run_under_mount(bucket: str, command: tuple, root: Optional[str], remote: str,
                     profile: Optional[str], timeout: float, quiet: bool,
                     staging: tuple) -> NoReturn:
    """`-- CMD`; with --stage --wait, the copy's progress and its line on stderr (stdout is
    CMD's) before CMD starts."""
    from .jobs.wrapper import run_mounted

    stage, wait, prefix = staging

    def say(line: str) -> None:
        click.echo(line, err=True)

    def staged(info) -> None:
        line.done()
        if not quiet:
            click.echo(f"{info.bucket}: {info.stage_note}", err=True)

    line, progress = stage_progress(bucket, quiet, _to_stderr)
    try:
        code = _run(run_mounted, bucket, list(command), root, remote, profile, timeout, say,
                    lambda b: _upload_progress(b, quiet, "uploading"), stage, wait, prefix,
                    staged, progress)
    finally:
        line.done()
    sys.exit(code)


def _to_stderr(text: str) -> None:
    click.echo(text, err=True, nl=False)


def _upload_progress(bucket: str, quiet: bool, verb: str = "waiting for") -> UploadProgress:
    return UploadProgress(bucket, quiet, _to_stderr, verb)


def _sync(bucket: Optional[str], timeout: float, quiet: bool) -> None:
    from .mounts.unmount import sync

    reporters: list[UploadProgress] = []

    def progress(name: str) -> UploadProgress:
        reporters.append(_upload_progress(name, quiet, "uploading"))
        return reporters[-1]

    try:
        synced = _run(sync, bucket, timeout, progress)
    finally:
        for reporter in reporters:
            reporter.done()
    if not quiet:
        if synced:
            click.echo(f"synced: every upload reached S3 ({', '.join(synced)})")
        else:
            click.echo("no buckets mounted")


def _unsaved(results) -> int:
    """An unmount that left files never uploaded is no success: one error line each, exit 1."""
    from .mounts.unmount import left_unsaved

    left = [r for r in results if r is not None and not isinstance(r, Exception) and r.stranded]
    for result in left:
        click.echo(f"error: {left_unsaved(result)}", err=True)
    return 1 if left else 0


@click.command(context_settings=_CONTEXT)
@click.argument("bucket", required=False, shell_complete=_complete_mounted)
@click.option("--all", "all_", is_flag=True, help="Unmount every bucket of this user.")
@click.option("--stale", is_flag=True, help="Clean up every dead mount and orphaned rclone.")
@click.option("--force", is_flag=True,
              help="If the mount is busy, unmount lazily (after uploads drained).")
@click.option("--timeout", type=click.FloatRange(min=0), default=600, show_default=True,
              metavar="SECONDS", help="How long to wait for pending uploads.")
@click.option("--drop-stage", is_flag=True,
              help="Also remove BUCKET's staged local copy (kept as a cache otherwise).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.version_option(__version__, "-V", "--version", prog_name="visionlab-buckets")
def unmount_cmd(bucket: Optional[str], all_: bool, stale: bool, force: bool, timeout: float,
                drop_stage: bool, quiet: bool) -> None:
    """Unmount BUCKET after every pending upload reached S3, and remove its symlinks."""
    from .mounts import unmount as unmounting
    from .mounts.mountinfo import status

    if sum(map(bool, (bucket, all_, stale))) != 1:
        raise click.UsageError("give exactly one of BUCKET, --all or --stale")
    if drop_stage and not bucket:
        raise click.UsageError("--drop-stage goes with BUCKET")
    if bucket:
        mounted = not drop_stage or _run(status, bucket).state != "not-mounted"
        reporter = _upload_progress(bucket, quiet)
        try:
            result = _run(unmounting.unmount, bucket, timeout, force, reporter) if mounted else None
        finally:
            reporter.done()
        if result and not quiet:
            click.echo(report.unmount_line(result))
        if drop_stage:
            from .records.names import parse
            from .staging import drop

            dropped = _run(drop, _run(parse, bucket))
            if not quiet:
                click.echo(f"{'removed the' if dropped else 'no'} staged copy of {bucket}")
        sys.exit(_unsaved([result]))
    if stale:
        cleaned = _run(unmounting.sweep_stale)
        if not quiet:
            for result in cleaned:
                click.echo(report.unmount_line(result))
            if not cleaned:
                click.echo("no stale mounts")
        sys.exit(_unsaved(cleaned))
    results = _run(unmounting.unmount_all, timeout, force, lambda b: _upload_progress(b, quiet))
    failed = 0
    for result in results:
        if isinstance(result, BucketsError):
            failed += 1
            click.echo(f"error: {result}", err=True)
        elif not quiet:
            click.echo(report.unmount_line(result))
    if not results and not quiet:
        click.echo("no buckets mounted")
    if failed or _unsaved(results):
        sys.exit(1)


def _main(command: click.Command, prog: str, args: Optional[list[str]] = None,
          obj: Optional[dict] = None) -> NoReturn:
    """Run a command; a usage error is one line that says what to do, exit 2."""
    try:
        code = command.main(args, prog_name=prog, standalone_mode=False, obj=obj)
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()} — see '{prog} --help'", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def split_command(args: list[str]) -> tuple[list[str], list[str]]:
    """`mount-bucket [OPTIONS] BUCKET [OPTIONS] -- CMD ARGS...`: (our args, CMD). A `--` with
    no BUCKET before it (`mount-bucket -- BUCKET`) only ends the options."""
    if "--" not in args:
        return args, []
    cut = args.index("--")
    before, after = args[:cut], args[cut + 1:]
    takes_value = {name for p in mount_cmd.params if isinstance(p, click.Option)
                   and not p.is_flag for name in p.opts}
    skip = False
    for token in before:
        if skip:
            skip = False
        elif token in takes_value:
            skip = True
        elif not token.startswith("-"):
            return before, after
    return args, []


def mount_main() -> None:
    ours, command = split_command(sys.argv[1:])
    if command:
        _main(mount_cmd, "mount-bucket", ours, {"command": command})
    _main(mount_cmd, "mount-bucket")


def unmount_main() -> None:
    _main(unmount_cmd, "unmount-bucket")


# =============================================================================================
# `visionlab-buckets`: the setup commands install.sh hands over to (rclone.conf, credentials,
# facts). Kept as one block at the end of this module; the logic lives in setup/machine.py.


@click.group(context_settings=_CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="visionlab-buckets")
def setup_group() -> None:
    """Set this machine up for mount-bucket (install.sh runs these)."""


def _setup_say(line: str) -> None:
    click.echo(line)


def _setup_warn(line: str) -> None:
    click.echo(f"warning: {line}", err=True)


@setup_group.command("config-file")
def config_file_cmd() -> None:
    """Print the rclone.conf rclone reads here (rclone's own lookup rule)."""
    from .setup import machine as setup

    click.echo(str(setup.config_file()))


@setup_group.command("seed-config")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
def seed_config_cmd(dry_run: bool) -> None:
    """Add the s3_remote and s3_remote_private remotes to rclone.conf if missing.

    The rest of the file is kept byte for byte; the old file is backed up first.
    """
    from .setup import machine as setup

    try:
        setup.seed(dry_run=dry_run, say=_setup_say, warn=_setup_warn)
    except BucketsError as exc:
        _fail(exc)


@setup_group.command("purge-config")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
def purge_config_cmd(dry_run: bool) -> None:
    """Remove s3_remote and s3_remote_private from rclone.conf if they are as seeded."""
    from .setup import machine as setup

    try:
        setup.purge(dry_run=dry_run, say=_setup_say, warn=_setup_warn)
    except BucketsError as exc:
        _fail(exc)


@setup_group.command("credentials")
@click.option("--shell", "shell", type=click.Choice(["bash", "zsh", "fish"]), default=None,
              help="The shell to print lines for [default: from $SHELL].")
@click.option("--lightning", is_flag=True, help="Lightning Studio: credentials go in its settings.")
def credentials_cmd(shell: Optional[str], lightning: bool) -> None:
    """Say where AWS credentials come from (never their values), or what to add where.

    Exits 0 when credentials were found, 1 when not.
    """
    from .setup import machine as setup
    from .system import credentials

    if shell is None:
        shell = os.path.basename(os.environ.get("SHELL") or "bash")
        shell = shell if shell in setup.SHELLS else "bash"
    for line in setup.credential_lines(shell, lightning):
        click.echo(line)
    sys.exit(0 if credentials.source() else 1)


@setup_group.command("facts")
def facts_cmd() -> None:
    """Print KEY=value lines for scripts: config file, remotes, minimum rclone version, ..."""
    from .setup import machine as setup

    for key, value in setup.facts():
        click.echo(f"{key}={value}")


def setup_main() -> None:
    _main(setup_group, "visionlab-buckets")
