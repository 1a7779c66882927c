#!/usr/bin/env python3
"""The write path, as jobs use it: checkpoints saved one after another through the default mount
and confirmed on S3 (`cp` + `mount-bucket --sync`), and many small result files, side by side
with `rclone copyto` / `rclone copy` straight to S3 and with the local disk.

    python bench/write_bench.py                        # 10 x 1 GiB in a row, 20,000 x 4 KiB
    python bench/write_bench.py --rounds 10 --sizes 1,8 --small 20000 --out bench/write_last.md
    python bench/write_bench.py --explore              # also bare rclone mounts with candidate flags
    python bench/write_bench.py --delay-ms 10          # through a 20 ms round-trip proxy

The loopback server's storage lives on tmpfs (/dev/shm), off the disk that holds the mount's
cache, as a remote S3 would be: otherwise the server's own writes compete with ours for one disk.
Checkpoint rounds are interleaved: each round the anchor first, then ours, local and the
candidates in an order rotated by one each round; and
every round writes a new object; each round's objects are deleted through the server afterwards,
so what the mount's cache keeps is what it would keep in a real job. The mount stays up across
rounds, as it does in a job. Reported per size: the first round, the median and the last, the
load average before and after, the local disk's free space and the mount's cache size after the
last round, and the bytes the mount's rclone wrote to the local disk (its /proc io: written minus
cancelled, i.e. pages that reached the disk).

Rows:
  rclone copyto            `rclone copyto SRC s3_remote:bench/x` (the anchor)
  vb:default               `cp SRC <link>/x` then `mount-bucket --sync bench`
  local cp + sync          `cp SRC <cache disk>/x` then `sync <file>` (the disk under the cache)
  x:<name>                 (--explore) a bare `rclone mount` with a candidate flag set, kept
                           mounted across rounds, then the expedite-and-wait --sync does
Small files: N files of 4 KiB written by 8 threads into the mount, then `--sync`, against
`rclone copy --transfers 64` of the same directory from local disk; then `--sync` with nothing
pending against `--status`.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import checkpoint_bench as cb  # noqa: E402  (make_source)
import run as rb  # noqa: E402  (World, run, script, machine)
import stage_bench as sbm  # noqa: E402  (the delaying proxy)

from visionlab.buckets.records import profiles  # noqa: E402

GiB = 1 << 30
_W = ["--vfs-cache-mode", "writes", "--vfs-write-back", "5s", "--use-server-modtime",
      "--dir-cache-time", "1m", "--low-level-retries", "3"]
# The default profile's flags exactly (as on Linux), on a bare mount: what our wrapper (the CLI's
# --sync, its wait for calm) adds on top of rclone.
_OURS = profiles.get(profiles.DEFAULT_PROFILE).flags_for(linux=True)


def _without(flags: list[str], name: str) -> list[str]:
    """`flags` less the flag `name` and its value."""
    i = flags.index(name)
    return [*flags[:i], *flags[i + 2:]]


EXPLORE: dict[str, list[str]] = {
    # The default profile before: the cache kept every written file for 24 h.
    "kept 24h (before)": [*_W, "--vfs-cache-max-age", "24h", "--vfs-cache-max-size", "50G"],
    "our flags, bare": _OURS,
    # before: the kernel's write-back cache (larger writes; but a `cp` then sets the file's time,
    # which rclone stores by copying the uploaded object onto itself on S3)
    "our flags + --write-back-cache (before), bare": [*_OURS, "--write-back-cache"],
    # rclone's other FUSE layer (go-fuse) with the same flags: larger writes from the kernel?
    "our flags, rclone mount2, bare": ["mount2", *_OURS],
    # does byte-exact name lookup change a checkpoint's speed? (it should not: one name per round)
    "our flags with unicode normalization (before), bare":
        [f for f in _OURS if f != "--no-unicode-normalization"],
}
SMALL_FOLDERS = 10  # the small files spread over this many sub-folders, in a second series
EXPLORE_SMALL: dict[str, list[str]] = {
    "our flags, bare": _OURS,
    # rclone's other FUSE layer (go-fuse): cheaper per request?
    "our flags, rclone mount2, bare": ["mount2", *_OURS],
    # mount2's writes are cheaper; its uploads (4 at once by default) then bound the total
    "our flags, rclone mount2 + --transfers 32, bare": ["mount2", *_OURS, "--transfers", "32"],
    "our flags + --transfers 16, bare": [*_OURS, "--transfers", "16"],
    "our flags + --write-back-cache (before), bare": [*_OURS, "--write-back-cache"],
    # the cache cleaner walks every cached file each poll
    "our flags, cache poll 1m, bare": [*_OURS, "--vfs-cache-poll-interval", "1m"],
    "our flags + --transfers 32, bare": [*_OURS, "--transfers", "32"],
    # before: rclone's default, 4 uploads at once
    "our flags, 4 uploads at once (before), bare": _without(_OURS, "--transfers"),
    "our flags + --transfers 16, cache poll 1m, bare":
        [*_OURS, "--transfers", "16", "--vfs-cache-poll-interval", "1m"],
    # before: a create of a new name looked for a unicode-equivalent one among every name of
    # its folder
    "our flags with unicode normalization (before), bare":
        [f for f in _OURS if f != "--no-unicode-normalization"],
}



def du(path: Path) -> int:
    total = 0
    for d, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
    return total


def disk_writes(pid: int) -> int:
    """Bytes `pid` sent to storage: written minus cancelled (pages dropped before writeback)."""
    try:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])
    except (OSError, KeyError, ValueError):
        return 0


class Bare:
    """A bare `rclone mount` with candidate flags, up for the whole series."""

    def __init__(self, world: rb.World, name: str, flags: list[str]) -> None:
        from visionlab.buckets.system import rclone

        self.w, self.name = world, name
        slug = "x" + str(abs(hash(name)) % 10**6)
        self.mp = world.work / "mnt" / slug
        self.mp.mkdir(parents=True, exist_ok=True)
        self.cache = world.work / "xcache" / slug
        self.sock = world.work / f"{slug}.sock"
        self.log = world.work / f"{slug}.log"
        command = "mount"
        if flags and flags[0] == "mount2":  # rclone's other FUSE layer (go-fuse), Linux
            command, flags = "mount2", flags[1:]
        argv = [world.rclone, command, f"s3_remote:{rb.BUCKET}", str(self.mp), "--config",
                str(world.conf), "--cache-dir", str(self.cache), "--log-file", str(self.log),
                "--rc", "--rc-addr", f"unix://{self.sock}", "--rc-no-auth", *flags]
        self.proc = subprocess.Popen(argv, env=world.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (rb.mounted(self.mp) and rclone.rc_answers(self.sock)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{name}: the mount did not come up (see {self.log})")
            time.sleep(0.05)
        self.pid = self.proc.pid

    def sync(self) -> None:
        """Return when rclone holds no written file open and has nothing left to upload, for
        QUIET_SEEN in a row: as `--sync` waits (a file's release can reach rclone after close()
        returned, and only then is it queued)."""
        from visionlab.buckets.system import procs, rclone
        from visionlab.buckets.uploads.pending import QUIET_SEEN

        with _dir_fd(self.mp) as fd:  # the kernel's writes to rclone
            _syncfs(fd)
        calm_since, deadline = None, time.monotonic() + 3600
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: uploads not done after 3600 s (see {self.log})")
            rclone.expedite_uploads(self.sock)
            busy = rclone.uploads(self.sock).pending or procs.has_open_file_under(
                self.pid, str(self.cache))
            now = time.monotonic()
            calm_since = None if busy else (calm_since or now)
            if calm_since and now - calm_since >= QUIET_SEEN:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run([rb.fusermount(), "-u", str(self.mp)], capture_output=True, check=False)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class _dir_fd:  # noqa: N801 - a small context manager
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def _syncfs(fd: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).syncfs(fd)


class Bench:
    def __init__(self, world: rb.World) -> None:
        self.w = world
        self.res: dict[str, list[float]] = {}
        self.count = 0
        self.link = world.links / rb.BUCKET
        self.local = world.work / "local"
        self.local.mkdir()

    def put(self, key: str, value: float) -> None:
        self.res.setdefault(key, []).append(value)
        rb.log(f"{key} = {value:.2f}")

    def fresh(self) -> str:
        self.count += 1
        return f"ckpt-{self.count}.bin"

    def delete_on_server(self, name: str) -> None:
        rb.run([self.w.rclone, "delete", f"s3_remote:{rb.BUCKET}/{name}"], self.w.env, timeout=600)

    def check(self, name: str, size: int) -> None:
        path = self.w.bucket_dir / name
        got = path.stat().st_size if path.is_file() else sum(
            p.stat().st_size for p in path.rglob("*") if p.is_file())
        if got != size:
            raise RuntimeError(f"{name} on the server: {got} bytes, expected {size}")

    def mount_ours(self) -> int:
        if not self.link.is_dir():
            rb.run([rb.script("mount-bucket"), rb.BUCKET, "--root", self.w.links, "-q"],
                   self.w.env, timeout=90)
        st = json.loads(next((self.w.runtime / "buckets").glob(f"{rb.BUCKET}.json")).read_text())
        return int(st["pid"])

    def sync_ours(self) -> None:
        rb.run([rb.script("mount-bucket"), "--sync", rb.BUCKET, "-q", "--timeout", "3600"],
               self.w.env, timeout=3700)

    # -- one checkpoint each
    def anchor(self, key: str, src: Path) -> None:
        name = self.fresh()
        t = time.perf_counter()
        rb.run([self.w.rclone, "copyto", src, f"s3_remote:{rb.BUCKET}/{name}"], self.w.env,
               timeout=3600)
        self.put(key, time.perf_counter() - t)
        self.check(name, src.stat().st_size)
        self.delete_on_server(name)

    def timed(self, key: str, phase: str, write, sync, name: str, size: int) -> None:
        """Time write() then sync() as key:phase, key:sync and key:total; check the bytes."""
        t = time.perf_counter()
        write()
        t_w = time.perf_counter()
        sync()
        t_end = time.perf_counter()
        self.put(f"{key}:{phase}", t_w - t)
        self.put(f"{key}:sync", t_end - t_w)
        self.put(f"{key}:total", t_end - t)
        self.check(name, size)
        self.delete_on_server(name)

    def through(self, key: str, where: Path, sync, src: Path) -> None:
        name = self.fresh()
        self.timed(key, "cp", lambda: rb.run(["cp", src, where / name], self.w.env, timeout=3600),
                   sync, name, src.stat().st_size)

    def local_copy(self, key: str, src: Path) -> None:
        dst = self.local / "ckpt.bin"
        t = time.perf_counter()
        rb.run(["cp", src, dst], self.w.env, timeout=3600)
        rb.run(["sync", dst], self.w.env, timeout=3600)
        self.put(key, time.perf_counter() - t)
        dst.unlink()

    # -- many small files
    def small_files(self, n: int, rounds: int, bares: dict[str, Bare]) -> None:
        src = self.w.work / "small-src"
        src.mkdir()
        blob = os.urandom(4096 + 4096)
        for i in range(n):
            (src / f"r{i:06d}.json").write_bytes(blob[i % 4096:i % 4096 + 4096])
        os.sync()
        self.mount_ours()

        def write_through(dest: Path, folders: int) -> None:
            # file i goes to sub-folder i % folders (none with folders=1)
            subs = [dest / f"f{k:03d}" if folders > 1 else dest for k in range(folders)]
            for d in subs:
                d.mkdir(parents=True)
            names = [subs[i % folders] / f"r{i:06d}.json" for i in range(n)]

            def one(part: list[Path]) -> None:
                for p in part:
                    with open(p, "wb") as f:
                        f.write(blob[int(p.name[1:7]) % 4096:int(p.name[1:7]) % 4096 + 4096])

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(one, [names[k::8] for k in range(8)]))

        def through(key: str, root: Path, sync, folders: int, name: str) -> None:
            self.timed(key, "write", lambda: write_through(root / name, folders), sync, name,
                       n * 4096)

        # ours into one folder, and into SMALL_FOLDERS sub-folders (what the README advises)
        targets = [("small", self.link, self.sync_ours, 1),
                   ("small:folders", self.link, self.sync_ours, SMALL_FOLDERS),
                   *[(f"small:x:{k}", x.mp, x.sync, 1) for k, x in bares.items()]]
        for rnd in range(rounds):
            name = f"small-{rnd}"
            t = time.perf_counter()
            rb.run([self.w.rclone, "copy", src, f"s3_remote:{rb.BUCKET}/{name}-anchor",
                    "--transfers", "64"], self.w.env, timeout=3600)
            self.put("small:anchor", time.perf_counter() - t)
            self.check(f"{name}-anchor", n * 4096)
            self.delete_on_server(f"{name}-anchor")
            k = rnd % len(targets)
            for i, target in enumerate(targets[k:] + targets[:k]):
                through(*target, f"{name}-{i}")
            # with nothing pending: --sync against --status
            for _ in range(3):
                t = time.perf_counter()
                rb.run([rb.script("mount-bucket"), "--status", rb.BUCKET], self.w.env,
                       timeout=60)
                self.put("small:status", time.perf_counter() - t)
                t = time.perf_counter()
                self.sync_ours()
                self.put("small:idle-sync", time.perf_counter() - t)
        shutil.rmtree(src)


def fmt_series(values: list[float]) -> str:
    return f"{values[0]:.1f} / {statistics.median(values):.1f} / {values[-1]:.1f}"


def ratios(ours: list[float], anchor: list[float]) -> str:
    r = [o / a for o, a in zip(ours, anchor)]
    return f"{r[0]:.2f}x / {statistics.median(r):.2f}x / {r[-1]:.2f}x"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1", help="checkpoint sizes in GiB (default 1)")
    ap.add_argument("--rounds", type=int, default=10, help="checkpoints in a row (default 10)")
    ap.add_argument("--big-rounds", type=int, default=2, help="rounds for sizes above 1 GiB")
    ap.add_argument("--small", type=int, default=20000, help="small files (0: skip)")
    ap.add_argument("--small-rounds", type=int, default=2)
    ap.add_argument("--explore", action="store_true", help="also the EXPLORE bare mounts")
    ap.add_argument("--only", default="",
                    help="with --explore: only the candidates whose name holds one of these "
                         "|-separated strings (names hold commas)")
    ap.add_argument("--out", help="also write the Markdown report here")
    ap.add_argument("--json", help="also write every sample here")
    ap.add_argument("--delay-ms", type=float, default=0.0, metavar="MS",
                    help="every client, the anchor's rclone and the mounts alike, reaches the "
                         "server through stage_bench.py's proxy, MS each way (10: a 20 ms "
                         "round trip, as to a real S3 region)")
    args = ap.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",") if s]
    if args.only:
        words = [w for w in args.only.split("|") if w]
        for candidates in (EXPLORE, EXPLORE_SMALL):
            for name in [n for n in candidates if not any(w in n for w in words)]:
                del candidates[name]

    world = rb.World({"dirs": 0, "files": 0, "size": 0, "large": 0, "large_size": 0}, False)
    shm = Path(tempfile.mkdtemp(prefix="vbb-s3-", dir="/dev/shm"))
    atexit.register(lambda: shutil.rmtree(shm, ignore_errors=True))
    atexit.register(world.cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    world.data, world.bucket_dir = shm, shm / rb.BUCKET
    world.bucket_dir.mkdir()
    if args.delay_ms:  # the config start_server writes names the proxy
        proxy = sbm.Proxy(world, args.delay_ms)
        atexit.register(proxy.stop)
        world.endpoint = proxy.endpoint
    world.start_server()
    b = Bench(world)
    where = "server storage on tmpfs"
    if args.delay_ms:
        where += (f", through a {2 * args.delay_ms:g} ms round-trip proxy "
                  f"(measured {sbm.rtt_ms(world):.1f} ms)")
    lines = [f"## Write path run ({time.strftime('%Y-%m-%d %H:%M')}; {where})", "",
             rb.machine(world), ""]
    table = ["| size | rounds | config | cp s | sync s | total s (first / median / last) | "
             "/ copyto (first / median / last) | load before → after | after the last round |",
             "|---|---|---|---|---|---|---|---|---|"]
    t_start = time.monotonic()
    for g in sizes:
        size = int(g * GiB)
        rounds = args.rounds if g <= 1 else args.big_rounds
        src = world.work / f"src-{g:g}G.bin"
        cb.make_source(src, size)
        rb.settle()
        pid = b.mount_ours()
        bares = {n: Bare(world, n, f) for n, f in EXPLORE.items()} if args.explore else {}
        w0 = {"ours": disk_writes(pid), **{n: disk_writes(x.pid) for n, x in bares.items()}}
        load0 = os.getloadavg()[0]
        base = f"{g:g}G"
        steps = [(b.through, f"{base}:ours", b.link, b.sync_ours),
                 (b.local_copy, f"{base}:local"),
                 *[(b.through, f"{base}:x:{n}", x.mp, x.sync) for n, x in bares.items()]]
        for rnd in range(rounds):
            # the anchor first in each round, the others rotated: none always follows another
            b.anchor(f"{base}:copyto", src)
            k = rnd % len(steps)
            for fn, *step in steps[k:] + steps[:k]:
                fn(*step, src)
        time.sleep(7)  # the cache cleaner's poll (5 s) after the last upload
        load1 = os.getloadavg()[0]
        busy = rb.busy(load0)
        free = shutil.disk_usage(world.work).free / GiB
        r = b.res
        anchor = r[f"{base}:copyto"]
        loads = f"{load0:.2f} → {load1:.2f}{busy}"
        table.append(f"| {g:g} GiB | {rounds} | `rclone copyto` | | | {fmt_series(anchor)} | | "
                     f"{loads} | |")
        caches = {"ours": (world.runtime / "buckets" / "cache", pid)}
        caches.update({n: (x.cache, x.pid) for n, x in bares.items()})
        for label, key, cache_of in [("vb:default", f"{base}:ours", "ours"),
                                     *[(f"x:{n}", f"{base}:x:{n}", n) for n in bares]]:
            cache, p = caches[cache_of]
            after = (f"cache {du(cache) / GiB:.1f} GiB, disk free {free:.0f} GiB, "
                     f"its rclone wrote {(disk_writes(p) - w0[cache_of]) / GiB:.1f} GiB to disk")
            table.append(f"| {g:g} GiB | {rounds} | {label} | {fmt_series(r[key + ':cp'])} | "
                         f"{fmt_series(r[key + ':sync'])} | {fmt_series(r[key + ':total'])} | "
                         f"**{ratios(r[key + ':total'], anchor)}** | {loads} | {after} |")
        local = r[f"{base}:local"]
        table.append(f"| {g:g} GiB | {rounds} | local `cp` + `sync` | | | {fmt_series(local)} | | "
                     f"{loads} | cp into the mount / local: "
                     f"{ratios(r[base + ':ours:cp'], local)} |")
        for x in bares.values():
            x.stop()
        src.unlink()
    if args.small:
        rb.settle()
        load0 = os.getloadavg()[0]
        bares = ({n: Bare(world, "small " + n, f) for n, f in EXPLORE_SMALL.items()}
                 if args.explore else {})
        b.small_files(args.small, args.small_rounds, bares)
        for x in bares.values():
            x.stop()
        load1 = os.getloadavg()[0]
        busy = rb.busy(load0)
        r = b.res
        table += ["", f"Small files: {args.small:,} x 4 KiB, {args.small_rounds} round(s), "
                  f"load {load0:.2f} → {load1:.2f}{busy}", "",
                  "| what | seconds (first / median / last) | ratio |", "|---|---|---|",
                  f"| `rclone copy --transfers 64` (the anchor) | {fmt_series(r['small:anchor'])} | |",
                  f"| written by 8 threads | {fmt_series(r['small:write'])} | |",
                  f"| then `--sync` | {fmt_series(r['small:sync'])} | |",
                  f"| written + `--sync` | {fmt_series(r['small:total'])} | "
                  f"**{ratios(r['small:total'], r['small:anchor'])}** |",
                  f"| `--status` | {fmt_series(r['small:status'])} | |",
                  f"| `--sync` with nothing pending | {fmt_series(r['small:idle-sync'])} | "
                  f"**{statistics.median(r['small:idle-sync']) / statistics.median(r['small:status']):.2f}x**"
                  " `--status` (medians) |"]
        for key, what in [("small:folders", f"into {SMALL_FOLDERS} sub-folders"),
                          *[(f"small:x:{n}", f"x:{n}") for n in bares]]:
            table += [f"| {what}: written + sync ({fmt_series(r[key + ':write'])} + "
                      f"{fmt_series(r[key + ':sync'])}) | {fmt_series(r[key + ':total'])} | "
                      f"**{ratios(r[key + ':total'], r['small:anchor'])}** |"]
    text = "\n".join(lines + table) + f"\n\n({time.monotonic() - t_start:.0f} s in all)\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(b.res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
