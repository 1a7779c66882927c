"""SLURM scenarios for visionlab-buckets: what survives a job's end. Functions return counts.

Used by tests/test_slurm.py and runnable by hand (as root) to print the table
"pattern x way of ending: files written vs files on the server":

    .venv/bin/python tests/slurm_scenarios.py                      # every pattern, end + scancel
    .venv/bin/python tests/slurm_scenarios.py --patterns wrapper-exec api-srun --endings timelimit

A pattern is a batch-script template (see PATTERNS); add one line there for a new way of using
the tool. Inside a job the tool mounts at <runtime>/jobs/<job>[.<step>]/rclone/<bucket> with its
cache at <runtime>/jobs/<scope>/buckets/cache/<bucket>; outside jobs at <runtime>/rclone/<bucket>
(cache <runtime>/buckets/cache/<bucket>): count_stranded looks at both.

At the time limit the writer writes late: it waits LATE_DELAY s, then rewrites its 21 files every
LATE_EVERY s until it is stopped, noting each finished file (name, generation) in a journal on
local disk; "on server" then means the server holds each file's LAST generation, so rclone's
write-back (5 s) cannot hide writes lost in the job's last seconds.
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
from s3proxy import CountingProxy  # noqa: E402
from slurm_cluster import SlurmCluster, ensure_user_venv, missing_prerequisites, mounts_under  # noqa: E402

CHECKOUT = Path(__file__).resolve().parent.parent
SMALL_FILES = 20
BIG_MIB = 32
HOLD = 600  # seconds a writer keeps running after writing, when the job is ended from outside

# ---- job-side helper programs (written into the user's jobs dir) ------------------------------

WRITER = f'''\
"""Write {SMALL_FILES} small files and one {BIG_MIB} MiB file, then optionally keep running.
--every S: after --delay, rewrite them every S s until stopped (generation 1, 2, ...), noting
each finished file in --journal. SIGTERM is held back while one file is written (a program that
finishes its checkpoint), so a file is never cut short by the signal itself."""
import argparse, os, signal, sys, time
from pathlib import Path
p = argparse.ArgumentParser()
p.add_argument("--dir")
p.add_argument("--api", metavar="BUCKET")
p.add_argument("--root")
p.add_argument("--hold", type=float, default=0)
p.add_argument("--delay", type=float, default=0)
p.add_argument("--every", type=float, default=0)
p.add_argument("--journal")
a = p.parse_args()
if a.api:
    from visionlab.buckets import mount_bucket
    out = Path(mount_bucket(a.api, a.root)) / "out"
else:
    out = Path(a.dir)
out.mkdir(exist_ok=True)
TERM = {{signal.SIGTERM}}

def write_round(gen):
    for i in range({SMALL_FILES + 1}):
        name = f"small-{{i:02d}}.txt" if i < {SMALL_FILES} else "big.bin"
        signal.pthread_sigmask(signal.SIG_BLOCK, TERM)
        with open(out / name, "wb") as f:
            if i < {SMALL_FILES}:
                f.write(f"small file {{i}} gen {{gen:06d}}\\n".encode() * 10)
            else:
                f.write(f"gen {{gen:06d}}\\n".encode() + os.urandom((1 << 20) - 11))
                for _ in range({BIG_MIB} - 1):
                    f.write(os.urandom(1 << 20))
        if a.journal:
            with open(a.journal, "a") as j:
                j.write(f"{{name}} {{gen}}\\n")
        signal.pthread_sigmask(signal.SIG_UNBLOCK, TERM)

if a.every:
    time.sleep(a.delay)
    gen = 0
    while True:
        gen += 1
        write_round(gen)
        print(f"WROTE {SMALL_FILES + 1} GEN {{gen}}", flush=True)
        time.sleep(a.every)
write_round(0)
print("WROTE {SMALL_FILES + 1}", flush=True)
if a.hold:
    print("HOLDING", flush=True)
    time.sleep(a.hold)
print("WRITER DONE", flush=True)
'''


def expected_files() -> dict[str, int]:
    """name -> size of what WRITER writes into <link>/out."""
    files = {f"small-{i:02d}.txt": len(f"small file {i} gen {0:06d}\n" * 10)
             for i in range(SMALL_FILES)}
    files["big.bin"] = BIG_MIB << 20
    return files


def _generation(path: Path, name: str) -> int:
    """The generation WRITER wrote into a file (-1: unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(40).decode("ascii", "replace")
        return int(head.split("gen ", 1)[1][:6])
    except (OSError, IndexError, ValueError):
        return -1


def read_journal(path: Path) -> dict[str, int]:
    """name -> last generation the writer finished (its --journal)."""
    last: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            name, _, gen = line.partition(" ")
            if gen.isdigit():
                last[name] = int(gen)
    return last


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
    script: str  # batch body; {bucket} {root} {link} {writer} {wargs} are filled in
    documented: bool = False  # must strand nothing on scancel / time limit too
    note: str = ""


PATTERNS = {p.name: p for p in (
    Pattern("cli", "mount-bucket {bucket} --root {root}\npython {writer} --dir {link}/out {wargs}",
            note="mount-bucket, then the program writes through the link"),
    Pattern("api", "python {writer} --api {bucket} --root {root} {wargs}",
            note="python train.py calling mount_bucket()"),
    Pattern("api-exec", "exec python {writer} --api {bucket} --root {root} {wargs}",
            documented=True, note="exec python train.py calling mount_bucket()"),
    Pattern("api-srun", "srun python {writer} --api {bucket} --root {root} {wargs}",
            documented=True, note="srun python train.py calling mount_bucket()"),
    Pattern("wrapper", "mount-bucket {bucket} --root {root} -- python {writer} --dir {link}/out "
            "{wargs}", note="mount-bucket B -- CMD"),
    Pattern("wrapper-exec", "exec mount-bucket {bucket} --root {root} -- python {writer} "
            "--dir {link}/out {wargs}", documented=True, note="exec mount-bucket B -- CMD"),
    Pattern("wrapper-srun", "srun mount-bucket {bucket} --root {root} -- python {writer} "
            "--dir {link}/out {wargs}", documented=True, note="srun mount-bucket B -- CMD"),
    Pattern("sync", "mount-bucket {bucket} --root {root}\npython {writer} --dir {link}/out "
            "{wargs}\nmount-bucket --sync {bucket}", note="mount-bucket --sync as the last line"),
)}
# Patterns that must strand nothing whichever way the job ends (the others: only at script end).
DOCUMENTED = [n for n, pat in PATTERNS.items() if pat.documented]
LATE_DELAY = 40.0  # time limit: seconds before the writer starts writing (the limit hits at 60-90 s)
LATE_EVERY = 2.0  # then a full rewrite of the 21 files every this many seconds

# How the job ends: the writer's hold time, extra sbatch args, what the harness does.
ENDINGS = {
    "end": {"hold": 0, "sbatch": ()},  # the batch script ends by itself
    "scancel": {"hold": HOLD, "sbatch": ()},  # scancel once the writer prints HOLDING
    # ~80 s: slurmctld checks limits late; the writer writes late (LATE_DELAY, LATE_EVERY)
    "timelimit": {"hold": HOLD, "sbatch": ("--time=1",), "late": True},
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


def _server_ok(s3: S3Server, bucket: str, gens: dict[str, int] | None = None):
    """name -> is the file complete on the server (and of its last generation, `gens`)?"""
    expected = expected_files()
    out = s3.data / bucket / "out"
    gens = gens if gens is not None else {n: 0 for n in expected}

    def ok(name: str) -> bool:
        path = out / name
        return (name in gens and path.is_file() and path.stat().st_size == expected[name]
                and _generation(path, name) == gens[name])
    return ok


def count_on_server(s3: S3Server, bucket: str, gens: dict[str, int] | None = None) -> int:
    ok = _server_ok(s3, bucket, gens)
    return sum(1 for n in expected_files() if ok(n))


def cache_dirs(cluster: SlurmCluster, bucket: str) -> list[Path]:
    """The bucket's VFS caches on the node: the user's own and every SLURM job's/step's."""
    runtime = cluster.runtime_dir
    found = [runtime / "buckets" / "cache" / bucket / "vfs"]
    found += sorted(runtime.glob(f"jobs/*/buckets/cache/{bucket}/vfs"))
    return [d for d in found if d.is_dir()]


def count_stranded(cluster: SlurmCluster, s3: S3Server, bucket: str,
                   gens: dict[str, int] | None = None) -> int:
    """Written files in the bucket's node-local VFS caches that are not complete (of their last
    generation) on the server."""
    ok = _server_ok(s3, bucket, gens)
    names = {f for cache in cache_dirs(cluster, bucket) for _d, _s, files in os.walk(cache)
             for f in files if f in expected_files()}
    return sum(1 for f in names if not ok(f))


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
                       bucket: str = "results-bkt", settle: float = 3.0,
                       reset_after: bool = True) -> WriteResult:
    """One job of `pattern` writes 21 files through the link and ends by `ending`; count what
    reached the server. The user's runtime (mounts, caches) is wiped before and after, so
    nothing stranded here is uploaded by a later scenario (`reset_after=False` keeps what the
    job left, for a test that looks at it)."""
    pat, how = PATTERNS[pattern], ENDINGS[ending]
    cluster.reset_user_runtime()
    fresh_bucket(s3, bucket)
    writer, _ = _install_helpers(cluster)
    root = _fresh_root(cluster, pattern)
    journal = None
    wargs = f"--hold {how['hold']}"
    if how.get("late"):
        journal = cluster.jobs_dir / f"journal-{_runs}"
        wargs = f"--delay {LATE_DELAY:g} --every {LATE_EVERY:g} --journal {journal}"
    body = pat.script.format(bucket=bucket, root=root, link=root / bucket, writer=writer,
                             wargs=wargs)
    t0 = time.monotonic()
    job_id = cluster.submit(body, how["sbatch"], name=f"w-{pattern}-{ending}")
    if ending == "scancel":
        with contextlib.suppress(RuntimeError, TimeoutError):  # ended early: count anyway
            cluster.wait_output(job_id, "HOLDING", timeout=120)
            cluster.scancel(job_id)
    job = cluster.wait(job_id, timeout=300 if ending == "timelimit" else 180)
    seconds = time.monotonic() - t0
    time.sleep(settle)
    gens = read_journal(journal) if journal else None
    if gens is not None:
        written = len(gens)
    else:
        written = len(expected_files()) if f"WROTE {SMALL_FILES + 1}" in job.output else 0
    result = WriteResult(pattern, ending, written, count_on_server(s3, bucket, gens),
                         count_stranded(cluster, s3, bucket, gens), dead_mounts(cluster),
                         job.state, job.exit_code, round(seconds, 1), job.output)
    if reset_after:
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
    error_lines: list[str] = field(default_factory=list)  # what the mount step printed
    mounts_after: int = -1  # mounts of B in the job's mount table after the mount step
    link_after: bool = False  # the link <root>/B exists after the mount step
    output: str = field(repr=False, default="")


def run_srun_mount(cluster: SlurmCluster, s3: S3Server, bucket: str = "srun-bkt") -> SrunResult:
    """`srun mount-bucket B` in a job, then a next step reading through the link."""
    cluster.reset_user_runtime()
    fresh_bucket(s3, bucket, {"hello.txt": b"hello through srun\n"})
    root = _fresh_root(cluster, "srun")
    job = cluster.run_job(f"echo MOUNT_STEP_BEGIN\nsrun mount-bucket {bucket} --root {root}\n"
                          f"echo MOUNT_STEP_EXIT=$?\n"
                          f"echo MOUNTS_AFTER=$(grep -c '/{bucket} ' /proc/self/mounts)\n"
                          f"echo LINK_AFTER=$([ -e {root}/{bucket} ] || [ -L {root}/{bucket} ] "
                          f"&& echo yes || echo no)\n"
                          f"srun cat {root}/{bucket}/hello.txt\necho READ_STEP_EXIT=$?",
                          name="srun-mount", timeout=120)
    lines = job.output.splitlines()
    values = dict(line.split("=", 1) for line in lines
                  if line.startswith(("MOUNT_STEP_EXIT=", "READ_STEP_EXIT=", "MOUNTS_AFTER=",
                                      "LINK_AFTER=")))
    between = []
    if "MOUNT_STEP_BEGIN" in lines:
        for line in lines[lines.index("MOUNT_STEP_BEGIN") + 1:]:
            if line.startswith("MOUNT_STEP_EXIT="):
                break
            if not line.startswith("srun: "):  # srun's own report of the exit code
                between.append(line)
    cluster.reset_user_runtime()
    return SrunResult(values.get("MOUNT_STEP_EXIT", "?"), values.get("READ_STEP_EXIT", "?"),
                      "hello through srun" in job.output, between,
                      int(values.get("MOUNTS_AFTER", "-1") or -1),
                      values.get("LINK_AFTER") == "yes", job.output)


HIDDEN = '''\
"""A program in a job that has lost its SLURM_* variables (a notebook kernel started with a
clean environment): print is_slurm(), mount the bucket, hold it for --hold s."""
import os, sys, time
from visionlab.buckets import is_slurm, mount_bucket
print("SLURM_VARS", sorted(v for v in os.environ if v.startswith("SLURM_")), flush=True)
print("IS_SLURM", is_slurm(), flush=True)
link = mount_bucket(sys.argv[1])
print("MOUNTED", link, os.readlink(link), flush=True)
time.sleep(float(sys.argv[2]))
print("HIDDEN DONE", flush=True)
'''


@dataclass
class HiddenJobResult:
    is_slurm: str  # what the job's program printed
    slurm_vars: str  # the SLURM_* variables it still had
    job_link: str  # "<link> <its target>" as the program printed it
    ok: int  # the outside reader's good reads
    failed: int
    first_error: str
    status_exit: str  # `mount-bucket --status B` outside the job, after the job ended
    job_state: str
    output_job: str = field(repr=False, default="")
    output_outside: str = field(repr=False, default="")


def run_hidden_job(cluster: SlurmCluster, s3: S3Server, bucket: str = "hidden-bkt",
                   files: int = 200, hold: float = 12.0, read_seconds: float = 20.0
                   ) -> HiddenJobResult:
    """A batch script unsets every SLURM_* variable, then runs a Python program that calls
    is_slurm() and mount_bucket(B) and sleeps `hold` s. Once it has mounted, the same user,
    outside any job (su from here), runs `mount-bucket B` and reads its files through
    ~/s3_buckets/B for `read_seconds` (the job ends meanwhile), then `mount-bucket --status B`."""
    import threading

    cluster.reset_user_runtime()
    fresh_bucket(s3, bucket, {f"f{i:03d}.txt": f"data file {i}\n".encode() * 20
                              for i in range(files)})
    _, reader = _install_helpers(cluster)
    program = cluster.write_user_file("vb_hidden.py", HIDDEN)
    home = Path(cluster.pw.pw_dir)
    shutil.rmtree(home / "s3_buckets", ignore_errors=True)
    job = cluster.submit("for v in $(compgen -e | grep '^SLURM_'); do unset \"$v\"; done\n"
                         f"python {program} {bucket} {hold:g}", name="hidden-env")
    cluster.wait_output(job, "MOUNTED", timeout=90)
    env = shlex.quote(str(cluster.env_file))
    outside: list = []
    reading = threading.Thread(target=lambda: outside.append(cluster.as_user(
        f". {env} && mount-bucket {bucket} && python {reader} ~/s3_buckets/{bucket} "
        f"--seconds {read_seconds:g}; mount-bucket --status {bucket}; echo STATUS_EXIT=$?",
        timeout=read_seconds + 120)))
    reading.start()
    ended = cluster.wait(job, timeout=180)
    reading.join(read_seconds + 150)
    text = (outside[0].stdout + outside[0].stderr) if outside else "(outside reader gave nothing)"
    values = {}
    for line in (ended.output + "\n" + text).splitlines():
        word, _, rest = line.partition(" ")
        if word in ("IS_SLURM", "SLURM_VARS", "MOUNTED", "READS"):
            values[word] = rest
        elif line.startswith("STATUS_EXIT="):
            values["STATUS_EXIT"] = line.split("=", 1)[1]
    reads = dict(kv.split("=", 1) for kv in values.get("READS", "ok=0 failed=-1").split(" ", 3))
    cluster.reset_user_runtime()
    shutil.rmtree(home / "s3_buckets", ignore_errors=True)
    return HiddenJobResult(values.get("IS_SLURM", "?"), values.get("SLURM_VARS", "?"),
                           values.get("MOUNTED", "?"), int(reads["ok"]), int(reads["failed"]),
                           reads.get("first_error", ""), values.get("STATUS_EXIT", "?"),
                           f"{ended.state} {ended.exit_code}", ended.output, text)


# ---- starting everything (shared by the pytest fixture and main()) --------------------------


@contextlib.contextmanager
def harness(log=None, proxy: bool = False, nodes: int = 1) -> Iterator[tuple[SlurmCluster, S3Server]]:
    """A started SlurmCluster plus a loopback S3 server, the job user's venv, rclone.conf and
    env.sh; everything stopped and removed afterwards. Raises RuntimeError if SLURM cannot
    start (check missing_prerequisites() first for the one-line reason). `proxy`: the jobs
    reach the server through a byte-counting CountingProxy (tests/s3proxy.py), `cluster.proxy`
    (else that attribute is None). `nodes=2`: two nodes, each with a private /tmp (the cluster's
    base is then under /var/tmp)."""
    venv = ensure_user_venv(CHECKOUT)
    if not shutil.which("rclone"):  # the S3 server runs as root: this env's or the job venv's rclone
        for d in (Path(sys.executable).parent, venv / "bin"):
            if (d / "rclone").exists():
                os.environ["PATH"] = f"{d}{os.pathsep}{os.environ.get('PATH', '')}"
                break
    base = Path(tempfile.mkdtemp(prefix="vbslurm-", dir="/tmp" if nodes == 1 else "/var/tmp"))
    cluster = SlurmCluster(base, log=log, nodes=nodes)
    server = S3Server(base / "server")
    cluster.proxy = None
    try:
        cluster.start()
        server.start()
        endpoint = server.endpoint
        if proxy:
            cluster.proxy = CountingProxy(server.port).start()
            endpoint = cluster.proxy.endpoint
        cluster.prepare_user(venv, endpoint, ACCESS_KEY, SECRET_KEY)
        yield cluster, server
    finally:
        if cluster.proxy:
            cluster.proxy.stop()
        server.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--patterns", nargs="*", default=None, help=f"of {', '.join(PATTERNS)}")
    p.add_argument("--endings", nargs="*", default=["end", "scancel"], help=f"of {', '.join(ENDINGS)}")
    p.add_argument("--future", action="store_true", help="ignored (every pattern runs)")
    p.add_argument("--no-two-jobs", action="store_true")
    p.add_argument("--no-srun", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="print each job's output")
    a = p.parse_args(argv)
    reason = missing_prerequisites()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    patterns = a.patterns or list(PATTERNS)
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
            print(f"srun mount-bucket: mount step exit {r3.mount_step_exit}, printed "
                  f"{r3.error_lines!r}, mounts after {r3.mounts_after}, link after "
                  f"{r3.link_after}; next step read {'ok' if r3.read_ok else 'FAILED'} "
                  f"(exit {r3.read_step_exit})")
            if a.verbose:
                print(r3.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
