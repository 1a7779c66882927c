"""SLURM scenarios for visionlab-buckets: what survives a job's end. Functions return counts.

Used by tests/test_slurm.py and runnable by hand (as root) to print the table
"pattern x way of ending: files written vs files on the server":

    .venv/bin/python tests/slurm_scenarios.py                 # today's patterns, end + scancel
    .venv/bin/python tests/slurm_scenarios.py --endings end scancel timelimit --future

A pattern is a batch-script template (see PATTERNS); add one line there for a new way of using
the tool. Patterns marked future=True need features not in the tool yet (the `--` wrapper,
`--sync`); they run only with --future (today they show how the current code fails).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import ACCESS_KEY, SECRET_KEY, S3Server  # noqa: E402
from slurm_cluster import SlurmCluster, ensure_user_venv, missing_prerequisites, mounts_under  # noqa: E402

CHECKOUT = Path(__file__).resolve().parent.parent
SMALL_FILES = 20
BIG_MIB = 32
HOLD = 600  # seconds a writer keeps running after writing, when the job is ended from outside

# ---- job-side helper programs (written into the user's jobs dir) ------------------------------

WRITER = f'''\
"""Write {SMALL_FILES} small files and one {BIG_MIB} MiB file, then optionally keep running."""
import argparse, os, sys, time
from pathlib import Path
p = argparse.ArgumentParser()
p.add_argument("--dir")
p.add_argument("--api", metavar="BUCKET")
p.add_argument("--root")
p.add_argument("--hold", type=float, default=0)
a = p.parse_args()
if a.api:
    from visionlab.buckets import mount_bucket
    out = Path(mount_bucket(a.api, a.root)) / "out"
else:
    out = Path(a.dir)
out.mkdir(exist_ok=True)
for i in range({SMALL_FILES}):
    (out / f"small-{{i:02d}}.txt").write_text(f"small file {{i}}\\n" * 10)
with open(out / "big.bin", "wb") as f:
    for _ in range({BIG_MIB}):
        f.write(os.urandom(1 << 20))
print("WROTE {SMALL_FILES + 1}", flush=True)
if a.hold:
    print("HOLDING", flush=True)
    time.sleep(a.hold)
print("WRITER DONE", flush=True)
'''


def expected_files() -> dict[str, int]:
    """name -> size of what WRITER writes into <link>/out."""
    files = {f"small-{i:02d}.txt": len(f"small file {i}\n" * 10) for i in range(SMALL_FILES)}
    files["big.bin"] = BIG_MIB << 20
    return files


READER = '''\
"""Read the given files through a link in a loop for --seconds; count ok / failed reads."""
import argparse, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("dir")
p.add_argument("--seconds", type=float, default=20)
p.add_argument("--flag")
a = p.parse_args()
names = sorted(os.listdir(a.dir))
want = {n: open(os.path.join(a.dir, n), "rb").read() for n in names}
print("READING", len(names), flush=True)
if a.flag:
    open(a.flag, "w").close()
ok = failed = 0
first_error = ""
t0 = time.monotonic()
t_fail = None
while time.monotonic() - t0 < a.seconds:
    for n in names:
        try:
            with open(os.path.join(a.dir, n), "rb") as f:
                good = f.read() == want[n]
        except OSError as e:
            good = False
            first_error = first_error or f"{type(e).__name__}: {e}"
        if good:
            ok += 1
        else:
            failed += 1
            if t_fail is None:
                t_fail = time.monotonic() - t0
        time.sleep(0.001)  # paced: counts compare by time, not by how fast a failure returns
print(f"READS ok={ok} failed={failed} first_fail_at={t_fail} first_error={first_error}", flush=True)
'''

# ---- patterns and endings -------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    name: str
    script: str  # batch body; {bucket} {root} {link} {writer} {hold} are filled in
    future: bool = False  # needs a feature the tool does not have yet
    note: str = ""


PATTERNS = {p.name: p for p in (
    Pattern("cli", "mount-bucket {bucket} --root {root}\npython {writer} --dir {link}/out --hold {hold}",
            note="mount-bucket, then the program writes through the link"),
    Pattern("api", "python {writer} --api {bucket} --root {root} --hold {hold}",
            note="python train.py calling mount_bucket()"),
    Pattern("api-srun", "srun python {writer} --api {bucket} --root {root} --hold {hold}",
            note="srun python train.py calling mount_bucket()"),
    Pattern("wrapper", "mount-bucket {bucket} --root {root} -- python {writer} --dir {link}/out "
            "--hold {hold}", future=True, note="mount-bucket B -- CMD"),
    Pattern("wrapper-exec", "exec mount-bucket {bucket} --root {root} -- python {writer} "
            "--dir {link}/out --hold {hold}", future=True, note="exec mount-bucket B -- CMD"),
    Pattern("wrapper-srun", "srun mount-bucket {bucket} --root {root} -- python {writer} "
            "--dir {link}/out --hold {hold}", future=True, note="srun mount-bucket B -- CMD"),
    Pattern("sync", "mount-bucket {bucket} --root {root}\npython {writer} --dir {link}/out "
            "--hold {hold}\nmount-bucket --sync {bucket}", future=True,
            note="mount-bucket --sync as the last line"),
)}

# How the job ends: the writer's hold time, extra sbatch args, what the harness does.
ENDINGS = {
    "end": {"hold": 0, "sbatch": ()},  # the batch script ends by itself
    "scancel": {"hold": HOLD, "sbatch": ()},  # scancel once the writer prints HOLDING
    "timelimit": {"hold": HOLD, "sbatch": ("--time=1",)},  # ~80 s: slurmctld checks limits late
}


@dataclass
class WriteResult:
    pattern: str
    ending: str
    written: int  # files the job reported written (0 if it never got that far)
    on_server: int  # of those, complete on the S3 server after the job (+ settle time)
    stranded: int  # in the node-local VFS cache but not (complete) on the server
    dead_mounts: int  # mount points left answering ENOTCONN
    state: str
    exit_code: str
    seconds: float
    output: str = field(repr=False, default="")

    def row(self) -> str:
        return (f"| {self.pattern} | {self.ending} | {self.written} | {self.on_server} | "
                f"{self.stranded} | {self.dead_mounts} | {self.state} {self.exit_code} |")


TABLE_HEAD = ("| pattern | way of ending | files written | on server | stranded in node cache "
              "| dead mounts | job state |\n|---|---|---|---|---|---|---|")


def count_on_server(s3: S3Server, bucket: str, expected: dict[str, int] | None = None) -> int:
    expected = expected or expected_files()
    out = s3.data / bucket / "out"
    return sum(1 for n, size in expected.items()
               if (out / n).is_file() and (out / n).stat().st_size == size)


def count_stranded(cluster: SlurmCluster, s3: S3Server, bucket: str) -> int:
    """Written files in the bucket's node-local VFS cache that are not complete on the server."""
    cache = cluster.runtime_dir / "buckets" / "cache" / bucket / "vfs"
    out = s3.data / bucket / "out"
    expected = expected_files()
    return sum(1 for _d, _s, files in os.walk(cache) for f in files
               if f in expected and not ((out / f).is_file() and (out / f).stat().st_size == expected[f]))


def dead_mounts(cluster: SlurmCluster) -> int:
    """Mounts of the job user left answering ENOTCONN (checked as that user: root gets EACCES
    from a FUSE mount without allow_other)."""
    dead = 0
    for mp in mounts_under([str(cluster.runtime_dir), str(cluster.jobs_dir)]):
        res = cluster.as_user(f"stat {shlex.quote(mp)} >/dev/null", timeout=30)
        dead += os.strerror(errno.ENOTCONN) in res.stderr
    return dead


def fresh_bucket(s3: S3Server, bucket: str, files: dict[str, bytes] | None = None) -> None:
    shutil.rmtree(s3.data / bucket, ignore_errors=True)
    s3.make_bucket(bucket, files)


def _install_helpers(cluster: SlurmCluster) -> tuple[Path, Path]:
    return cluster.write_user_file("vb_writer.py", WRITER), cluster.write_user_file("vb_reader.py", READER)


_runs = 0


def _fresh_root(cluster: SlurmCluster, tag: str) -> Path:
    global _runs
    _runs += 1
    return cluster.user_dir_for(f"root-{tag}-{_runs}")


def run_write_scenario(cluster: SlurmCluster, s3: S3Server, pattern: str, ending: str,
                       bucket: str = "results-bkt", settle: float = 3.0) -> WriteResult:
    """One job of `pattern` writes 21 files through the link and ends by `ending`; count what
    reached the server. The user's runtime (mounts, caches) is wiped before and after, so
    nothing stranded here is uploaded by a later scenario."""
    pat, how = PATTERNS[pattern], ENDINGS[ending]
    cluster.reset_user_runtime()
    fresh_bucket(s3, bucket)
    writer, _ = _install_helpers(cluster)
    root = _fresh_root(cluster, pattern)
    body = pat.script.format(bucket=bucket, root=root, link=root / bucket, writer=writer,
                             hold=how["hold"])
    t0 = time.monotonic()
    job_id = cluster.submit(body, how["sbatch"], name=f"w-{pattern}-{ending}")
    if ending == "scancel":
        with contextlib.suppress(RuntimeError, TimeoutError):  # ended early: count anyway
            cluster.wait_output(job_id, "HOLDING", timeout=120)
            cluster.scancel(job_id)
    job = cluster.wait(job_id, timeout=300 if ending == "timelimit" else 180)
    seconds = time.monotonic() - t0
    time.sleep(settle)
    written = len(expected_files()) if f"WROTE {SMALL_FILES + 1}" in job.output else 0
    result = WriteResult(pattern, ending, written, count_on_server(s3, bucket),
                         count_stranded(cluster, s3, bucket), dead_mounts(cluster), job.state,
                         job.exit_code, round(seconds, 1), job.output)
    cluster.reset_user_runtime()
    return result


@dataclass
class TwoJobsResult:
    ending: str  # how job A ended
    ok: int  # B's good reads
    failed: int  # B's failed reads
    first_fail_at: str  # seconds into B's read loop
    first_error: str
    a_state: str
    b_state: str
    output_a: str = field(repr=False, default="")
    output_b: str = field(repr=False, default="")


def run_two_jobs(cluster: SlurmCluster, s3: S3Server, ending: str = "end",
                 bucket: str = "data-bkt", b_delay: float = 4.0, a_after_b: float = 8.0,
                 b_seconds: float = 20.0, b_mount: str = "mount-bucket {bucket} --root {root}"
                 ) -> TwoJobsResult:
    """Job A mounts `bucket` and waits; `b_delay` s later job B mounts it (`b_mount`, with a
    different --root) and reads through it for `b_seconds`; A ends `a_after_b` s after B starts
    reading (`end`: its script ends; `scancel`). Returns B's read counts."""
    cluster.reset_user_runtime()
    fresh_bucket(s3, bucket, {f"f{i}.txt": f"data file {i}\n".encode() * 50 for i in range(3)})
    _, reader = _install_helpers(cluster)
    root_a, root_b = _fresh_root(cluster, "a"), _fresh_root(cluster, "b")
    flag = cluster.jobs_dir / f"b-reading-{_runs}"
    if ending == "end":
        wait_a = (f"for _ in $(seq 900); do [ -e {flag} ] && break; sleep 0.1; done\n"
                  f"sleep {a_after_b}\necho A ENDS")
    else:
        wait_a = f"sleep {HOLD}"
    job_a = cluster.submit(f"mount-bucket {bucket} --root {root_a}\necho MOUNTED\n{wait_a}",
                           name=f"two-a-{ending}")
    cluster.wait_output(job_a, "MOUNTED", timeout=90)
    time.sleep(b_delay)
    mount_b = b_mount.format(bucket=bucket, root=root_b)
    job_b = cluster.submit(f"{mount_b}\necho MOUNTED B\npython {reader} {root_b}/{bucket} "
                           f"--seconds {b_seconds} --flag {flag}", name=f"two-b-{ending}")
    if ending == "scancel":
        with contextlib.suppress(RuntimeError, TimeoutError):
            cluster.wait_output(job_b, "READING", timeout=90)
            time.sleep(a_after_b)
        cluster.scancel(job_a)
    a = cluster.wait(job_a, timeout=180)
    b = cluster.wait(job_b, timeout=180)
    ok = failed = 0
    first_at = first_error = ""
    for line in b.output.splitlines():
        if line.startswith("READS "):
            fields = dict(kv.split("=", 1) for kv in line[6:].split(" ", 3))
            ok, failed = int(fields["ok"]), int(fields["failed"])
            first_at, first_error = fields["first_fail_at"], fields["first_error"]
    cluster.reset_user_runtime()
    return TwoJobsResult(ending, ok, failed, first_at, first_error, f"{a.state} {a.exit_code}",
                         f"{b.state} {b.exit_code}", a.output, b.output)


@dataclass
class SrunResult:
    mount_step_exit: str  # exit status of `srun mount-bucket B`
    read_step_exit: str  # exit status of the next step reading through the link
    read_ok: bool
    output: str = field(repr=False, default="")


def run_srun_mount(cluster: SlurmCluster, s3: S3Server, bucket: str = "srun-bkt") -> SrunResult:
    """`srun mount-bucket B` in a job, then a next step reading through the link."""
    cluster.reset_user_runtime()
    fresh_bucket(s3, bucket, {"hello.txt": b"hello through srun\n"})
    root = _fresh_root(cluster, "srun")
    job = cluster.run_job(f"srun mount-bucket {bucket} --root {root}\necho MOUNT_STEP_EXIT=$?\n"
                          f"srun cat {root}/{bucket}/hello.txt\necho READ_STEP_EXIT=$?",
                          name="srun-mount", timeout=120)
    values = dict(line.split("=", 1) for line in job.output.splitlines()
                  if line.startswith(("MOUNT_STEP_EXIT=", "READ_STEP_EXIT=")))
    cluster.reset_user_runtime()
    return SrunResult(values.get("MOUNT_STEP_EXIT", "?"), values.get("READ_STEP_EXIT", "?"),
                      "hello through srun" in job.output, job.output)


# ---- starting everything (shared by the pytest fixture and main()) --------------------------


@contextlib.contextmanager
def harness(log=None) -> Iterator[tuple[SlurmCluster, S3Server]]:
    """A started SlurmCluster plus a loopback S3 server, the job user's venv, rclone.conf and
    env.sh; everything stopped and removed afterwards. Raises RuntimeError if SLURM cannot
    start (check missing_prerequisites() first for the one-line reason)."""
    venv = ensure_user_venv(CHECKOUT)
    if not shutil.which("rclone"):  # the S3 server runs as root: this env's or the job venv's rclone
        for d in (Path(sys.executable).parent, venv / "bin"):
            if (d / "rclone").exists():
                os.environ["PATH"] = f"{d}{os.pathsep}{os.environ.get('PATH', '')}"
                break
    base = Path(tempfile.mkdtemp(prefix="vbslurm-", dir="/tmp"))
    cluster = SlurmCluster(base, log=log)
    server = S3Server(base / "server")
    try:
        cluster.start()
        server.start()
        cluster.prepare_user(venv, server.endpoint, ACCESS_KEY, SECRET_KEY)
        yield cluster, server
    finally:
        server.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--patterns", nargs="*", default=None, help=f"of {', '.join(PATTERNS)}")
    p.add_argument("--endings", nargs="*", default=["end", "scancel"], help=f"of {', '.join(ENDINGS)}")
    p.add_argument("--future", action="store_true", help="also run patterns marked future")
    p.add_argument("--no-two-jobs", action="store_true")
    p.add_argument("--no-srun", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="print each job's output")
    a = p.parse_args(argv)
    reason = missing_prerequisites()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    patterns = a.patterns or [n for n, pat in PATTERNS.items() if a.future or not pat.future]
    with harness() as (cluster, s3):
        proctrack, probe = cluster.probe_proctrack()
        print(f"SLURM up in {cluster.startup_seconds:.1f}s; ProctrackType={proctrack}; "
              f"job freezer cgroups: {SlurmCluster.freezer_paths(probe)}")
        print(TABLE_HEAD)
        for pattern in patterns:
            for ending in a.endings:
                r = run_write_scenario(cluster, s3, pattern, ending)
                print(r.row(), f"({r.seconds}s)", flush=True)
                if a.verbose:
                    print(r.output)
        if not a.no_two_jobs:
            for ending in ("end", "scancel"):
                r2 = run_two_jobs(cluster, s3, ending)
                print(f"two jobs, A {ending}: B reads ok={r2.ok} failed={r2.failed} "
                      f"first_fail_at={r2.first_fail_at} error={r2.first_error!r} "
                      f"A={r2.a_state} B={r2.b_state}", flush=True)
                if a.verbose:
                    print(r2.output_a, r2.output_b)
        if not a.no_srun:
            r3 = run_srun_mount(cluster, s3)
            print(f"srun mount-bucket: mount step exit {r3.mount_step_exit}, next step read "
                  f"{'ok' if r3.read_ok else 'FAILED'} (exit {r3.read_step_exit})")
            if a.verbose:
                print(r3.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
