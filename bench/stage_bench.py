#!/usr/bin/env python3
"""Staging benchmark: `mount-bucket B --stage --wait` vs reading through FUSE, on bare
loopback S3 and through a delaying TCP proxy (latency mode, ~20 ms round trip).

    python bench/stage_bench.py                    # 2,000 x 100 KiB, both modes (~6 min)
    python bench/stage_bench.py --quick            # 300 files, fewer variants (~65 s)
    python bench/stage_bench.py --out bench/stage_results.md --json /tmp/stage.json

Reuses the world of bench/run.py (private temp dir, loopback `rclone serve s3 --etag-hash ''`,
private HOME / RCLONE_CONFIG / VISIONLAB_BUCKETS_RUNTIME_DIR, page cache dropped when root).
In latency mode the rclone.conf endpoint points at a proxy this script starts itself
(`--proxy`: a separate process, so its GIL does not compete with the readers) that holds every
chunk it relays for --delay-ms in each direction.

Rows, per mode: a first and a second epoch (8 reader threads, every file, shuffled) through
plain `rclone mount` and every profile of profiles.py; time to ready of `--stage --wait`
(fresh VISIONLAB_BUCKETS_STAGE_DIR); epochs 2 and 3 through the staged link vs a plain local
copy of the same files; a re-stage of the unchanged bucket (time, `downloaded` of stage.json);
a PyTorch DataLoader (4 workers) over the staged link; bare `rclone sync` with other
--transfers/--checkers (the flags of rclone.sync_argv).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as rb  # noqa: E402  (bench/run.py: World, configs, read_all, drop_caches)

FULL = {"dirs": 20, "files": 2000, "size": 100 * 1024, "large": 0, "large_size": 0, "rounds": 1}
QUICK = {"dirs": 4, "files": 300, "size": 100 * 1024, "large": 0, "large_size": 0, "rounds": 1}
READERS = 8
EPOCH_REPS = 9  # interleaved samples per warm epoch (median)
TORCH_PY = os.environ.get("BENCH_TORCH_PYTHON", "/work/torch-venv/bin/python")
SYNC_VARIANTS_FULL = [  # (label, extra flags) for bare `rclone sync` (what sync_argv runs)
    ("t32 c32 fast-list (sync_argv before)", ["--transfers", "32", "--checkers", "32", "--fast-list"]),
    ("t8 c8 fast-list", ["--transfers", "8", "--checkers", "8", "--fast-list"]),
    ("t16 c16 fast-list", ["--transfers", "16", "--checkers", "16", "--fast-list"]),
    ("t64 c64 fast-list", ["--transfers", "64", "--checkers", "64", "--fast-list"]),
    ("t64 c64 fast-list server-modtime (sync_argv now)",
     ["--transfers", "64", "--checkers", "64", "--fast-list", "--use-server-modtime"]),
    ("t128 c128 fast-list", ["--transfers", "128", "--checkers", "128", "--fast-list"]),
    ("t64 c8 fast-list", ["--transfers", "64", "--checkers", "8", "--fast-list"]),
    ("t32 c32 no fast-list", ["--transfers", "32", "--checkers", "32"]),
]
SYNC_VARIANTS_QUICK = SYNC_VARIANTS_FULL[:1] + SYNC_VARIANTS_FULL[3:4]


# ----------------------------------------------------------------------------- delaying proxy


def serve_proxy(listen: int, target: int, delay: float) -> None:
    """Relay 127.0.0.1:listen <-> 127.0.0.1:target; every chunk is delivered `delay` s after it
    was read, in order, in each direction (latency, no bandwidth cap: chunks are pipelined)."""

    async def pump(reader, writer, loop):
        queue: asyncio.Queue = asyncio.Queue()

        async def sender():
            try:
                while True:
                    due, data = await queue.get()
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                return

        task = asyncio.ensure_future(sender())
        try:
            while True:
                data = await reader.read(1 << 16)
                queue.put_nowait((loop.time() + delay, data))
                if not data:
                    break
        except (ConnectionError, OSError):
            queue.put_nowait((loop.time(), b""))
        await task

    async def handle(c_reader, c_writer):
        loop = asyncio.get_running_loop()
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            c_writer.close()
            return
        for w in (c_writer, s_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pump(c_reader, s_writer, loop), pump(s_reader, c_writer, loop),
                             return_exceptions=True)
        for w in (c_writer, s_writer):
            w.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Proxy:
    def __init__(self, world: rb.World, delay_ms: float) -> None:
        self.port = rb.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        with open(world.work / "proxy.log", "wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--proxy", str(self.port), str(world.port),
                 str(delay_ms)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        rb.wait_port(self.port, 10, "proxy")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def set_endpoint(world: rb.World, endpoint: str) -> None:
    world.conf.write_text(
        f"[s3_remote]\ntype = s3\nprovider = Other\nenv_auth = true\n"
        f"endpoint = {endpoint}\nregion = us-east-1\n")
    world.conf.chmod(0o600)


def rtt_ms(world: rb.World) -> float:
    """Median time of one small unsigned GET (answered 403) over a kept connection."""
    import http.client
    from urllib.parse import urlparse

    u = urlparse(read_endpoint(world))
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    times = []
    for _ in range(11):
        t = time.perf_counter()
        conn.request("GET", f"/{rb.BUCKET}/x")
        conn.getresponse().read()
        times.append((time.perf_counter() - t) * 1000)
    conn.close()
    return statistics.median(times[1:])


def read_endpoint(world: rb.World) -> str:
    for line in world.conf.read_text().splitlines():
        if line.startswith("endpoint = "):
            return line.split(" = ", 1)[1]
    return world.endpoint


# ----------------------------------------------------------------------------- the bench


class StageBench:
    def __init__(self, world: rb.World, args) -> None:
        self.w = world
        self.args = args
        self.res: dict[str, dict[str, float]] = {}
        self.notes: list[str] = []
        self.local_copy = world.work / "localcopy"
        self.size = world.sizes["size"]

    def put(self, mode: str, key: str, value) -> None:
        self.res.setdefault(mode, {})[key] = value
        rb.log(f"{mode}: {key} = {value if not isinstance(value, float) else round(value, 3)}")

    def epoch(self, root: Path, seed: int) -> float:
        """Seconds for one epoch: every file, shuffled, READERS threads; byte counts checked."""
        paths = [str(root / p) for p in rb.shuffled(self.w.small, seed)]
        t = time.perf_counter()
        got = rb.read_all(paths, READERS)
        dt = time.perf_counter() - t
        if got != len(paths) * self.size:
            raise RuntimeError(f"epoch under {root}: {got} bytes, expected {len(paths) * self.size}")
        return dt

    # -- FUSE: plain rclone and every profile, first and second epoch
    def fuse(self, mode: str, cfg: rb.Config) -> None:
        cfg.reset()
        rb.drop_caches()
        cfg.warm_up()
        t0 = time.perf_counter()
        root = cfg.mount()
        try:
            t_mount = time.perf_counter() - t0
            e1 = self.epoch(root, 1)
            e2 = self.epoch(root, 2)
        finally:
            cfg.unmount()
        self.put(mode, f"{cfg.name}:mount_s", t_mount)
        self.put(mode, f"{cfg.name}:e1_s", e1)
        self.put(mode, f"{cfg.name}:ready_s", t_mount + e1)  # command start -> epoch 1 read
        self.put(mode, f"{cfg.name}:e2_s", e2)

    # -- staging
    def mb(self, *argv, timeout=600, stdout=subprocess.DEVNULL):
        return rb.run([rb.script("mount-bucket"), *argv], self.env, timeout=timeout, stdout=stdout)

    def stage_json(self) -> dict:
        return json.loads((self.stage_dir / rb.BUCKET / "stage.json").read_text())

    def stage(self, mode: str) -> None:
        try:
            self._stage(mode)
        finally:  # never leave a mount, a copy or a link behind for the next step
            rb.run([rb.script("unmount-bucket"), rb.BUCKET, "-q", "--timeout", "60", "--drop-stage"],
                   self.env, timeout=120, check=False)
            link = self.w.links / rb.BUCKET
            if os.path.islink(link):
                os.unlink(link)

    def _stage(self, mode: str) -> None:
        w = self.w
        self.stage_dir = w.work / f"stage-{mode}"
        self.env = {**w.env, "VISIONLAB_BUCKETS_STAGE_DIR": str(self.stage_dir)}
        link = w.links / rb.BUCKET
        ours = rb.Ours("vb:dataset", "", w, "dataset")
        ours.reset()
        rb.drop_caches()
        ours.warm_up()
        t0 = time.perf_counter()
        self.mb(rb.BUCKET, "--root", w.links, "--stage", "--wait", "-q")
        ready = time.perf_counter() - t0
        real = os.path.realpath(link)
        if not real.startswith(str(self.stage_dir)):
            raise RuntimeError(f"after --stage --wait the link points at {real}")
        sj = self.stage_json()
        self.put(mode, "stage:ready_s", ready)
        self.put(mode, "stage:stager_s", sj["updated_at"] - sj["started_at"])
        self.put(mode, "stage:downloaded", sj["downloaded"])
        status = json.loads(self.mb("--status", rb.BUCKET, "--json", stdout=subprocess.PIPE).stdout)
        self.put(mode, "stage:status_state", (status.get("stage") or {}).get("state"))
        # epochs 2 and 3: staged link vs a plain local copy (same fs), interleaved
        shutil.rmtree(self.local_copy, ignore_errors=True)
        shutil.copytree(w.bucket_dir, self.local_copy)
        self.epoch(self.local_copy, 1)  # its epoch 1: into the page cache, as staging did
        # An epoch of 2,000 warm files takes ~50 ms: one sample is mostly noise, so each of
        # epochs 2 and 3 is the median of EPOCH_REPS interleaved samples (local, staged, ...).
        for n in (2, 3):
            local, staged = [], []
            for rep in range(EPOCH_REPS):
                local.append(self.epoch(self.local_copy, 10 * n + rep))
                staged.append(self.epoch(link, 10 * n + rep))
            self.put(mode, f"local:e{n}_s", statistics.median(local))
            self.put(mode, f"stage:e{n}_s", statistics.median(staged))
        if not self.args.no_torch:
            self.torch(mode, link)
        rb.run([rb.script("unmount-bucket"), rb.BUCKET, "-q", "--timeout", "60"], self.env, timeout=120)
        # re-stage of the unchanged bucket (copy kept as a cache by a plain unmount)
        rb.drop_caches()
        ours.warm_up()
        t0 = time.perf_counter()
        self.mb(rb.BUCKET, "--root", w.links, "--stage", "--wait", "-q")
        self.put(mode, "restage:ready_s", time.perf_counter() - t0)
        sj = self.stage_json()
        self.put(mode, "restage:stager_s", sj["updated_at"] - sj["started_at"])
        self.put(mode, "restage:downloaded", sj["downloaded"])
        self.put(mode, "restage:e_s", self.epoch(link, 4))
        rb.run([rb.script("unmount-bucket"), rb.BUCKET, "-q", "--timeout", "60", "--drop-stage"],
               self.env, timeout=120)
        if (self.stage_dir / rb.BUCKET).exists():
            self.notes.append(f"{mode}: --drop-stage left {self.stage_dir / rb.BUCKET}")

    def torch(self, mode: str, link: Path) -> None:
        if not Path(TORCH_PY).exists():
            self.notes.append(f"torch row skipped: no {TORCH_PY} (set BENCH_TORCH_PYTHON)")
            return
        listing = self.w.work / "torch-files.txt"
        listing.write_text("\n".join(self.w.small))
        for name, root in (("stage", link), ("local", self.local_copy)):
            out = subprocess.run([TORCH_PY, "-c", TORCH_SCRIPT, str(root), str(listing),
                                  str(self.size)], capture_output=True, text=True, timeout=600,
                                 env={**self.env, "PYTHONPATH": ""})
            if out.returncode != 0:
                self.notes.append(f"torch {name}: {out.stderr.strip()[-400:]}")
                return
            r = json.loads(out.stdout.strip().splitlines()[-1])
            self.put(mode, f"torch:{name}_s", r["epoch_s"])
            self.put(mode, "torch:version", r["torch"])

    # -- bare `rclone sync` variants (the flags of rclone.sync_argv)
    def sync_variants(self, mode: str, variants) -> None:
        w = self.w
        dest = w.work / "syncdest"
        for label, flags in variants:
            shutil.rmtree(dest, ignore_errors=True)
            rb.drop_caches()
            rb.run([w.rclone, "version"], w.env)
            t = time.perf_counter()
            rb.run([w.rclone, "sync", f"s3_remote:{rb.BUCKET}", dest, "--config", w.conf, *flags],
                   w.env, timeout=900)
            dt = time.perf_counter() - t
            n = sum(1 for _ in dest.rglob("*.bin"))
            if n != len(w.small):
                raise RuntimeError(f"sync {label}: {n} files")
            self.put(mode, f"sync:{label}", dt)
        shutil.rmtree(dest, ignore_errors=True)
        # the listing staging.plan runs before anything starts (rclone.list_objects), and variants
        for label, flags in LIST_VARIANTS:
            t = time.perf_counter()
            out = rb.run([w.rclone, *flags, "--config", w.conf, f"s3_remote:{rb.BUCKET}"], w.env,
                         timeout=900, stdout=subprocess.PIPE).stdout
            dt = time.perf_counter() - t
            if flags[0] == "lsjson" and len(json.loads(out)) != len(w.small):
                raise RuntimeError(f"{label}: wrong count")
            self.put(mode, f"list:{label}", dt)


LIST_VARIANTS = [
    ("`lsjson -R --files-only --no-mimetype --fast-list --use-server-modtime` (list_objects now)",
     ["lsjson", "-R", "--files-only", "--no-mimetype", "--fast-list", "--use-server-modtime"]),
    ("`lsjson -R --files-only --fast-list --hash` (list_objects before)",
     ["lsjson", "-R", "--files-only", "--fast-list", "--hash"]),
    ("`lsjson -R --files-only --fast-list` (no --hash)",
     ["lsjson", "-R", "--files-only", "--fast-list"]),
    ("`lsjson ... --hash --no-modtime --no-mimetype`",
     ["lsjson", "-R", "--files-only", "--fast-list", "--hash", "--no-modtime", "--no-mimetype"]),
    ("`lsjson ... --no-modtime --no-mimetype` (no --hash)",
     ["lsjson", "-R", "--files-only", "--fast-list", "--no-modtime", "--no-mimetype"]),
]


TORCH_SCRIPT = r"""
import json, sys, time
import torch
from torch.utils.data import Dataset, DataLoader
root, listing, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
paths = [root + "/" + p for p in open(listing).read().split("\n") if p]
class Files(Dataset):
    def __len__(self): return len(paths)
    def __getitem__(self, i):
        with open(paths[i], "rb", buffering=0) as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
def collate(batch):
    return sum(int(t.numel()) for t in batch)
times = []
for epoch in range(2):
    g = torch.Generator(); g.manual_seed(epoch)
    dl = DataLoader(Files(), batch_size=32, shuffle=True, num_workers=4, collate_fn=collate, generator=g)
    t = time.perf_counter(); got = sum(dl); times.append(time.perf_counter() - t)
    assert got == len(paths) * size, (got, len(paths) * size)
print(json.dumps({"epoch_s": min(times), "torch": torch.__version__}))
"""


# ----------------------------------------------------------------------------- report

MODES = {"bare": "bare loopback", "latency": "latency proxy"}


def report(sb: StageBench, modes: list[str], profiles: list[str], n: int, extra: dict) -> str:
    r = sb.res

    def g(m, k):
        return r.get(m, {}).get(k)

    def rate(m, k):
        v = g(m, k)
        return f"{n / v:,.0f} files/s ({v:.2f} s)" if v else "-"

    hdr = "| row | " + " | ".join(MODES[m] for m in modes) + " |"
    sep = "|---|" + "---|" * len(modes)
    out = [hdr, sep]

    def row(label, fn):
        out.append(f"| {label} | " + " | ".join(fn(m) for m in modes) + " |")

    def ratio(a, b, fmt="{:.2f}x"):
        return fmt.format(a / b) if a and b else "-"

    row("first epoch, plain `rclone mount` (mount + read)", lambda m: rate(m, "rclone:ready_s"))
    row("first epoch, `--profile dataset` (mount + read)", lambda m: rate(m, "vb:dataset:ready_s"))
    row("**`--stage --wait`: command start -> link on the copy**", lambda m: rate(m, "stage:ready_s"))
    row("  of which the stager process (listing done -> ready)",
        lambda m: f"{g(m, 'stage:stager_s') or 0:.2f} s")
    row("staging speed-up vs plain rclone first epoch",
        lambda m: ratio(g(m, "rclone:ready_s"), g(m, "stage:ready_s")))
    row("staging speed-up vs `dataset` first epoch",
        lambda m: ratio(g(m, "vb:dataset:ready_s"), g(m, "stage:ready_s")))
    for e in (2, 3):
        row(f"epoch {e}, staged link", lambda m, e=e: rate(m, f"stage:e{e}_s"))
        row(f"epoch {e}, plain local copy", lambda m, e=e: rate(m, f"local:e{e}_s"))
    row("staged link / local copy (epochs 2+3)",
        lambda m: ratio((g(m, "local:e2_s") or 0) + (g(m, "local:e3_s") or 0),
                        (g(m, "stage:e2_s") or 0) + (g(m, "stage:e3_s") or 0)))
    row("re-stage of the unchanged bucket (command start -> ready)", lambda m: rate(m, "restage:ready_s"))
    row("re-stage / first stage (time)", lambda m: ratio(g(m, "restage:ready_s"), g(m, "stage:ready_s")))
    row("`downloaded` in stage.json: first stage / re-stage",
        lambda m: f"{g(m, 'stage:downloaded')} / {g(m, 'restage:downloaded')}")
    row("DataLoader, 4 workers, staged link (best of 2 epochs)", lambda m: rate(m, "torch:stage_s"))
    row("DataLoader, 4 workers, local copy (best of 2 epochs)", lambda m: rate(m, "torch:local_s"))

    goals = [hdr.replace("| row |", "| goal |"), sep]

    def goal(label, fn):
        goals.append(f"| {label} | " + " | ".join(fn(m) for m in modes) + " |")

    def judge(v, ok, need_mode=None):
        def f(m):
            if need_mode and m != need_mode:
                return "(no goal)" if v(m) is None else f"{v(m):.2f}x (no goal)"
            x = v(m)
            return "n/a" if x is None else f"{x:.2f}x {'**met**' if ok(x) else 'NOT met'}"
        return f

    def div(a, b):
        return lambda m: (g(m, a) / g(m, b)) if g(m, a) and g(m, b) else None

    st_local = lambda m: (((g(m, "local:e2_s") or 0) + (g(m, "local:e3_s") or 0)) /  # noqa: E731
                          ((g(m, "stage:e2_s") or 0) + (g(m, "stage:e3_s") or 1e9)))
    goal("epochs through the staged link >= 0.9x the plain local copy", judge(st_local, lambda x: x >= 0.9))
    goal("staging >= 3x a first epoch through plain rclone (latency)",
         judge(div("rclone:ready_s", "stage:ready_s"), lambda x: x >= 3.0, "latency"))
    goal("staging >= 1.0x a first epoch through plain rclone (bare loopback)",
         judge(div("rclone:ready_s", "stage:ready_s"), lambda x: x >= 1.0, "bare"))
    goal("staging vs a first epoch through `--profile dataset` (3x latency / 1.0x bare)",
         lambda m: judge(div("vb:dataset:ready_s", "stage:ready_s"),
                         (lambda x: x >= 3.0) if m == "latency" else (lambda x: x >= 1.0))(m))
    goal("re-stage of an unchanged bucket <= 0.2x the first (and downloads 0)",
         lambda m: judge(div("restage:ready_s", "stage:ready_s"),
                         lambda x: x <= 0.2 and g(m, "restage:downloaded") == 0)(m))

    prof = ["| config | " + " | ".join(f"{MODES[m]}: epoch 1 | {MODES[m]}: epoch 2" for m in modes) + " |",
            "|---|" + "---|---|" * len(modes)]
    for c in ["rclone"] + [f"vb:{p}" for p in profiles]:
        cells = []
        for m in modes:
            for e in ("e1", "e2"):
                v, ref = g(m, f"{c}:{e}_s"), g(m, f"rclone:{e}_s")
                cells.append(f"{n / v:,.0f} files/s ({ref / v:.2f}x rclone)" if v and ref else "-")
        prof.append(f"| `{c}` | " + " | ".join(cells) + " |")
    rank = []
    for m in modes:
        for e, what in (("e1", "epoch 1"), ("e2", "epoch 2")):
            order = sorted((c for c in ["rclone"] + [f"vb:{p}" for p in profiles] if g(m, f"{c}:{e}_s")),
                           key=lambda c: g(m, f"{c}:{e}_s"))
            rank.append(f"- {MODES[m]}, {what}: " + " > ".join(f"`{c}`" for c in order))

    syncs = [k.split(":", 1)[1] for k in r.get(modes[0], {}) if k.startswith("sync:")]
    srows = ["| `rclone sync` flags | " + " | ".join(MODES[m] for m in modes) + " |", sep]
    for label in syncs:
        srows.append(f"| {label} | " + " | ".join(rate(m, f"sync:{label}") for m in modes) + " |")

    lrows = ["| listing (one run) | " + " | ".join(MODES[m] for m in modes) + " |", sep]
    for label, _f in LIST_VARIANTS:
        lrows.append(f"| {label} | " + " | ".join(
            f"{g(m, 'list:' + label):.2f} s" if g(m, "list:" + label) else "-" for m in modes) + " |")
    srows += ["", *lrows]
    parts = ["### Staging", "", *out, "", "### Goals", "", *goals, "",
             "### Profiles (8 readers, every file; epoch 2 = same mount again)", "", *prof, "",
             "Ranking (fastest first):", "", *rank, "",
             "### `rclone sync` and the listing alone (sync: fresh destination, page cache dropped; "
             "sync_argv runs the first row, staging.plan the first listing)",
             "", *srows, ""]
    if sb.notes:
        parts += ["### Notes", ""] + [f"- {x}" for x in sb.notes] + [""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--proxy":
        serve_proxy(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) / 1000)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 files, fewer sync variants (< 2 min)")
    ap.add_argument("--modes", default="bare,latency", help="bare,latency (default both)")
    ap.add_argument("--delay-ms", type=float, default=10.0, help="proxy delay per chunk, each way")
    ap.add_argument("--no-torch", action="store_true", help="skip the DataLoader row")
    ap.add_argument("--no-sync", action="store_true", help="skip the bare `rclone sync` variants")
    ap.add_argument("--out", help="also write the Markdown report to this file")
    ap.add_argument("--json", help="also write every measurement to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (for debugging)")
    ap.add_argument("--rev", default="HEAD",
                    help="measure src/ of this git revision (a snapshot on PYTHONPATH: others may "
                         "be editing the checkout); 'worktree' = the checkout as it is")
    args = ap.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    modes = [m for m in args.modes.split(",") if m]

    world = rb.World(sizes, args.keep)
    rev = "worktree"
    if args.rev != "worktree":
        repo = HERE.parent
        rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", args.rev], check=True,
                             capture_output=True, text=True).stdout.strip()
        snap = world.work / "src-snapshot"
        snap.mkdir()
        archive = subprocess.run(["git", "-C", repo, "archive", rev, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", snap], input=archive, check=True)
        world.env["PYTHONPATH"] = str(snap / "src")  # before the editable install's .pth entry
        sys.path.insert(0, str(snap / "src"))
    try:
        from visionlab.buckets.records import profiles
    except ImportError:  # a --rev from before the layers were folders (flat modules)
        from visionlab.buckets import profiles

    proxy: list[Proxy] = []
    atexit.register(world.cleanup)
    atexit.register(lambda: [p.stop() for p in proxy])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    t_start = time.monotonic()
    rb.log(f"work dir {world.work}; {sizes['files']} x {sizes['size'] // 1024} KiB")
    world.build()
    world.start_server()
    sb = StageBench(world, args)
    names = list(profiles.PROFILES)
    rtts = {}
    for mode in modes:
        if mode == "latency":
            proxy.append(Proxy(world, args.delay_ms))
            set_endpoint(world, proxy[0].endpoint)
        else:
            set_endpoint(world, world.endpoint)
        if os.path.islink(world.links / rb.BUCKET):
            os.unlink(world.links / rb.BUCKET)
        rtts[mode] = rtt_ms(world)
        rb.log(f"mode {mode}: request round trip {rtts[mode]:.1f} ms")
        steps = [("stage", lambda mode=mode: sb.stage(mode))]
        steps += [(c.name, lambda c=c, mode=mode: sb.fuse(mode, c)) for c in
                  [rb.BareRclone("rclone", "", world, [])] +
                  [rb.Ours(f"vb:{p}", "", world, p) for p in names]]
        if not args.no_sync:
            steps.append(("sync", lambda mode=mode: sb.sync_variants(
                mode, SYNC_VARIANTS_QUICK if args.quick else SYNC_VARIANTS_FULL)))
        for name, step in steps:
            t = time.monotonic()
            try:
                step()
            except Exception as exc:  # one broken row must not hide the others
                sb.notes.append(f"{mode} {name}: {exc}")
                rb.log(f"FAILED {mode} {name}: {exc}")
            rb.log(f"{mode} {name}: {time.monotonic() - t:.1f}s")
    n = len(world.small)
    head = [f"## Run ({'quick' if args.quick else 'full'}: {n} files x {sizes['size'] // 1024} KiB "
            f"in {sizes['dirs']} folders, {READERS} reader threads, one run each; "
            f"{time.monotonic() - t_start:.0f} s)", "", rb.machine(world),
            f"- visionlab-buckets measured: src/ of `{rev}`",
            "- request round trip (one GET, kept connection): " +
            ", ".join(f"{MODES[m]} {rtts[m]:.1f} ms" for m in modes) +
            f"; proxy delay {args.delay_ms:g} ms per chunk each way", ""]
    text = "\n".join(head) + "\n" + report(sb, modes, names, n, {})
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "results": sb.res, "rtt_ms": rtts,
                                               "notes": sb.notes}, indent=1))
    return 1 if sb.notes else 0


if __name__ == "__main__":
    sys.exit(main())
