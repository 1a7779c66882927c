"""A real single-node SLURM for the tests, started by hand as root (no systemd), stdlib only.

    cluster = SlurmCluster(Path(tempfile.mkdtemp()))   # needs root; see missing_prerequisites()
    cluster.start()                      # munged, slurmctld, slurmd; /dev/fuse ACL for the user
    cluster.prepare_user(venv, s3_endpoint, access_key, secret_key)
    job = cluster.run_job("mount-bucket data-bkt --root ~/r && cat ~/r/data-bkt/x")
    print(job.state, job.output)
    tasks = cluster.wait_array(cluster.submit("...", ["--array=0-3"]), 4)   # one Job per task
    cluster.stop()                       # scancel, kill the user's leftovers, unmount, restore

/dev/fuse (mode 0600 root here) is opened to the job user alone with an ACL entry
(`setfacl -m u:vbslurm:rw`) while the cluster runs, and the entry is removed at stop(): no other
user gains FUSE. The node declares CPUS_DECLARED CPUs (slurmd's config_overrides), so four jobs, a
job array of four or a step of four tasks run at once on a 2-core machine.

Layout under `base` (0755, so the job user can reach its own part):
    slurm/        conf (slurm.conf, cgroup.conf), state, spool, logs, pids   (root)
    munge/        munged's socket (0755) and key/log/pid/seed (root, 0700 key dir)
    user/         owned by the job user, 0700: env.sh (0600: PATH, credentials), rclone.conf,
                  jobs/ (the jobs' working directory, batch scripts and job-<id>.out)

Jobs are submitted as an unprivileged user (`su USER -c 'sbatch ...'`) with a clean environment;
every batch script starts by sourcing user/env.sh, so secrets never appear on a command line.
The job user's mounts live at the tool's default runtime dir (/tmp/<user>), which the harness
empties before and after use (`reset_user_runtime`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

DEFAULT_USER = "vbslurm"
FINISHED_STATES = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                   "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel",
            "setfacl")
SYSTEM_PYTHON = "/usr/bin/python3"
VENV_CACHE = Path("/var/tmp/visionlab-buckets-slurm")
CPUS_DECLARED = 8  # CPUs the node declares: 4 one-CPU jobs at once (and room for a probe)


def missing_prerequisites() -> Optional[str]:
    """One line saying why a SLURM cannot start here, or None when it can."""
    if os.geteuid() != 0:
        return "SLURM harness needs root (it starts munged/slurmctld/slurmd and su's to a job user)"
    missing = [b for b in BINARIES if not shutil.which(b, path=os.environ.get("PATH", "") +
                                                        ":/usr/sbin:/sbin:/usr/bin")]
    if missing:
        return (f"SLURM not installed (missing {', '.join(missing)}): "
                "apt-get install slurm-wlm munge acl")
    freezer = Path("/sys/fs/cgroup/freezer")
    if not (freezer.is_dir() and os.access(freezer, os.W_OK) and (freezer / "tasks").exists()):
        return "no writable cgroup v1 freezer at /sys/fs/cgroup/freezer: proctrack/cgroup cannot run"
    if not os.path.exists("/dev/fuse"):
        return "needs /dev/fuse: FUSE is not available on this machine"
    if not shutil.which("fusermount3"):
        return "fusermount3 not installed (apt-get install fuse3)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"no system python at {SYSTEM_PYTHON} for the job user's venv"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin") or name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_available_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 1024


def _run(argv: list[str], timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def mounts_under(prefixes: list[str], pid: str = "self") -> list[str]:
    """Mount points below any of `prefixes` (in the mount namespace of `pid`), deepest first."""
    found = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if any(mp == p or mp.startswith(p.rstrip("/") + "/") for p in prefixes):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def ensure_user(name: str = DEFAULT_USER) -> pwd.struct_passwd:
    """The job user (uid >= 1000), created with a home directory if absent."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        res = _run([_sbin("useradd"), "--create-home", "--shell", "/bin/bash", name])
        if res.returncode != 0:
            raise RuntimeError(f"useradd {name} failed: {res.stderr.strip()}") from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid < 1000:
        raise RuntimeError(f"user {name} has uid {entry.pw_uid} < 1000: not a normal user")
    return entry


def _tree_hash(checkout: Path) -> str:
    h = hashlib.sha256()
    h.update(Path(SYSTEM_PYTHON).resolve().name.encode())
    files = [checkout / "pyproject.toml", checkout / "README.md"]
    for sub in ("src", "shell", "completions"):
        files += sorted(p for p in (checkout / sub).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        if p.exists():
            h.update(str(p.relative_to(checkout)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def ensure_user_venv(checkout: Path, cache: Path = VENV_CACHE) -> Path:
    """A venv of the system python with `<checkout>[rclone]` installed, readable by everyone.

    Cached under `cache`, keyed by a hash of the checkout's sources; stale ones are removed.
    Installed by root from the checkout (a copy lands in site-packages), so the checkout itself
    need not be readable by the job user.
    """
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)
    key = _tree_hash(checkout)
    venv = cache / f"venv-{key}"
    marker = venv / ".complete"
    if marker.exists():
        return venv
    for old in cache.glob("venv-*"):
        shutil.rmtree(old, ignore_errors=True)
    res = _run([SYSTEM_PYTHON, "-m", "venv", str(venv)], timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"venv failed: {res.stderr.strip()}")
    res = _run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check",
                f"{checkout}[rclone]"], timeout=600, cwd="/")
    if res.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"pip install into the job venv failed: {res.stderr.strip()[-2000:]}")
    for name in ("mount-bucket", "unmount-bucket", "rclone"):
        if not (venv / "bin" / name).exists():
            raise RuntimeError(f"{name} missing from {venv}/bin after install")
    for dirpath, _dirs, files in os.walk(venv):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o555)
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444)
    marker.write_text(key + "\n")
    return venv


@dataclass
class Job:
    job_id: int
    state: str
    exit_code: str
    reason: str
    output: str
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED"


class SlurmCluster:
    """One node (this machine), one partition, jobs run as an unprivileged user.

    `nodes=2`: two nodes on this machine, two slurmd (`slurmd -N <name>`, each its own port,
    spool, pid and log file), each in its own mount namespace with a private tmpfs on /tmp, so
    each node has its own /tmp/<user> (node_tmp(name) is that /tmp as root sees it). Then `base`
    must not be under /tmp (the nodes would not see it).
    """

    def __init__(self, base: Path, user: str = DEFAULT_USER, log=None, nodes: int = 1) -> None:
        self.base = Path(base)
        self.user = user
        host = socket.gethostname().split(".")[0]
        self.host = host
        self.nodes = [host] if nodes == 1 else [f"vbn{i + 1}" for i in range(nodes)]
        self.node = self.nodes[0]
        if nodes > 1 and (self.base == Path("/tmp") or Path("/tmp") in self.base.parents):
            raise ValueError("a multi-node cluster's base must not be under /tmp")
        self.slurm_dir = self.base / "slurm"
        self.munge_dir = self.base / "munge"
        self.user_dir = self.base / "user"
        self.jobs_dir = self.user_dir / "jobs"
        self.conf = self.slurm_dir / "slurm.conf"
        self.munge_socket = self.munge_dir / "munge.socket"
        self.env_file = self.user_dir / "env.sh"
        self.rclone_conf = self.user_dir / "rclone.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.fuse_acl = False
        self.pw: Optional[pwd.struct_passwd] = None
        self.venv: Optional[Path] = None
        self.startup_seconds: Optional[float] = None
        self._log = log or (lambda msg: print(f"slurm_cluster: {msg}", file=sys.stderr))
        self._seq = 0

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def runtime_dir(self) -> Path:
        """The job user's default runtime dir (mounts at <runtime>/rclone/<bucket>)."""
        return Path("/tmp") / self.user

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM clients run by the harness (root) and by `su` to the user."""
        return {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
                "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60) -> SlurmCluster:
        t0 = time.monotonic()
        self.pw = ensure_user(self.user)
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        for d in (self.slurm_dir, self.munge_dir):
            d.mkdir(exist_ok=True)
            d.chmod(0o755)
        self.user_dir.mkdir(exist_ok=True)
        self.jobs_dir.mkdir(exist_ok=True)
        for d in (self.user_dir, self.jobs_dir):
            os.chown(d, self.pw.pw_uid, self.pw.pw_gid)
        self.user_dir.chmod(0o700)
        self.reset_user_runtime()
        try:
            self._grant_fuse()
            self._start_munge()
            self._write_conf()
            self._start_daemons(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _grant_fuse(self) -> None:
        """Let the job user (and only it) open /dev/fuse: an ACL entry, removed at stop()."""
        res = _run(["setfacl", "-m", f"u:{self.user}:rw", "/dev/fuse"])
        if res.returncode != 0:
            raise RuntimeError(f"setfacl on /dev/fuse failed: {res.stderr.strip()}")
        self.fuse_acl = True

    def _revoke_fuse(self) -> None:
        """Remove our entry; when no named entry is left (another test may have its own), the
        mask setfacl added goes too, so /dev/fuse is back to its plain mode bits."""
        if self.fuse_acl:
            res = _run(["setfacl", "-x", f"u:{self.user}", "/dev/fuse"])
            if res.returncode != 0:
                self._log(f"could not remove the /dev/fuse ACL entry: {res.stderr.strip()}")
            acl = _run(["getfacl", "-cp", "/dev/fuse"]).stdout.splitlines()
            if not any(re.match(r"(user|group):[^:]+:", e) for e in acl):
                _run(["setfacl", "-b", "/dev/fuse"])
            self.fuse_acl = False

    def _start_munge(self) -> None:
        keydir = self.munge_dir / "private"
        keydir.mkdir(exist_ok=True)
        keydir.chmod(0o700)
        key = keydir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        argv = [_sbin("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                f"--key-file={key}", f"--log-file={keydir / 'munged.log'}",
                f"--pid-file={keydir / 'munged.pid'}", f"--seed-file={keydir / 'munged.seed'}"]
        self.procs["munged"] = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL,
                                                stderr=open(keydir / "munged.stderr", "w"))  # noqa: SIM115
        deadline = time.monotonic() + 10
        while not self.munge_socket.exists():
            if self.procs["munged"].poll() is not None or time.monotonic() > deadline:
                log = (keydir / "munged.stderr").read_text() + (keydir / "munged.log").read_text() \
                    if (keydir / "munged.log").exists() else ""
                raise RuntimeError(f"munged did not start: {log.strip()[-1000:]}")
            time.sleep(0.05)

    def _write_conf(self) -> None:
        d = self.slurm_dir
        for sub in ("state", "spool", "log", "run"):
            (d / sub).mkdir(exist_ok=True)
        cpus = max(CPUS_DECLARED, os.cpu_count() or 1)
        mem = max(256, _mem_available_mib() // 2)
        ctld_port, slurmd_port = _free_port(), _free_port()
        multi = len(self.nodes) > 1
        if multi:
            for n in self.nodes:
                (d / "spool" / n).mkdir(parents=True, exist_ok=True)
            node_lines = "\n".join(
                f"NodeName={n} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={_free_port()} "
                f"CPUs={cpus} RealMemory={mem // len(self.nodes)} State=UNKNOWN" for n in self.nodes)
        else:
            node_lines = (f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} "
                          "State=UNKNOWN")
        self.conf.write_text(f"""\
# Written by tests/slurm_cluster.py: a single-node test cluster.
ClusterName=vbtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}{'/%n' if multi else ''}
SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}
SlurmdPidFile={d / 'run' / ('slurmd-%n.pid' if multi else 'slurmd.pid')}
SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
SlurmdLogFile={d / 'log' / ('slurmd-%n.log' if multi else 'slurmd.log')}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
KillWait=5
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
{node_lines}
PartitionName=test Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
""")
        (d / "cgroup.conf").write_text("""\
CgroupPlugin=cgroup/v1
CgroupAutomount=no
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainDevices=no
ConstrainKmemSpace=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
""")

    def _start_daemons(self, timeout: float) -> None:
        env = {**self.env}
        logs = self.slurm_dir / "log"
        daemons = [("slurmctld", [_sbin("slurmctld"), "-D", "-c", "-f", str(self.conf)])]
        for n in self.nodes:
            argv = [_sbin("slurmd"), "-D", "-f", str(self.conf), "-N", n]
            if len(self.nodes) > 1:  # a private /tmp per node: its own mount namespace
                argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                        'mount -t tmpfs -o mode=1777 "vbtmp-$1" /tmp && shift && exec "$@"',
                        "sh", n, *argv]
            daemons.append((self._slurmd(n), argv))
        for name, argv in daemons:
            self.procs[name] = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(logs / f"{name}.stderr", "w"), start_new_session=True)  # noqa: SIM115
        deadline = time.monotonic() + timeout
        waiting = list(self.nodes)
        while time.monotonic() < deadline:
            for name, _argv in daemons:
                if self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited: {self._tail(name)}")
            res = _run(["scontrol", "show", "node", waiting[0], "-o"], env=env, timeout=10)
            m = re.search(r"\bState=(\S+)", res.stdout)
            if m and m.group(1).split("+")[0] in ("IDLE", "MIXED", "ALLOCATED"):
                waiting.pop(0)
                if not waiting:
                    return
                continue
            time.sleep(0.25)
        raise RuntimeError(f"node {waiting[0]} never became idle: {res.stdout.strip()} "
                           f"{self._tail(self._slurmd(waiting[0]))}")

    def _slurmd(self, node: str) -> str:
        return "slurmd" if len(self.nodes) == 1 else f"slurmd-{node}"

    def node_tmp(self, node: str) -> Path:
        """The node's /tmp as root sees it from here (the private tmpfs of a multi-node
        cluster's node, through its slurmd's /proc/<pid>/root)."""
        if len(self.nodes) == 1:
            return Path("/tmp")
        return Path(f"/proc/{self.procs[self._slurmd(node)].pid}/root/tmp")

    def _tail(self, name: str, n: int = 1500) -> str:
        text = ""
        for f in (self.slurm_dir / "log" / f"{name}.stderr", self.slurm_dir / "log" / f"{name}.log"):
            if f.exists():
                text += f.read_text(errors="replace")
        return text.strip()[-n:]

    def stop(self) -> None:
        """scancel everything, kill the job user's leftovers, stop the daemons, unmount,
        restore /dev/fuse. Safe to call twice and after a failed start."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                self.scancel_all()
        if self.pw:
            self.kill_user_processes()
        for name in (*map(self._slurmd, self.nodes), "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if self.pw:
            self.reset_user_runtime()
        for mp in mounts_under([str(self.base)]):
            _run(["umount", "-l", mp])
        self._remove_cgroups()
        self._revoke_fuse()

    def _remove_cgroups(self) -> None:
        """slurmd leaves slurm_<node> hierarchies behind; remove the empty ones."""
        for top in (t for n in self.nodes for t in Path("/sys/fs/cgroup").glob(f"*/slurm_{n}")):
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    # ---- the job user ---------------------------------------------------------------------

    def user_pids(self) -> list[int]:
        assert self.pw
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}").st_uid == self.pw.pw_uid:
                        pids.append(int(entry))
        return pids

    def kill_user_processes(self) -> None:
        """SIGKILL every process of the (dedicated) job user, by pid."""
        for _ in range(3):
            pids = self.user_pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def reset_user_runtime(self) -> None:
        """Unmount and delete the job user's runtime dir (mounts, VFS caches, state), so no
        stranded upload of one scenario is flushed by the next one's mount."""
        assert self.pw
        prefixes = [str(self.runtime_dir), str(self.jobs_dir)]
        for pid in self.user_pids():
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"rclone" in cmd:
                    os.kill(pid, signal.SIGKILL)
        for mp in mounts_under(prefixes):
            _run(["umount", "-l", mp])
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if len(self.nodes) > 1:  # each node's own /tmp/<user>, in its slurmd's mount namespace
            for n in self.nodes:
                proc = self.procs.get(self._slurmd(n))
                if proc is None or proc.poll() is not None:
                    continue
                for mp in mounts_under([str(self.runtime_dir)], str(proc.pid)):
                    _run(["nsenter", "-t", str(proc.pid), "-m", "umount", "-l", mp])
                shutil.rmtree(self.node_tmp(n) / self.user, ignore_errors=True)

    def prepare_user(self, venv: Path, endpoint: str, access_key: str, secret_key: str,
                     extra_env: Optional[dict[str, str]] = None) -> None:
        """The user's rclone.conf (s3_remote, s3_remote_private -> endpoint) and env.sh
        (PATH with the venv first, RCLONE_CONFIG, AWS keys), both 0600 and owned by the user."""
        assert self.pw
        self.venv = Path(venv)
        sections = []
        for name, acl in (("s3_remote", "public-read"), ("s3_remote_private", "private")):
            sections.append(f"[{name}]\ntype = s3\nprovider = Other\nenv_auth = true\n"
                            f"endpoint = {endpoint}\nregion = us-east-1\nacl = {acl}\n")
        self._write_user_file(self.rclone_conf, "\n".join(sections))
        env = {"PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
               "RCLONE_CONFIG": str(self.rclone_conf),
               "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
               **(extra_env or {})}
        lines = ["# sourced by every batch script (tests/slurm_cluster.py)",
                 "unset AWS_PROFILE AWS_DEFAULT_PROFILE XDG_CONFIG_HOME VISIONLAB_BUCKETS_RUNTIME_DIR"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
        self._write_user_file(self.env_file, "\n".join(lines) + "\n")

    def _write_user_file(self, path: Path, text: str, mode: int = 0o600) -> Path:
        assert self.pw
        path.write_text(text)
        os.chown(path, self.pw.pw_uid, self.pw.pw_gid)
        path.chmod(mode)
        return path

    def user_dir_for(self, name: str) -> Path:
        """A fresh directory owned by the job user under jobs/ (for --root, job files)."""
        assert self.pw
        path = self.jobs_dir / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.pw.pw_uid, self.pw.pw_gid)
        return path

    def write_user_file(self, name: str, text: str, mode: int = 0o644) -> Path:
        """A file owned by the job user under jobs/ (helper scripts for jobs)."""
        return self._write_user_file(self.jobs_dir / name, text, mode)

    def as_user(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a shell command as the job user, from jobs/, with the SLURM client env."""
        return _run(["su", self.user, "-s", "/bin/sh", "-c", f"cd {shlex.quote(str(self.jobs_dir))}"
                     f" && {command}"], env=self.env, timeout=timeout, cwd="/")

    # ---- jobs -----------------------------------------------------------------------------

    def submit(self, body: str, sbatch_args: tuple[str, ...] | list[str] = (), name: str = "vbtest",
               source_env: bool = True) -> int:
        """Submit `body` as a bash batch script as the job user; return the job id.

        The script starts with `set -u` and sources env.sh (venv PATH, rclone config, keys);
        its output (stdout+stderr) goes to jobs/job-<id>.out (a job array's task: to
        jobs/job-<array id>_<task>.out)."""
        array = any(a.startswith(("--array", "-a")) for a in sbatch_args)
        self._seq += 1
        head = ["#!/bin/bash", f"# job {name}"]
        if source_env:
            head.append(f". {shlex.quote(str(self.env_file))}")
        script = self.write_user_file(f"{name}-{self._seq}.sh", "\n".join(head) + "\n" + body + "\n",
                                      mode=0o755)
        args = ["--parsable", f"--job-name={name}", f"--chdir={self.jobs_dir}",
                f"--output={self.jobs_dir}/job-{'%A_%a' if array else '%j'}.out", *sbatch_args, str(script)]
        res = self.as_user("/usr/bin/sbatch " + " ".join(shlex.quote(a) for a in args))
        if res.returncode != 0:
            raise RuntimeError(f"sbatch failed: {res.stderr.strip()} {res.stdout.strip()}")
        return int(res.stdout.strip().split(";")[0])

    def job_info(self, job_id: int) -> dict[str, str]:
        res = _run(["scontrol", "show", "job", "-o", str(job_id)], env=self.env)
        info: dict[str, str] = {}
        for tok in res.stdout.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                info.setdefault(k, v)
        return info

    def state(self, job_id: int) -> str:
        return self.job_info(job_id).get("JobState", "UNKNOWN")

    def output_path(self, job_id: int | str) -> Path:
        return self.jobs_dir / f"job-{job_id}.out"

    def array_info(self, array_id: int) -> list[dict[str, str]]:
        """One record per task of a job array (a pending rest of the array is one record with
        ArrayTaskId=a-b)."""
        res = _run(["scontrol", "show", "job", "-o", str(array_id)], env=self.env)
        records = []
        for line in res.stdout.splitlines():
            info: dict[str, str] = {}
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    info.setdefault(k, v)
            if info.get("ArrayJobId") == str(array_id):
                records.append(info)
        return records

    def wait_array(self, array_id: int, tasks: int, timeout: float = 180) -> list[Job]:
        """Wait until the `tasks` tasks of a job array have ended; their Jobs by task index
        (job_id is each task's own job id; output from job-<array id>_<task>.out)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.array_info(array_id)
            done = [r for r in records if r.get("JobState") in FINISHED_STATES
                    and r.get("ArrayTaskId", "").isdigit()]
            if len(done) >= tasks and len(records) == len(done):
                break
            if time.monotonic() > deadline:
                states = {r.get("ArrayTaskId"): r.get("JobState") for r in records}
                raise TimeoutError(f"array {array_id} not done after {timeout:g}s: {states}")
            time.sleep(0.3)
        jobs = []
        for r in sorted(done, key=lambda r: int(r["ArrayTaskId"])):
            out = self.output(f"{array_id}_{r['ArrayTaskId']}")
            jobs.append(Job(int(r["JobId"]), r["JobState"], r.get("ExitCode", "?"),
                            r.get("Reason", ""), out, r))
        return jobs

    def output(self, job_id: int | str) -> str:
        p = self.output_path(job_id)
        return p.read_text(errors="replace") if p.exists() else ""

    def wait(self, job_id: int, timeout: float = 180, settle: float = 0.0) -> Job:
        """Poll `scontrol show job` until the job has ended (no sacct without slurmdbd)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job_info(job_id)
            state = info.get("JobState", "UNKNOWN")
            if state in FINISHED_STATES:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout:g}s:\n"
                                   f"{self.output(job_id)[-2000:]}")
            time.sleep(0.2)
        if settle:
            time.sleep(settle)
        return Job(job_id, state, info.get("ExitCode", "?"), info.get("Reason", ""),
                   self.output(job_id), info)

    def wait_running(self, job_id: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (state := self.state(job_id)) != "RUNNING":
            if state in FINISHED_STATES or time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} is {state}, not RUNNING:\n{self.output(job_id)}")
            time.sleep(0.1)

    def wait_output(self, job_id: int, text: str, timeout: float = 60) -> str:
        """Wait until the job's output contains `text`; raise if the job ends first."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.output(job_id)
            if text in out:
                return out
            state = self.state(job_id)
            if state in FINISHED_STATES:
                out = self.output(job_id)
                if text in out:
                    return out
                raise RuntimeError(f"job {job_id} ended ({state}) without printing {text!r}:\n{out}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not print {text!r} in {timeout:g}s:\n{out}")
            time.sleep(0.1)

    def run_job(self, body: str, sbatch_args: tuple[str, ...] | list[str] = (), name: str = "vbtest",
                timeout: float = 180, settle: float = 0.0) -> Job:
        return self.wait(self.submit(body, sbatch_args, name), timeout, settle)

    def scancel(self, job_id: int | str, sig: Optional[str] = None, batch: bool = False) -> None:
        """`scancel JOBID` (SIGTERM to the job's steps, SIGKILL after KillWait), or with
        --signal=SIG [--batch] to only deliver a signal."""
        argv = ["scancel"]
        if sig:
            argv.append(f"--signal={sig}")
        if batch:
            argv.append("--batch")
        res = _run([*argv, str(job_id)], env=self.env)
        if res.returncode != 0:
            raise RuntimeError(f"scancel {job_id} failed: {res.stderr.strip()}")

    def active_jobs(self) -> list[int]:
        res = _run(["squeue", "-h", "-o", "%i"], env=self.env)
        return [int(x) for x in res.stdout.split() if x.isdigit()]

    def scancel_all(self, timeout: float = 30) -> None:
        jobs = self.active_jobs()
        if jobs:
            _run(["scancel", *map(str, jobs)], env=self.env)
        deadline = time.monotonic() + timeout
        while any(self.state(j) not in FINISHED_STATES for j in jobs) and time.monotonic() < deadline:
            time.sleep(0.2)

    def config_value(self, key: str) -> str:
        res = _run(["scontrol", "show", "config"], env=self.env)
        m = re.search(rf"^{re.escape(key)}\s*=\s*(.*)$", res.stdout, re.M)
        return m.group(1).strip() if m else ""

    def probe_proctrack(self) -> tuple[str, str]:
        """(ProctrackType from the config, the freezer line of a batch job's and an srun step's
        /proc/self/cgroup). A job in proctrack/cgroup shows freezer:/slurm_<node>/uid_N/job_N/step_N."""
        job = self.run_job("echo BATCH; cat /proc/self/cgroup\necho STEP; srun cat /proc/self/cgroup",
                           name="cgroup-probe", timeout=60)
        return self.config_value("ProctrackType"), job.output

    @staticmethod
    def freezer_paths(cgroup_text: str) -> list[str]:
        return re.findall(r"^\d+:freezer:(\S+)$", cgroup_text, re.M)
