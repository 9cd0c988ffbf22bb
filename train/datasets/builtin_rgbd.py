"""The built-in RGB-D data of the `rgbd` task: rooms rendered by `mke.runtime.sim`, cached on disk.

Splits in the MKE shape, each from its own rooms so the test measures generalisation to unseen
rooms: D_l (RGB + labels, small), D_u (RGB + depth; labels kept only for the MM (sup) bound) and
a labeled RGB-D test set. Generated once per data config (with a progress bar) into
`<cache_dir>/rgbd-<hash>/`, as uncompressed .npz files (the default data: 0.4 s to write and 1.5 s
to read, against 13 s and 2.4 s compressed, for twice the disk), plus `replay.db3`: one test room's
trajectory as a RealSense recording, for `mke-live` and the demo to replay.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from mke.runtime.camera import Intrinsics
from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, cache_folder, write_json
from mke.train.tasks.segmentation import FrameSet

SPLITS = ("labeled", "unlabeled", "test")
SPLIT_SEED_OFFSET = {"labeled": 0, "unlabeled": 100_000, "test": 200_000}  # disjoint rooms per split
RENDER_KEYS = ("seed", "width", "height", "step", "labeled", "unlabeled", "test", "recording")


def cache_dir(data_cfg: dict) -> Path:
    """`<cache_dir>/rgbd-<hash of the settings that change what is rendered>`."""
    return cache_folder(data_cfg["cache_dir"], "rgbd", {k: data_cfg[k] for k in RENDER_KEYS})


def _rooms(name: str, data_cfg: dict) -> list[tuple[int, int]]:
    """(room seed, frame count) for every room of split `name`: frames spread evenly over rooms."""
    spec = data_cfg[name]
    rooms, frames = int(spec["rooms"]), int(spec["frames"])
    if rooms < 1 or frames < rooms:
        raise MkeError(f"data.{name} needs rooms >= 1 and frames >= rooms, got rooms={rooms}, frames={frames}")
    per_room = [frames // rooms + (1 if r < frames % rooms else 0) for r in range(rooms)]
    return [(int(data_cfg["seed"]) * 1_000_000 + SPLIT_SEED_OFFSET[name] + r, n) for r, n in enumerate(per_room)]


def _render_data(splits: list[str], data_cfg: dict, progress: bool, *, replay: bool = False,
                 workers: int = 0) -> dict[str, list[dict[str, np.ndarray]]]:
    """Render the rooms of `splits` (and, with `replay`, the recording's trajectory: the first test
    room at the recording's size) in one pool of `workers` processes (0: one per CPU core).

    Returns split name (and "replay") → per-room arrays in room order. Rooms are the unit of work and
    each has its own seed, so the result depends only on the config, not on the workers."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from mke.runtime.memory import huge_pages_off
    from mke.runtime.sim.batch import render_rooms

    w, h, step = int(data_cfg["width"]), int(data_cfg["height"]), float(data_cfg["step"])
    jobs = {name: (_rooms(name, data_cfg), w, h, step) for name in splits}
    if replay:  # one long trajectory at a large size: submitted first, it renders while the splits do
        rec = data_cfg["recording"]
        first_test_room = int(data_cfg["seed"]) * 1_000_000 + SPLIT_SEED_OFFSET["test"]
        jobs = {"replay": ([(first_test_room, int(rec["frames"]))], int(rec["width"]), int(rec["height"]),
                           float(rec["step"])), **jobs}
    total_rooms = sum(len(rooms) for rooms, *_ in jobs.values())
    workers = max(1, min(workers or os.cpu_count() or 1, total_rooms))
    tasks = []  # (job, rooms, width, height, step), a few rooms per task: few hand-overs, a smooth bar
    for name, (rooms, tw, th, tstep) in jobs.items():
        batch = max(1, min(10, len(rooms) // (4 * workers)))
        tasks += [(name, rooms[i:i + batch], tw, th, tstep) for i in range(0, len(rooms), batch)]
    bar = tqdm(total=sum(n for _, rooms, *_ in tasks for _, n in rooms), desc=f"rendering {' + '.join(jobs)}",
               unit="frame", disable=not progress, leave=False)
    out: dict[str, list] = {name: [] for name in jobs}

    def collect(task, rendered):
        out[task[0]].extend(rendered)
        bar.update(sum(n for _, n in task[1]))

    if workers == 1:
        for t in tasks:
            collect(t, render_rooms(*t[1:]))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=huge_pages_off) as pool:
            for t, rendered in zip(tasks, pool.map(render_rooms, *zip(*(t[1:] for t in tasks)))):
                collect(t, rendered)
    bar.close()
    return out


def _stack_rooms(rooms: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-room arrays → one array per field, plus `room`: each frame's room index in the split."""
    out = {k: np.concatenate([room[k] for room in rooms]) for k in rooms[0]}
    out["room"] = np.concatenate([np.full(len(room["rgb"]), r) for r, room in enumerate(rooms)])
    return out


def _write_recording(path: Path, room: dict[str, np.ndarray], fps: int) -> Path:
    from mke.runtime.sensors.realsense_recording import write_recording

    n, h, w = room["rgb"].shape[:3]
    return write_recording(path, ((room["rgb"][i], room["depth_mm"][i]) for i in range(n)),
                           color_intrinsics=Intrinsics.from_row(room["intrinsics"][0], w, h), fps=fps, pace=True)


def load_builtin_rgbd(data_cfg: dict, progress: bool = True) -> dict[str, FrameSet]:
    """The three splits (generated and cached on first use) as FrameSets."""
    folder = cache_dir(data_cfg)
    folder.mkdir(parents=True, exist_ok=True)
    missing = [name for name in SPLITS if not (folder / f"{name}.npz").is_file()]
    replay = data_cfg["recording"]["frames"] > 0 and not (folder / "replay.db3").is_file()
    rendered = _render_data(missing, data_cfg, progress, replay=replay) if missing or replay else {}
    for name in missing:
        with atomic_path(folder / f"{name}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **_stack_rooms(rendered.pop(name)))
    if replay:
        _write_recording(folder / "replay.db3", rendered.pop("replay")[0], int(data_cfg["recording"]["fps"]))
    out = {}
    for name in SPLITS:
        path = folder / f"{name}.npz"
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise MkeError(f"cached data {path} is unreadable ({exc}); delete {folder} to render it again") from None
        h, w = arrays["rgb"].shape[1:3]
        keep_depth = name != "labeled"  # the teacher's data is RGB only, as in the MKE setting
        out[name] = FrameSet(rgb=arrays["rgb"], depth_mm=arrays["depth_mm"] if keep_depth else None,
                             labels=arrays["labels"], up=arrays["up"], name=name,
                             intrinsics=[Intrinsics.from_row(k, w, h) for k in arrays["intrinsics"]])
    write_json(folder / "data.json", {k: data_cfg[k] for k in RENDER_KEYS})
    return out
