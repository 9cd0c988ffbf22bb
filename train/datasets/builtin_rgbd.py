"""The built-in RGB-D data of the `rgbd` task: rooms rendered by `mke.runtime.sim`, cached on disk.

Splits in the MKE shape, each from its own rooms so the test measures generalisation to unseen
rooms: D_l (RGB + labels, small), D_u (RGB + depth; labels kept only for the MM (sup) bound) and
a labeled RGB-D test set. Generated once per data config (with a progress bar) into
`<cache_dir>/rgbd-<hash>/`, as compressed .npz files, plus `replay.db3`: one test room's
trajectory as a RealSense recording, for `mke-live` and the demo to replay.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, write_json
from mke.train.tasks.segmentation import FrameSet

SPLITS = ("labeled", "unlabeled", "test")
SPLIT_SEED_OFFSET = {"labeled": 0, "unlabeled": 100_000, "test": 200_000}  # disjoint rooms per split
RENDER_KEYS = ("seed", "width", "height", "step", "labeled", "unlabeled", "test", "recording")


def cache_dir(data_cfg: dict) -> Path:
    """`<cache_dir>/rgbd-<hash of the settings that change what is rendered>`."""
    key = {k: data_cfg[k] for k in RENDER_KEYS}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(data_cfg["cache_dir"]).expanduser() / f"rgbd-{digest}"


def _render_split(name: str, data_cfg: dict, progress: bool, workers: int = 0) -> dict[str, np.ndarray]:
    """Every room of one split, rendered by `workers` processes (0: one per CPU core) in batches of
    rooms; the result depends only on the config (each room has its own seed), not on the workers."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from mke.runtime.sim.batch import render_rooms

    spec = data_cfg[name]
    rooms, frames = int(spec["rooms"]), int(spec["frames"])
    if rooms < 1 or frames < rooms:
        raise MkeError(f"data.{name} needs rooms >= 1 and frames >= rooms, got rooms={rooms}, frames={frames}")
    per_room = [frames // rooms + (1 if r < frames % rooms else 0) for r in range(rooms)]
    seeds = [int(data_cfg["seed"]) * 1_000_000 + SPLIT_SEED_OFFSET[name] + r for r in range(rooms)]
    w, h, step = int(data_cfg["width"]), int(data_cfg["height"]), float(data_cfg["step"])
    workers = min(workers or os.cpu_count() or 1, rooms)
    batch = max(1, min(10, rooms // (4 * workers)))  # rooms per task: few hand-overs, a smooth progress bar
    tasks = [list(zip(seeds[i:i + batch], per_room[i:i + batch])) for i in range(0, rooms, batch)]
    bar = tqdm(total=frames, desc=f"rendering {name}", unit="frame", disable=not progress, leave=False)
    results = []
    if workers == 1:
        for t in tasks:
            results.append(render_rooms(t, w, h, step))
            bar.update(sum(n for _, n in t))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for t, done in zip(tasks, pool.map(render_rooms, tasks, [w] * len(tasks), [h] * len(tasks),
                                               [step] * len(tasks))):
                results.append(done)
                bar.update(sum(n for _, n in t))
    bar.close()
    flat = [room for r in results for room in r]
    out = {k: np.concatenate([room[k] for room in flat]) for k in flat[0]}
    out["room"] = np.concatenate([np.full(len(room["rgb"]), r) for r, room in enumerate(flat)])
    return out


def _write_recording(folder: Path, data_cfg: dict, progress: bool) -> Path:
    from mke.runtime.sensors.realsense_recording import Intrinsics, write_recording
    from mke.runtime.sim import World

    rec = data_cfg["recording"]
    w, h, n = int(rec["width"]), int(rec["height"]), int(rec["frames"])
    seed = int(data_cfg["seed"]) * 1_000_000 + SPLIT_SEED_OFFSET["test"]  # the first test room
    with World.random(seed) as world:
        frames = list(tqdm(world.frames(n, w, h, seed=seed, step=float(rec["step"])), total=n,
                           desc="rendering replay", unit="frame", disable=not progress, leave=False))
    k = frames[0].intrinsics
    intr = Intrinsics(width=w, height=h, fx=k.fx, fy=k.fy, ppx=k.cx, ppy=k.cy)
    path = folder / "replay.db3"
    write_recording(path, ((f.rgb, f.depth) for f in frames), color_intrinsics=intr, fps=int(rec["fps"]), pace=True)
    return path


def load_builtin_rgbd(data_cfg: dict, progress: bool = True) -> dict[str, FrameSet]:
    """The three splits (generated and cached on first use) as FrameSets."""
    folder = cache_dir(data_cfg)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in SPLITS:
        path = folder / f"{name}.npz"
        if not path.is_file():
            arrays = _render_split(name, data_cfg, progress)
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, **arrays)
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise MkeError(f"cached data {path} is unreadable ({exc}); delete {folder} to render it again") from None
        keep_depth = name != "labeled"  # the teacher's data is RGB only, as in the MKE setting
        out[name] = FrameSet(rgb=arrays["rgb"], depth_mm=arrays["depth_mm"] if keep_depth else None,
                             labels=arrays["labels"], intrinsics=arrays["intrinsics"], up=arrays["up"], name=name)
    if data_cfg["recording"]["frames"] > 0 and not (folder / "replay.db3").is_file():
        _write_recording(folder, data_cfg, progress)
    write_json(folder / "data.json", {k: data_cfg[k] for k in RENDER_KEYS})
    return out
