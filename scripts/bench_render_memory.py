"""Peak memory and speed of rendering the built-in RGB-D data into a fresh cache folder.

    .venv/bin/python scripts/bench_render_memory.py --frames 20000 [--width 160 --height 120] [--workers 0]

Renders `--frames` frames of D_u (10 a room, as the rgbd default; D_l and the test split one frame
each) with `mke.train.datasets.builtin_rgbd.build_cache`, then opens the splits as `load_builtin_rgbd`
does, and reports frames/s and peak memory, sampled every 0.1 s from /proc: resident (RSS) and
proportional (PSS: shared pages divided among the processes that map them) memory of this process,
and summed over this process and its render workers. The goal (issue 16): under 2 GB whatever the
frame count; run two sizes to see it does not grow with N. Linux only (/proc). The cache folder is
removed afterwards unless `--keep`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path


def _kib(pid: int, file: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return out


class PeakMemory:
    """Samples this process and its descendants every `interval` seconds on a thread; peaks in MiB."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.peak = interval, {"main_rss": 0, "main_pss": 0, "all_rss": 0, "all_pss": 0, "processes": 0}
        self.timeline: list[tuple[float, int, int]] = []  # (seconds, main PSS, all PSS) in KiB
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me, pids, todo = os.getpid(), [], [os.getpid()]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo += _children(pid)
        rss = {p: _kib(p, "status", "VmRSS") for p in pids}
        pss = {p: _kib(p, "smaps_rollup", "Pss") for p in pids}
        now = {"main_rss": rss[me], "main_pss": pss[me], "all_rss": sum(rss.values()), "all_pss": sum(pss.values()),
               "processes": len(pids)}
        for k, v in now.items():
            self.peak[k] = max(self.peak[k], v)
        self.timeline.append((time.perf_counter() - self._start, now["main_pss"], now["all_pss"]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def mib(self) -> dict:
        return {k: (round(v / 1024, 1) if k != "processes" else v) for k, v in self.peak.items()}

    def quarters(self) -> list[dict]:
        """Peak PSS (MiB) in each quarter of the run: flat if memory does not grow with the frames done."""
        out, n = [], len(self.timeline)
        for q in range(4):
            part = self.timeline[q * n // 4:(q + 1) * n // 4] or self.timeline[-1:]
            out.append({"main_pss": round(max(p[1] for p in part) / 1024, 1),
                        "all_pss": round(max(p[2] for p in part) / 1024, 1)})
        return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")).split()
                shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
                return f"{name} ({', '.join(shown) or 'no avx2'}), {os.cpu_count()} cores"
    except (OSError, StopIteration):
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000, help="D_u frames to render (10 a room)")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--workers", type=int, default=0, help="render processes (0: one per core)")
    parser.add_argument("--cache-dir", default="", help="where to render (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the rendered cache")
    args = parser.parse_args()

    from mke.train.config import resolve_config
    from mke.train.datasets.builtin_rgbd import build_cache, cache_dir, load_builtin_rgbd

    root = Path(args.cache_dir or tempfile.mkdtemp(prefix="mke-render-bench-"))
    cfg = resolve_config("rgbd", None, [
        f"data.cache_dir={root}", f"data.width={args.width}", f"data.height={args.height}",
        f"data.unlabeled={{rooms: {max(1, args.frames // 10)}, frames: {args.frames}}}",
        "data.labeled={rooms: 1, frames: 1}", "data.test={rooms: 1, frames: 1}", "data.recording.frames=0"])
    folder = cache_dir(cfg["data"])
    if folder.exists():
        raise SystemExit(f"{folder} exists: pass a fresh --cache-dir")
    try:
        with PeakMemory() as mem:
            start = time.perf_counter()
            build_cache(cfg["data"], progress=True, workers=args.workers)
            seconds = time.perf_counter() - start
            frames = load_builtin_rgbd(cfg["data"], progress=False)
            opened = len(frames["unlabeled"])
        size = sum(p.stat().st_size for p in folder.iterdir())
        import torch

        print(json.dumps({"frames": args.frames + 2, "size": f"{args.width}x{args.height}", "seconds": round(seconds, 1),
                          "frames_per_s": round((args.frames + 2) / seconds, 1), "cache_bytes": size,
                          "opened_frames": opened, "peak_mib": mem.mib(), "peak_mib_by_quarter": mem.quarters(),
                          "cpu": cpu_name(),
                          "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(folder if args.cache_dir else root, ignore_errors=True)


if __name__ == "__main__":
    main()
