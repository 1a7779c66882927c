#!/usr/bin/env python3
"""Benchmark: our mount profiles vs plain `rclone mount`, s3fs-fuse, raw S3 and local disk.

    python bench/run.py            # full: 4000 x 110 KiB in 40 folders + 4 x 256 MiB, 3 rounds
    python bench/run.py --quick    # tiny dataset, 1 round: CI keeps this script from rotting
    python bench/run.py --explore  # also candidate rclone flag sets (bare `rclone mount`)

Everything runs against a loopback `rclone serve s3` over a private temp dir: HOME,
VISIONLAB_BUCKETS_RUNTIME_DIR and RCLONE_CONFIG point into it, so the real /tmp/<user>, ~ and
rclone config are never touched. Every mount and process it starts is removed at exit.

Workloads (each "cold" one on a fresh mount with an empty VFS cache after dropping the page
cache; the page cache is only dropped when running as root):
  first byte   command start -> first byte of one file read through the mount (ms)
  list names   os.walk of the whole bucket on a fresh mount (readdir only), files/s
  list + sizes the walk plus an lstat of every file: names and sizes, what `rclone lsf -R` gives
  cold 1 / 8   read every small file once, 1 reader (a 1/4 subset) or 8 readers (all), files/s
  warm 1 / 8   the same files again on the same mount: the second epoch, files/s
  large        the large files one after the other, 1 reader, MB/s (10^6 bytes)
  RSS 8 / RSS large   peak RSS (VmHWM) of the FUSE daemon after the 8-reader / large workloads
The file order of every epoch is shuffled (a DataLoader with shuffle=True); every read is
checked for the right byte count. Rounds are interleaved: round 1 of every config, then round 2...
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY, SECRET = "benchaccesskey", "benchsecretkey-0123456789"
BUCKET = "bench"
MiB = 1 << 20

FULL = {"dirs": 40, "files": 4000, "size": 110 * 1024, "large": 4, "large_size": 256 * MiB,
        "rounds": 3, "fast_reps": 41}
QUICK = {"dirs": 4, "files": 160, "size": 110 * 1024, "large": 2, "large_size": 16 * MiB,
         "rounds": 1, "fast_reps": 5}

# Flags shared by the read-only candidates below (what the design notes already measured).
_RO = ["--read-only", "--no-modtime", "--dir-cache-time", "1h", "--attr-timeout", "1h"]
# Candidate flag sets, mounted with a bare `rclone mount` (only with --explore). What wins goes
# into src/visionlab/buckets/records/profiles.py and is then measured through `mount-bucket --profile`.
EXPLORE: dict[str, list[str]] = {
    "off-ro": [*_RO],
    "off-ro-streams4": [*_RO, "--vfs-read-chunk-streams", "4", "--vfs-read-chunk-size", "8M"],
    "off-ro-streams8-ra": [*_RO, "--vfs-read-chunk-streams", "8", "--vfs-read-chunk-size", "4M",
                           "--max-read-ahead", "1M"],
    "off-ro-nohead": [*_RO, "--s3-no-head-object"],
    "full-ro": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint"],
    "full-ro-streams4": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                         "--vfs-read-chunk-streams", "4", "--vfs-read-chunk-size", "8M",
                         "--buffer-size", "4M"],
    "full-ro-nohead-hc0": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                           "--s3-no-head-object", "--vfs-handle-caching", "0s"],
    "full-ro-b0": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                   "--buffer-size", "0"],
    "full-ro-nohead-b1m": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                           "--s3-no-head-object", "--buffer-size", "1M"],
    "full-ro-nohead-b1m-streams4": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                                    "--s3-no-head-object", "--buffer-size", "1M",
                                    "--vfs-read-chunk-streams", "4", "--vfs-read-chunk-size", "8M"],
    "off-ro-nohead-streams4": [*_RO, "--s3-no-head-object", "--vfs-read-chunk-streams", "4",
                               "--vfs-read-chunk-size", "8M"],
    "full-ro-nohead-b1m-ra32": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                                "--s3-no-head-object", "--buffer-size", "1M",
                                "--vfs-read-ahead", "32M"],
    "full-ro-b1m": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                    "--buffer-size", "1M"],
    "full-ro-b1m-dio": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                        "--buffer-size", "1M", "--direct-io"],
    "full-ro-b1m-streams2": [*_RO, "--vfs-cache-mode", "full", "--vfs-fast-fingerprint",
                             "--buffer-size", "1M", "--vfs-read-chunk-streams", "2",
                             "--vfs-read-chunk-size", "16M"],
    # read-write candidates for the default profile
    "rw-writes-smt": ["--vfs-cache-mode", "writes", "--use-server-modtime",
                      "--dir-cache-time", "1m"],
    "rw-writes-nomt": ["--vfs-cache-mode", "writes", "--no-modtime", "--dir-cache-time", "1m"],
    "rw-full-smt": ["--vfs-cache-mode", "full", "--use-server-modtime", "--vfs-fast-fingerprint",
                    "--dir-cache-time", "1m", "--buffer-size", "1M"],
    "rw-full-smt-nohead": ["--vfs-cache-mode", "full", "--use-server-modtime",
                           "--vfs-fast-fingerprint", "--s3-no-head-object", "--dir-cache-time",
                           "1m", "--buffer-size", "1M"],
}

# ----------------------------------------------------------------------------- small helpers

_CLEANUP: list = []


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv, env, timeout=120, check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], env=env, timeout=timeout, stdin=subprocess.DEVNULL,
                          stdout=kw.pop("stdout", subprocess.DEVNULL),
                          stderr=kw.pop("stderr", subprocess.PIPE), **kw)
    if check and proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, bytes) else b""
        err = err.decode(errors="replace").strip()[-800:]
        raise RuntimeError(f"{' '.join(map(str, argv[:3]))}... exited {proc.returncode}: {err}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    if can_drop_caches():
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def pids_with(needle: str, word: str) -> list[int]:
    """Pids of processes whose command line holds `needle` (our private temp path) and `word`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle.encode() in cmd and word.encode() in cmd:
            found.append(int(pid))
    return found


def peak_rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_gone(pid: int | None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.02)


def wait_port(port: int, timeout: float, what: str) -> None:
    """Return once 127.0.0.1:port accepts a connection; RuntimeError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


def fusermount() -> str:
    return shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"


def script(name: str) -> str:
    """A console script of this Python (not a pyenv shim: a shim adds its own ~50 ms)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


# ----------------------------------------------------------------------------- the world


BUSY = 0.5  # load average (1 min) before a series above which its row is marked unreliable


def busy(load: float) -> str:
    """The mark a row taken at `load` (1 min, before it) carries: empty on a quiet machine."""
    return " **unreliable: machine busy**" if load > BUSY else ""


def settle(limit: float = 120.0) -> None:
    """Wait (up to `limit` s) for the load the previous series left to decay below BUSY, so that
    the load before a series says whether something else was running."""
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] > BUSY and time.monotonic() < deadline:
        time.sleep(5)


class World:
    """Private temp dir with the S3 server, dataset, config, HOME and runtime dir."""

    def __init__(self, sizes: dict, keep: bool) -> None:
        self.sizes = sizes
        self.keep = keep
        # Short path: rclone's rc unix socket lives below the runtime dir (108-byte limit).
        self.work = Path(tempfile.mkdtemp(prefix="vbb-", dir="/tmp"))
        shm = Path("/dev/shm")
        self.scratch = Path(tempfile.mkdtemp(prefix="vbb-dl-", dir=shm if shm.is_dir() else self.work))
        self.data = self.work / "s3"
        self.bucket_dir = self.data / BUCKET
        self.home = self.work / "home"
        self.runtime = self.work / "rt"
        self.links = self.work / "links"
        self.conf = self.work / "rclone.conf"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server: subprocess.Popen | None = None
        for d in (self.home, self.links, self.data):
            d.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("SLURM_JOB_ID", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                                 "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "AWS_SESSION_TOKEN")}
        self.env.update(HOME=str(self.home), VISIONLAB_BUCKETS_RUNTIME_DIR=str(self.runtime),
                        RCLONE_CONFIG=str(self.conf), AWS_ACCESS_KEY_ID=KEY,
                        AWS_SECRET_ACCESS_KEY=SECRET, XDG_CACHE_HOME=str(self.work / "xdg-cache"))
        # The real rclone binary, first on PATH for every config (ours finds rclone on PATH):
        # a pyenv-style shim in front of it would add ~70 ms to each rclone start.
        self.rclone = script("rclone") if Path(script("rclone")).is_absolute() else "rclone"
        self.env["PATH"] = os.pathsep.join([str(Path(self.rclone).parent), self.env["PATH"]])
        self.small: list[str] = []  # relative paths
        self.large: list[str] = []

    # -- dataset
    def build(self) -> None:
        s = self.sizes
        per_dir = s["files"] // s["dirs"]
        rng = random.Random(7)
        block = os.urandom(s["size"] + 4096)
        for d in range(s["dirs"]):
            folder = self.bucket_dir / "small" / f"d{d:02d}"
            folder.mkdir(parents=True)
            for i in range(per_dir):
                rel = f"small/d{d:02d}/f{d * per_dir + i:05d}.bin"
                off = rng.randrange(4096)
                (self.bucket_dir / rel).write_bytes(block[off:off + s["size"]])
                self.small.append(rel)
        (self.bucket_dir / "large").mkdir()
        chunk = os.urandom(8 * MiB)
        for n in range(s["large"]):
            rel = f"large/big{n}.bin"
            with open(self.bucket_dir / rel, "wb") as f:
                for _ in range(s["large_size"] // len(chunk)):
                    f.write(chunk)
            self.large.append(rel)
        os.sync()

    # -- server and config
    def start_server(self, etag_hash: str = "", stored: bool = False) -> None:
        """The loopback server. ETags are not hashes by default (the server would read every
        file of a listing to hash it); etag_hash="MD5" gives the MD5 ETags real S3 gives an
        object uploaded in one part, which rclone checks each download against: without them
        it spends ~40% more CPU per small object (bench/stage_results.md). stored=True keeps
        those sums (see _store_env) instead of reading each object again on every listing."""
        self.conf.write_text(
            f"[s3_remote]\ntype = s3\nprovider = Other\nenv_auth = true\n"
            f"endpoint = {self.endpoint}\nregion = us-east-1\n")
        self.conf.chmod(0o600)
        served = str(self.data)
        env = {**self.env, "RCLONE_CONFIG": "/dev/null"}
        if stored:
            served, env = "store:", self._store_env()
        with open(self.work / "server.log", "wb") as server_log:  # the child keeps its own fd
            self.server = subprocess.Popen(
                [self.rclone, "serve", "s3", "--addr", f"127.0.0.1:{self.port}",
                 "--auth-key", f"{KEY},{SECRET}", "--etag-hash", etag_hash, "--vfs-cache-mode", "off",
                 served],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=server_log, env=env)
        wait_port(self.port, 15, "rclone serve s3")

    def _store_env(self) -> dict[str, str]:
        """The served directory behind rclone's hasher overlay, its MD5 sums kept in a bolt
        database on tmpfs (no fsync cost): a listing reads the stored sums, as S3 stores each
        object's ETag, instead of reading every object again to hash it."""
        conf = self.work / "server.conf"
        conf.write_text(f"[store]\ntype = hasher\nremote = {self.data}\nhashsums = md5\n"
                        "max_age = off\n")
        return {**self.env, "RCLONE_CONFIG": str(conf),
                "RCLONE_CACHE_DIR": str(self.scratch / "server-cache")}

    def store_etags(self) -> None:
        """Hash every object once into the hasher's database (the server must be stopped: the
        database is locked while it runs)."""
        run([self.rclone, "hashsum", "md5", "store:", "--checkers", "8",
             "--output-file", "/dev/null"], self._store_env(), timeout=7200)

    def cleanup(self) -> None:
        prefix = str(self.work)
        try:
            with open("/proc/self/mountinfo") as f:
                mps = [line.split()[4] for line in f]
        except OSError:
            mps = []
        for mp in mps:
            if mp.startswith(prefix):
                subprocess.run([fusermount(), "-uz", mp], capture_output=True, check=False)
        for pid in pids_with(prefix, ""):  # daemons we started: their argv holds our temp dir
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.server and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(5)
            except subprocess.TimeoutExpired:
                self.server.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)


# ----------------------------------------------------------------------------- configs


class Config:
    """Something the workloads read through: mount() returns the directory, unmount() ends it."""

    kind = "mount"

    def __init__(self, name: str, label: str, world: World) -> None:
        self.name, self.label, self.w = name, label, world
        self.mp = world.work / "mnt" / name.replace(":", "-")

    def mount(self) -> Path:
        raise NotImplementedError

    def unmount(self) -> None:
        pid = self.pid()
        if mounted(self.mp):
            run([fusermount(), "-u", self.mp], self.w.env, timeout=30)
        wait_gone(pid)

    def pid(self) -> int | None:
        return None

    def reset(self) -> None:
        """Empty caches before a cold mount."""

    def warm_up(self) -> None:
        """Run the mount command's binary once (e.g. --version) after the page cache was dropped:
        mount-to-first-byte measures a cold bucket, not a cold disk under the tool itself."""


class Local(Config):
    kind = "local"

    def mount(self) -> Path:
        return self.w.bucket_dir

    def unmount(self) -> None:
        pass


class BareRclone(Config):
    """`rclone mount --daemon` with the given flags (none = what a user gets without us)."""

    def __init__(self, name, label, world, flags: list[str]) -> None:
        super().__init__(name, label, world)
        self.flags = flags
        self.cache = world.work / "xcache" / name.replace(":", "-")

    def reset(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)

    def mount(self) -> Path:
        self.mp.mkdir(parents=True, exist_ok=True)
        # A daemon keeps inherited pipes open: its output goes to a file, never to a pipe.
        with open(self.w.work / f"{self.mp.name}.out", "ab") as out:
            run([self.w.rclone, "mount", f"s3_remote:{BUCKET}", self.mp, "--daemon",
                 "--config", self.w.conf, "--cache-dir", self.cache,
                 "--log-file", self.w.work / f"{self.mp.name}.log", *self.flags], self.w.env,
                timeout=60, stderr=out)
        return self.mp

    def pid(self) -> int | None:
        pids = pids_with(str(self.mp), "mount")
        return pids[0] if pids else None

    def warm_up(self) -> None:
        run([self.w.rclone, "version"], self.w.env, timeout=30)


class S3fs(Config):
    def mount(self) -> Path:
        self.mp.mkdir(parents=True, exist_ok=True)
        pw = self.w.work / "s3fs.passwd"
        if not pw.exists():
            pw.write_text(f"{KEY}:{SECRET}\n")
            pw.chmod(0o600)
        with open(self.w.work / "s3fs.out", "ab") as out:
            run(["s3fs", BUCKET, self.mp, "-o",
                 f"passwd_file={pw},url={self.w.endpoint},use_path_request_style,ro"],
                self.w.env, timeout=60, stderr=out)
        return self.mp

    def pid(self) -> int | None:
        pids = pids_with(str(self.mp), "s3fs")
        return pids[0] if pids else None

    def warm_up(self) -> None:
        run(["s3fs", "--version"], self.w.env, timeout=30)


class Ours(Config):
    """Our tool: `mount-bucket bench --root LINKS --profile NAME`, `unmount-bucket bench`."""

    def __init__(self, name, label, world, profile: str) -> None:
        super().__init__(name, label, world)
        self.profile = profile
        self.mp = world.runtime / "rclone" / BUCKET

    def reset(self) -> None:
        shutil.rmtree(self.w.runtime / "buckets" / "cache" / BUCKET, ignore_errors=True)

    def mount(self) -> Path:
        run([script("mount-bucket"), BUCKET, "--root", self.w.links, "--profile", self.profile,
             "-q"], self.w.env, timeout=90)
        return self.w.links / BUCKET

    def unmount(self) -> None:
        pid = self.pid()
        run([script("unmount-bucket"), BUCKET, "-q", "--timeout", "60"], self.w.env, timeout=120)
        wait_gone(pid)

    def warm_up(self) -> None:  # the CLI's modules and rclone's binary, as after any earlier use
        run([sys.executable, "-c", "import visionlab.buckets.mounts, visionlab.buckets.cli"],
            self.w.env, timeout=30)
        run([self.w.rclone, "version"], self.w.env, timeout=30)

    def pid(self) -> int | None:
        try:
            return int(json.loads((self.w.runtime / "buckets" / f"{BUCKET}.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None


class RawS3(Config):
    kind = "raw"

    def mount(self) -> Path:
        raise NotImplementedError


# ----------------------------------------------------------------------------- workloads


def read_all(paths: list[str], readers: int) -> int:
    """Read every file completely with `readers` threads; return the bytes read."""
    it = iter(paths)
    totals = [0] * readers
    errors: list[BaseException] = []

    def worker(slot: int) -> None:
        buf = memoryview(bytearray(4 * MiB))
        n = 0
        try:
            for p in it:
                with open(p, "rb", buffering=0) as f:
                    while True:
                        k = f.readinto(buf)
                        if not k:
                            break
                        n += k
        except BaseException as exc:  # reported below
            errors.append(exc)
        totals[slot] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(totals)


def shuffled(items: list[str], seed: int) -> list[str]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


def walk(root: Path) -> list[str]:
    """Every file below root, names only (readdir, no stat: what `ls -R` / `os.walk` cost)."""
    return [os.path.join(d, f) for d, _dirs, files in os.walk(root) for f in files]


class Bench:
    def __init__(self, world: World, sizes: dict) -> None:
        self.w = world
        self.sizes = sizes
        per_dir = sizes["files"] // sizes["dirs"]
        self.subset = world.small[: per_dir * max(1, sizes["dirs"] // 4)]
        self.results: dict[str, dict[str, list[float]]] = {}
        self.notes: list[str] = []

    def record(self, config: str, metric: str, value: float | None) -> None:
        if value is not None:
            self.results.setdefault(config, {}).setdefault(metric, []).append(value)

    def check(self, got: int, paths: list[str], what: str, size: int) -> None:
        want = len(paths) * size
        if got != want:
            raise RuntimeError(f"{what}: read {got} bytes, expected {want}")

    def fresh(self, cfg: Config, warm_up: bool = False) -> tuple[Path, float]:
        cfg.reset()
        drop_caches()
        if warm_up:
            cfg.warm_up()
        t0 = time.perf_counter()
        root = cfg.mount()
        return root, t0

    def run_mount_config(self, cfg: Config, rnd: int) -> None:
        s = self.sizes
        small = self.w.small
        first = small[0]
        # 1. mount to first byte, then a cold listing of the whole bucket
        root, t0 = self.fresh(cfg, warm_up=True)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with open(root / first, "rb", buffering=0) as f:
                        assert f.read(1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)
            if cfg.kind != "local":
                self.record(cfg.name, "first_ms", (time.perf_counter() - t0) * 1000)
            t = time.perf_counter()
            names = walk(root)
            t_names = time.perf_counter() - t
            for path in names:
                os.lstat(path)
            t_all = time.perf_counter() - t
            n = len(names)
            if n != len(small) + len(self.w.large):
                raise RuntimeError(f"{cfg.name}: listing found {n} files")
            self.record(cfg.name, "list_names", n / t_names)
            self.record(cfg.name, "list", n / t_all)
        finally:
            cfg.unmount()
        # 2. cold small files, 1 reader (a subset), then the warm second pass
        root, _ = self.fresh(cfg)
        try:
            for metric, seed in (("cold1", rnd * 10 + 1), ("warm1", rnd * 10 + 2)):
                paths = [str(root / p) for p in shuffled(self.subset, seed)]
                t = time.perf_counter()
                got = read_all(paths, 1)
                self.record(cfg.name, metric, len(paths) / (time.perf_counter() - t))
                self.check(got, paths, f"{cfg.name} {metric}", s["size"])
        finally:
            cfg.unmount()
        # 3. cold small files, 8 readers (all), then the second epoch; daemon peak RSS
        root, _ = self.fresh(cfg)
        try:
            for metric, seed in (("cold8", rnd * 10 + 3), ("warm8", rnd * 10 + 4)):
                paths = [str(root / p) for p in shuffled(small, seed)]
                t = time.perf_counter()
                got = read_all(paths, 8)
                self.record(cfg.name, metric, len(paths) / (time.perf_counter() - t))
                self.check(got, paths, f"{cfg.name} {metric}", s["size"])
            self.record(cfg.name, "rss8", peak_rss_mb(cfg.pid()))
        finally:
            cfg.unmount()
        # 4. large files, sequential, 1 reader
        root, _ = self.fresh(cfg)
        try:
            paths = [str(root / p) for p in self.w.large]
            t = time.perf_counter()
            got = read_all(paths, 1)
            self.record(cfg.name, "large", got / 1e6 / (time.perf_counter() - t))
            self.check(got, paths, f"{cfg.name} large", s["large_size"])
            self.record(cfg.name, "rss_large", peak_rss_mb(cfg.pid()))
        finally:
            cfg.unmount()

    def run_raw(self, rnd: int) -> None:
        """Raw S3, no FUSE: `rclone lsf` / `rclone copy` / `rclone cat` straight from the server."""
        w, s = self.w, self.sizes
        rc = [w.rclone, "--config", w.conf]
        name = "raw"
        drop_caches()
        run([w.rclone, "version"], w.env)
        t = time.perf_counter()
        run([*rc, "cat", "--head", "1", f"s3_remote:{BUCKET}/{w.small[0]}"], w.env)
        self.record(name, "first_ms", (time.perf_counter() - t) * 1000)
        drop_caches()
        t = time.perf_counter()
        out = run([*rc, "lsf", "-R", "--files-only", "--format", "sp", f"s3_remote:{BUCKET}"],
                  w.env, stdout=subprocess.PIPE).stdout
        dt = time.perf_counter() - t
        n = len(out.splitlines())
        if n != len(w.small) + len(w.large):
            raise RuntimeError(f"raw listing found {n} files")
        self.record(name, "list", n / dt)
        self.record(name, "list_names", n / dt)  # an S3 listing carries the sizes anyway
        subset_dirs = sorted({p.split("/")[1] for p in self.subset})
        filt = w.work / "subset.filter"
        filt.write_text("".join(f"+ /{d}/**\n" for d in subset_dirs) + "- **\n")

        def copy(src: str, n_files: int, transfers: int, extra=()) -> float:
            dest = w.scratch / "copy"
            shutil.rmtree(dest, ignore_errors=True)
            t = time.perf_counter()
            run([*rc, "copy", f"s3_remote:{BUCKET}/{src}", dest, "--transfers", str(transfers),
                 "--checkers", str(max(transfers, 4)), "--no-check-dest", *extra],
                w.env, timeout=900)
            dt = time.perf_counter() - t
            got = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
            shutil.rmtree(dest, ignore_errors=True)
            return dt if got else float("nan")

        for metric, files, transfers, cold in (("cold1", self.subset, 1, True),
                                               ("warm1", self.subset, 1, False),
                                               ("cold8", w.small, 8, True),
                                               ("warm8", w.small, 8, False)):
            if cold:
                drop_caches()
            extra = ["--filter-from", str(filt)] if files is self.subset else []
            dt = copy("small", len(files), transfers, extra)
            self.record(name, metric, len(files) / dt)
        drop_caches()
        dt = copy("large", len(w.large), 1)
        self.record(name, "large", len(w.large) * s["large_size"] / 1e6 / dt)

    # -- fast paths
    def fast_paths(self, reps: int) -> dict[str, float]:
        w = self.w
        py = sys.executable
        ours = Ours("vb:default", "", w, "default")
        ours.reset()
        ours.mount()
        other_root = w.work / "links2"
        other_root.mkdir(exist_ok=True)
        cmds = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import visionlab.buckets'": [py, "-c", "import visionlab.buckets"],
            "hello-world Click command": [py, str(HERE / "hello_click.py"), "-q"],
            "mount-bucket --status B": [script("mount-bucket"), "--status", BUCKET, "-q"],
            "mount-bucket B --root D (already mounted)":
                [script("mount-bucket"), BUCKET, "--root", other_root, "-q"],
            "mount-bucket --sync B (nothing pending)": [script("mount-bucket"), "--sync", BUCKET, "-q"],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        try:
            # Bytecode as an installed package has it (pip and `uv tool install --compile-bytecode`
            # write it; so does Python's first import, unless PYTHONDONTWRITEBYTECODE is set, as
            # on this machine: without this, every run would compile our sources and not click's).
            import compileall

            import visionlab.buckets

            compileall.compile_dir(os.path.dirname(visionlab.buckets.__file__), quiet=1)
            for argv in cmds.values():  # warm-up
                run(argv, w.env, timeout=60)
            for _ in range(reps):
                for k, argv in cmds.items():
                    t = time.perf_counter()
                    run(argv, w.env, timeout=60)
                    times[k].append((time.perf_counter() - t) * 1000)
        finally:
            ours.unmount()
        return {k: statistics.median(v) for k, v in times.items()}


# ----------------------------------------------------------------------------- report

METRICS = [  # key, header, higher is better, format
    ("list_names", "list names files/s", True, "{:,.0f}"),
    ("list", "list + sizes files/s", True, "{:,.0f}"),
    ("cold1", "cold small 1 reader files/s", True, "{:,.0f}"),
    ("cold8", "cold small 8 readers files/s", True, "{:,.0f}"),
    ("large", "large seq MB/s", True, "{:,.0f}"),
    ("warm1", "warm re-read 1 reader files/s", True, "{:,.0f}"),
    ("warm8", "warm re-read 8 readers files/s", True, "{:,.0f}"),
    ("first_ms", "mount to first byte ms", False, "{:,.0f}"),
    ("rss8", "daemon peak RSS 8 readers MB", False, "{:,.0f}"),
    ("rss_large", "daemon peak RSS large MB", False, "{:,.0f}"),
]


def med(bench: Bench, config: str, metric: str) -> float | None:
    vals = [v for v in bench.results.get(config, {}).get(metric, []) if v == v]
    return statistics.median(vals) if vals else None


def table(bench: Bench, configs: list[Config]) -> str:
    lines = ["| config | " + " | ".join(h for _, h, _, _ in METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
    for cfg in configs:
        cells = []
        for key, _h, _hb, fmt in METRICS:
            v = med(bench, cfg.name, key)
            if v is None:
                cells.append("-")
                continue
            cell = fmt.format(v)
            ratios = []
            for ref, tag in (("raw", "raw"), ("local", "local")):
                r = med(bench, ref, key)
                if r and ref != cfg.name and not key.startswith("rss"):
                    ratios.append(f"{v / r:.2f}x {tag}")
            if ratios:
                cell += " (" + ", ".join(ratios) + ")"
            cells.append(cell)
        lines.append(f"| {cfg.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(bench: Bench, ours: list[Config], fast: dict[str, float] | None) -> str:
    rows = ["| goal | " + " | ".join(f"`{c.name.split(':', 1)[1]}`" for c in ours) + " |",
            "|---|" + "---|" * len(ours)]

    def ratio(c, metric, ref):
        a, b = med(bench, c.name, metric), med(bench, ref, metric)
        return a / b if a and b else None

    def cell(r, ok) -> str:
        return "n/a" if r is None else f"{r:.2f}x {'**met**' if ok(r) else 'NOT met'}"

    specs = [
        ("cold small 8 readers >= 1.2x plain rclone", "cold8", "rclone", lambda r: r >= 1.2),
        ("cold small 8 readers >= 1.0x s3fs", "cold8", "s3fs", lambda r: r >= 1.0),
        ("large seq >= 1.0x plain rclone", "large", "rclone", lambda r: r >= 1.0),
        ("large seq >= 0.9x s3fs", "large", "s3fs", lambda r: r >= 0.9),
        ("warm re-read (8 readers) >= 2x plain rclone", "warm8", "rclone", lambda r: r >= 2.0),
        ("warm re-read (8 readers) >= 2x s3fs", "warm8", "s3fs", lambda r: r >= 2.0),
        ("warm re-read (8 readers) vs local disk (no goal)", "warm8", "local", lambda r: True),
        ("warm re-read (1 reader) vs plain rclone (no goal)", "warm1", "rclone", lambda r: True),
        ("listing, names only (`os.walk`) >= 0.9x raw S3", "list_names", "raw",
         lambda r: r >= 0.9),
        ("listing, names + sizes (walk + lstat) >= 0.9x raw S3", "list", "raw",
         lambda r: r >= 0.9),
        ("mount to first byte <= 1.5x bare rclone mount --daemon", "first_ms", "rclone",
         lambda r: r <= 1.5),
    ]
    for text, metric, ref, ok in specs:
        rows.append(f"| {text} | " + " | ".join(cell(ratio(c, metric, ref), ok) for c in ours) + " |")
    rss = []
    for c in ours:
        v = med(bench, c.name, "rss8")
        rss.append("n/a" if v is None else f"{v:.0f} MB {'**met**' if v < 300 else 'NOT met'}")
    rows.append("| FUSE daemon peak RSS, 8 readers < 300 MB | " + " | ".join(rss) + " |")
    out = "\n".join(rows)
    if fast:
        base_py = fast["python -c pass"]
        hello = fast["hello-world Click command"]
        frows = ["| command | median ms | ratio | goal |", "|---|---|---|---|"]
        for k, v in fast.items():
            if k == "python -c 'import visionlab.buckets'":
                r = v / base_py
                frows.append(f"| `{k}` | {v:.1f} | {r:.2f}x `python -c pass` | <= 1.3x: "
                             f"{'**met**' if r <= 1.3 else 'NOT met'} |")
            elif k.startswith("mount-bucket --sync"):
                r = v / fast["mount-bucket --status B"]
                frows.append(f"| `{k}` | {v:.1f} | {r:.2f}x `mount-bucket --status B` | <= 1.5x: "
                             f"{'**met**' if r <= 1.5 else 'NOT met'} |")
            elif k.startswith("mount-bucket"):
                r = v / hello
                frows.append(f"| `{k}` | {v:.1f} | {r:.2f}x hello-world Click | <= 1.3x: "
                             f"{'**met**' if r <= 1.3 else 'NOT met'} |")
            else:
                frows.append(f"| `{k}` | {v:.1f} | | |")
        out += "\n\nFast paths (medians of interleaved repetitions):\n\n" + "\n".join(frows)
    return out


def machine(world: World) -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30

    def version(argv) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
            return out.splitlines()[0].strip() if out else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"

    return "\n".join([
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Linux {platform.release()}",
        f"- {version([world.rclone, 'version'])}; s3fs: {version(['s3fs', '--version'])}",
        f"- Python {platform.python_version()}; fuse: {version([fusermount(), '--version'])}",
        f"- page cache dropped before each cold mount: {'yes' if can_drop_caches() else 'NO (not root)'}",
    ])


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny dataset, 1 round (for CI)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    ap.add_argument("--explore", action="store_true", help="also the candidate flag sets")
    ap.add_argument("--only", help="comma-separated config names to run (see --list)")
    ap.add_argument("--list", action="store_true", help="list the config names and exit")
    ap.add_argument("--no-fast", action="store_true", help="skip the fast-path measurements")
    ap.add_argument("--fast-only", action="store_true", help="only the fast-path measurements")
    ap.add_argument("--out", help="also write the Markdown report to this file")
    ap.add_argument("--json", help="also write every raw measurement to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (for debugging)")
    args = ap.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes["rounds"] = args.rounds

    from visionlab.buckets.records import profiles

    world = World(sizes, args.keep)
    atexit.register(world.cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))

    configs: list[Config] = [Local("local", "local disk (physical limit)", world),
                             RawS3("raw", "raw S3, no FUSE (`rclone copy`/`lsf`)", world),
                             BareRclone("rclone", "plain `rclone mount` defaults", world, [])]
    if shutil.which("s3fs"):
        configs.append(S3fs("s3fs", "s3fs-fuse (`-o ro`)", world))
    ours = [Ours(f"vb:{n}", f"**ours: `--profile {n}`**", world, n) for n in profiles.PROFILES]
    configs += ours
    if args.explore:
        configs += [BareRclone(f"x:{n}", f"candidate `{n}`: {' '.join(f)}", world, f)
                    for n, f in EXPLORE.items()]
    if args.list:
        for c in configs:
            print(c.name)
        world.cleanup()
        return 0
    if args.only:
        wanted = set(args.only.split(","))
        configs = [c for c in configs if c.name in wanted or c.name in ("local", "raw")]
        ours = [c for c in ours if c in configs]
    if not os.path.exists("/dev/fuse"):
        log("no /dev/fuse: only local disk and raw S3 are measured")
        configs = [c for c in configs if c.kind != "mount"]
        ours = []

    if args.fast_only:
        configs = []
    t_start = time.monotonic()
    log(f"work dir {world.work}; building dataset ({sizes['files']} x {sizes['size'] // 1024} KiB"
        f" + {sizes['large']} x {sizes['large_size'] // MiB} MiB)")
    world.build()
    world.start_server()
    bench = Bench(world, sizes)
    for rnd in range(sizes["rounds"]):
        for cfg in configs:
            t = time.monotonic()
            try:
                if cfg.kind == "raw":
                    bench.run_raw(rnd)
                else:
                    bench.run_mount_config(cfg, rnd)
            except Exception as exc:  # one broken config must not hide the others
                bench.notes.append(f"{cfg.name} round {rnd + 1}: {exc}")
                log(f"FAILED {cfg.name}: {exc}")
            log(f"round {rnd + 1}/{sizes['rounds']} {cfg.name}: {time.monotonic() - t:.1f}s")
    fast = None
    if not args.no_fast and ours:
        log("fast paths")
        fast = bench.fast_paths(sizes["fast_reps"])

    mode = "quick" if args.quick else "full"
    report = [
        f"## Run ({mode}: {sizes['files']} files x {sizes['size'] // 1024} KiB in {sizes['dirs']} "
        f"folders + {sizes['large']} x {sizes['large_size'] // MiB} MiB; medians of "
        f"{sizes['rounds']} interleaved round(s); {time.monotonic() - t_start:.0f} s)",
        "", machine(world), "",
        "Each cell: median (ratio to raw S3, ratio to local disk). Cold 1 reader reads a quarter "
        "of the small files; 8 readers read all of them. Warm = the second epoch on the same mount.",
        "", table(bench, configs), "",
    ]
    if ours:
        report += ["### Goals", "", goals(bench, ours, fast), ""]
    if bench.notes:
        report += ["### Failures", ""] + [f"- {n}" for n in bench.notes] + [""]
    text = "\n".join(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "results": bench.results,
                                               "fast": fast, "notes": bench.notes}, indent=1))
    return 1 if bench.notes else 0


if __name__ == "__main__":
    sys.exit(main())
