#!/usr/bin/env python3
"""Checkpoint benchmark: one large file written through the mount and confirmed on S3
(`cp` + `mount-bucket --sync`) vs `rclone copyto` of the same file straight to S3, side by side,
on bare loopback S3 and through the delaying proxy of stage_bench.py (~20 ms round trip).

    python bench/checkpoint_bench.py                          # 1 GiB and 8 GiB, both modes
    python bench/checkpoint_bench.py --sizes 1 --rounds 3     # GiB sizes, rounds interleaved
    python bench/checkpoint_bench.py --explore                # candidate flag sets, bare rclone mount

Reuses the world of bench/run.py (private temp dir, loopback `rclone serve s3`, private HOME /
RCLONE_CONFIG / VISIONLAB_BUCKETS_RUNTIME_DIR). Every measurement deletes its object (and the
mount's cached copy) afterwards, so the disk holds at most: the source file, one copy in the VFS
cache, one on the server. Rows, per mode and size (median of the rounds):
  copyto         `rclone copyto SRC s3_remote:bench/x` with rclone's defaults (the anchor)
  copyto tuned   (--explore) the same with bigger parts, more at once (TUNED, in the environment)
  vb:default     `cp SRC <link>/x` then `mount-bucket --sync bench`: cp s, sync s, total, ratio
  x:<name>       (--explore) bare `rclone mount` with a candidate flag set / environment, then
                 the same expedite-and-wait over its rc socket that --sync does
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as rb  # noqa: E402  (bench/run.py: World, run, wait_gone, script)
import stage_bench as sbm  # noqa: E402  (the delaying proxy and the endpoint switch)

GiB = 1 << 30
MODES = {"bare": "bare loopback", "latency": "20 ms proxy"}
# name -> (rclone mount flags, extra environment), for --explore
_W = ["--vfs-cache-mode", "writes", "--use-server-modtime", "--dir-cache-time", "1m",
      "--low-level-retries", "3"]
_WBC = [*_W, "--vfs-write-back", "5s", "--write-back-cache"]
# Bigger parts, more of them at once: given in rclone's environment, as the tuned anchor gets them.
TUNED = {"RCLONE_S3_CHUNK_SIZE": "16M", "RCLONE_S3_UPLOAD_CONCURRENCY": "16"}
EXPLORE: dict[str, tuple[list[str], dict[str, str]]] = {
    "writes-5s c16M u16": ([*_W, "--vfs-write-back", "5s"], TUNED),
    "writes-5s wbc": (_WBC, {}),
}


def make_source(path: Path, size: int) -> None:
    block = os.urandom(64 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    os.sync()


class Rig:
    def __init__(self, world: rb.World) -> None:
        self.w = world
        self.res: dict[str, list[float]] = {}
        self.notes: list[str] = []

    def put(self, key: str, value: float) -> None:
        self.res.setdefault(key, []).append(value)
        rb.log(f"{key} = {value:.2f}")

    def on_server(self, name: str) -> Path:
        return self.w.bucket_dir / name

    def fresh_name(self) -> str:
        """A name never used before: rclone skips a copy whose target looks the same."""
        self.count = getattr(self, "count", 0) + 1
        return f"ckpt-{self.count}.bin"

    def check(self, name: str, size: int) -> None:
        got = self.on_server(name).stat().st_size
        if got != size:
            raise RuntimeError(f"{name} on the server: {got} bytes, expected {size}")

    def delete(self, name: str) -> None:
        """Through the server (a file removed under it stays in its directory cache)."""
        rb.run([self.w.rclone, "deletefile", f"s3_remote:{rb.BUCKET}/{name}"], self.w.env,
               timeout=600)

    def copyto(self, key: str, src: Path, env: dict[str, str]) -> None:
        size = src.stat().st_size
        name = self.fresh_name()
        t = time.perf_counter()
        rb.run([self.w.rclone, "copyto", src, f"s3_remote:{rb.BUCKET}/{name}"],
               {**self.w.env, **env}, timeout=3600)
        self.put(key, time.perf_counter() - t)
        self.check(name, size)
        self.delete(name)

    def through(self, key: str, link: Path, src: Path, sync) -> None:
        size = src.stat().st_size
        name = self.fresh_name()
        t = time.perf_counter()
        rb.run(["cp", src, link / name], self.w.env, timeout=3600)
        t_cp = time.perf_counter()
        sync()
        t_end = time.perf_counter()
        self.put(f"{key}:cp", t_cp - t)
        self.put(f"{key}:sync", t_end - t_cp)
        self.put(f"{key}:total", t_end - t)
        self.check(name, size)
        os.unlink(link / name)  # the object and the cached copy

    # -- ours
    def ours(self, key: str, src: Path) -> None:
        link = self.w.links / rb.BUCKET
        if not os.path.isdir(link):
            rb.run([rb.script("mount-bucket"), rb.BUCKET, "--root", self.w.links, "-q"],
                   self.w.env, timeout=90)
        self.through(key, link, src, lambda: rb.run(
            [rb.script("mount-bucket"), "--sync", rb.BUCKET, "-q", "--timeout", "3600"],
            self.w.env, timeout=3700))

    def unmount_ours(self) -> None:
        rb.run([rb.script("unmount-bucket"), rb.BUCKET, "-q", "--timeout", "600"], self.w.env,
               timeout=700, check=False)
        if os.path.islink(self.w.links / rb.BUCKET):
            os.unlink(self.w.links / rb.BUCKET)

    # -- a bare rclone mount with candidate flags
    def bare(self, key: str, src: Path, flags: list[str], env: dict[str, str]) -> None:
        from visionlab.buckets.system import rclone

        name = "x" + str(abs(hash(key)) % 10**6)
        mp = self.w.work / "mnt" / name
        mp.mkdir(parents=True, exist_ok=True)
        sock = self.w.work / f"{name}.sock"
        log = self.w.work / f"{name}.log"
        argv = [self.w.rclone, "mount", f"s3_remote:{rb.BUCKET}", str(mp), "--config",
                str(self.w.conf), "--cache-dir", str(self.w.work / "xcache" / name),
                "--log-file", str(log), "--rc", "--rc-addr", f"unix://{sock}", "--rc-no-auth",
                *flags]
        proc = subprocess.Popen(argv, env={**self.w.env, **env}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not (rb.mounted(mp) and rclone.rc_answers(sock)):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{key}: the mount did not come up (see {log})")
                time.sleep(0.05)

            def sync() -> None:  # what --sync does: expedite, wait for an empty queue
                while True:
                    rclone.expedite_uploads(sock)
                    if rclone.uploads(sock).pending == 0:
                        return
                    time.sleep(0.2)

            self.through(key, mp, src, sync)
        finally:
            subprocess.run([rb.fusermount(), "-u", str(mp)], capture_output=True, check=False)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            shutil.rmtree(self.w.work / "xcache" / name, ignore_errors=True)


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(rig: Rig, modes: list[str], sizes: list[int], explore: list[str]) -> str:
    r = rig.res
    out = ["| mode | size | config | cp s | sync s | total s | / copyto | / copyto tuned |",
           "|---|---|---|---|---|---|---|---|"]
    for mode in modes:
        for g in sizes:
            base = f"{mode}:{g}G"
            anchor = r.get(f"{base}:copyto")
            tuned = r.get(f"{base}:copyto-tuned")
            for label, key in [("`rclone copyto`", "copyto"), ("`rclone copyto` tuned", "copyto-tuned")]:
                if f"{base}:{key}" not in r:
                    continue
                v = med(r[f"{base}:{key}"])
                ratio = f"{v / med(anchor):.2f}x" if anchor else ""
                ratio_t = f"{v / med(tuned):.2f}x" if tuned else ""
                out.append(f"| {MODES[mode]} | {g} GiB | {label} | | | {v:.1f} | {ratio} | {ratio_t} |")
            for cfg in ["vb:default", *[f"x:{n}" for n in explore]]:
                k = f"{base}:{cfg}"
                if f"{k}:total" not in r:
                    continue
                total = med(r[f"{k}:total"])
                ratio = f"{total / med(anchor):.2f}x" if anchor else ""
                ratio_t = f"{total / med(tuned):.2f}x" if tuned else ""
                out.append(f"| {MODES[mode]} | {g} GiB | {cfg} | {med(r[f'{k}:cp']):.1f} | "
                           f"{med(r[f'{k}:sync']):.1f} | {total:.1f} | **{ratio}** | {ratio_t} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,8", help="file sizes in GiB (default 1,8)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    ap.add_argument("--modes", default="bare,latency")
    ap.add_argument("--delay-ms", type=float, default=10.0, help="proxy delay each way")
    ap.add_argument("--explore", action="store_true", help="also the EXPLORE flag sets")
    ap.add_argument("--only-explore", action="store_true", help="skip vb:default")
    ap.add_argument("--out", help="also write the Markdown report here")
    ap.add_argument("--json", help="also write every sample here")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    explore = list(EXPLORE) if args.explore or args.only_explore else []
    tuned_env = TUNED if explore else {}

    world = rb.World({"dirs": 0, "files": 0, "size": 0, "large": 0, "large_size": 0}, args.keep)
    proxy: list = []
    atexit.register(world.cleanup)
    atexit.register(lambda: [p.stop() for p in proxy])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    world.bucket_dir.mkdir(parents=True)
    world.start_server()
    rig = Rig(world)
    t_start = time.monotonic()
    rtts = {}
    for g in sizes:
        src = world.work / f"src-{g}G.bin"
        make_source(src, g * GiB)
        for mode in modes:
            if mode == "latency":
                if not proxy:
                    proxy.append(sbm.Proxy(world, args.delay_ms))
                sbm.set_endpoint(world, proxy[0].endpoint)
            else:
                sbm.set_endpoint(world, world.endpoint)
            rtts[mode] = sbm.rtt_ms(world)
            base = f"{mode}:{g}G"
            steps = [("copyto", lambda b=base, s=src: rig.copyto(f"{b}:copyto", s, {}))]
            if tuned_env:
                steps.append(("copyto-tuned", lambda b=base, s=src: rig.copyto(
                    f"{b}:copyto-tuned", s, tuned_env)))
            if not args.only_explore:
                steps.append(("vb:default",
                              lambda b=base, s=src: rig.ours(f"{b}:vb:default", s)))
            steps += [(n, lambda n=n, b=base, s=src: rig.bare(f"{b}:x:{n}", s, *EXPLORE[n]))
                      for n in explore]
            for rnd in range(args.rounds):
                for name, step in steps:
                    try:
                        step()
                    except Exception as exc:  # one broken row must not hide the others
                        rig.notes.append(f"{base} {name}: {exc}")
                        rb.log(f"FAILED {base} {name} round {rnd}: {exc}")
            rig.unmount_ours()  # the next mode mounts again with its endpoint
        src.unlink()
    head = [f"## Checkpoint run (sizes {', '.join(f'{g} GiB' for g in sizes)}, {args.rounds} "
            f"round(s) interleaved, medians; {time.monotonic() - t_start:.0f} s)", "",
            rb.machine(world),
            "- request round trip (one GET, kept connection): " +
            ", ".join(f"{MODES[m]} {rtts[m]:.1f} ms" for m in modes),
            f"- tuned upload settings (rclone's environment, --explore): {tuned_env}", ""]
    text = "\n".join(head) + "\n" + report(rig, modes, sizes, explore)
    if rig.notes:
        text += "\nFailures:\n" + "\n".join(f"- {n}" for n in rig.notes) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": rig.res, "notes": rig.notes}, indent=1))
    return 1 if rig.notes else 0


if __name__ == "__main__":
    sys.exit(main())
