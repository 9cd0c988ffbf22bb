"""The built-in RGB-D data of the `rgbd` task: rooms rendered by `mke.runtime.sim`, cached on disk.

Splits in the MKE shape, each from its own rooms so the test measures generalisation to unseen
rooms: D_l (RGB + labels, small), D_u (RGB + depth; labels kept only for the MM (sup) bound) and
a labeled RGB-D test set. Generated once per data config (with a progress bar) into
`<cache_dir>/rgbd-<hash>/`, as uncompressed .npz files (the default data: 0.4 s to write and 1.5 s
to read, against 13 s and 2.4 s compressed, for twice the disk), plus `replay.db3`: one test room's
trajectory as a RealSense recording, for `mke-live` and the demo to replay.

Data larger than memory: each rendered room goes straight to its place in one `.npy` file per split
and field (`np.lib.format.open_memmap` lays them out, rooms are written at their frame offset as
they arrive, in any order), and the finished files are copied into each split's `.npz` in 1 MiB
pieces; the whole folder is built beside its place and renamed in when complete
(`mke.runtime.fileio.building_cache`), so 100k frames never sit in memory and a crash leaves no
half cache. The `.npz` files are read back memory-mapped (`npz_memmaps`): a frame is read from disk
when it is used. Under torchrun every rank renders its share of the rooms into the shared files and
rank 0 packs them (the cache folder must then be on a filesystem all ranks see). The part files, the
packing and the mapped reading are `frame_cache`'s, shared with the NYU Depth V2 cache.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mke.runtime.camera import Intrinsics
from mke.runtime.errors import MkeError
from mke.runtime.fileio import building_cache, cache_folder, write_json
from mke.train.datasets.frame_cache import allocate_parts, npz_memmaps, pack_parts, part_offset, part_path
from mke.train.tasks.segmentation import FrameSet

SPLITS = ("labeled", "unlabeled", "test")
SPLIT_SEED_OFFSET = {"labeled": 0, "unlabeled": 100_000, "test": 200_000}  # disjoint rooms per split
RENDER_KEYS = ("seed", "width", "height", "step", "labeled", "unlabeled", "test", "recording")
MAX_TASK_FRAMES = 64  # frames one render task hands back at most (unless one room has more): bounds memory


def cache_dir(data_cfg: dict) -> Path:
    """`<cache_dir>/rgbd-<hash of the settings that change what is rendered>`."""
    return cache_folder(data_cfg["cache_dir"], "rgbd", {k: data_cfg[k] for k in RENDER_KEYS})


def cache_ready(folder: Path, data_cfg: dict) -> bool:
    """Whether `folder` holds every split (and the recording, if the config asks for one): what
    `load_builtin_rgbd` reads instead of rendering. Files are only ever renamed in whole."""
    wanted = [f"{name}.npz" for name in SPLITS] + (["replay.db3"] if data_cfg["recording"]["frames"] > 0 else [])
    return all((folder / name).is_file() for name in wanted)


def _rooms(name: str, data_cfg: dict) -> list[tuple[int, int]]:
    """(room seed, frame count) for every room of split `name`: frames spread evenly over rooms."""
    spec = data_cfg[name]
    rooms, frames = int(spec["rooms"]), int(spec["frames"])
    if rooms < 1 or frames < rooms:
        raise MkeError(f"data.{name} needs rooms >= 1 and frames >= rooms, got rooms={rooms}, frames={frames}")
    per_room = [frames // rooms + (1 if r < frames % rooms else 0) for r in range(rooms)]
    return [(int(data_cfg["seed"]) * 1_000_000 + SPLIT_SEED_OFFSET[name] + r, n) for r, n in enumerate(per_room)]


def _jobs(splits: list[str], data_cfg: dict, replay: bool) -> dict[str, tuple]:
    """job name → (rooms, width, height, step); the recording's trajectory (the first test room at the
    recording's size) first: one long job, it renders while the splits do."""
    w, h, step = int(data_cfg["width"]), int(data_cfg["height"]), float(data_cfg["step"])
    jobs = {name: (_rooms(name, data_cfg), w, h, step) for name in splits}
    if replay:
        rec = data_cfg["recording"]
        first_test_room = int(data_cfg["seed"]) * 1_000_000 + SPLIT_SEED_OFFSET["test"]
        jobs = {"replay": ([(first_test_room, int(rec["frames"]))], int(rec["width"]), int(rec["height"]),
                           float(rec["step"])), **jobs}
    return jobs


def default_workers() -> int:
    """Render processes of this process: one per core it may use, shared among the torchrun ranks of
    this machine (`mke.train.distributed.cores_per_process`)."""
    from mke.train import distributed

    return distributed.cores_per_process()


def _render(jobs: dict[str, tuple], keep, progress: bool, workers: int = 0, rank: int = 0, world: int = 1) -> None:
    """Render the rooms of `jobs` in a pool of `workers` processes (0: `default_workers()`), calling
    `keep(job, room indices, rendered rooms)` in this process as each task of a few rooms arrives
    (in any order). With `world` > 1 only every `world`-th room (from `rank`), counted over all jobs.

    Rooms are the unit of work and each has its own seed, so what is rendered depends only on the
    config, not on the workers or ranks; at most two tasks a worker are in flight, so memory stays
    bounded by the task size, whatever the number of frames."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    from mke.runtime.memory import huge_pages_off
    from mke.runtime.sim.batch import render_rooms

    mine, counter = {}, 0
    for name, (rooms, *_) in jobs.items():
        mine[name] = [i for i in range(len(rooms)) if (counter + i) % world == rank]
        counter += len(rooms)
    total_rooms = sum(len(m) for m in mine.values())
    workers = max(1, min(workers or default_workers(), total_rooms or 1))
    tasks = []  # (job, room indices, rooms, width, height, step): few hand-overs, a smooth bar, bounded size
    for name, (rooms, tw, th, tstep) in jobs.items():
        batch = max(1, min(10, len(mine[name]) // (4 * workers)))
        run: list[int] = []
        for i in mine[name]:
            if run and (len(run) == batch or sum(rooms[j][1] for j in run) + rooms[i][1] > MAX_TASK_FRAMES):
                tasks.append((name, run, [rooms[j] for j in run], tw, th, tstep))
                run = []
            run.append(i)
        if run:
            tasks.append((name, run, [rooms[j] for j in run], tw, th, tstep))
    bar = tqdm(total=sum(n for t in tasks for _, n in t[2]), desc=f"rendering {' + '.join(jobs)}",
               unit="frame", disable=not progress, leave=False)
    try:
        if workers == 1:
            for name, indices, rooms, tw, th, tstep in tasks:
                keep(name, indices, render_rooms(rooms, tw, th, tstep))
                bar.update(sum(n for _, n in rooms))
            return
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=huge_pages_off) as pool:
            queue, running = list(reversed(tasks)), {}
            while queue or running:
                while queue and len(running) < 2 * workers:
                    task = queue.pop()
                    running[pool.submit(render_rooms, *task[2:])] = task
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    name, indices, rooms, *_ = running.pop(fut)
                    keep(name, indices, fut.result())
                    bar.update(sum(n for _, n in rooms))
    finally:
        bar.close()


def _render_data(splits: list[str], data_cfg: dict, progress: bool, *, replay: bool = False,
                 workers: int = 0) -> dict[str, list[dict[str, np.ndarray]]]:
    """Render the rooms of `splits` (and, with `replay`, the recording's trajectory) in memory:
    split name (and "replay") → per-room arrays in room order. For small data (the recording, tests);
    the cache goes through `_render_to_files`."""
    jobs = _jobs(splits, data_cfg, replay)
    out: dict[str, list] = {name: [None] * len(rooms) for name, (rooms, *_) in jobs.items()}

    def keep(name, indices, rendered):
        for i, room in zip(indices, rendered):
            out[name][i] = room

    _render(jobs, keep, progress, workers)
    return out


def _stack_rooms(rooms: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-room arrays → one array per field, plus `room`: each frame's room index in the split."""
    out = {k: np.concatenate([room[k] for room in rooms]) for k in rooms[0]}
    out["room"] = np.concatenate([np.full(len(room["rgb"]), r) for r, room in enumerate(rooms)])
    return out


def _layout(name: str, data_cfg: dict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each array of split `name`'s .npz, before anything is rendered."""
    from mke.runtime.sim.batch import field_layout

    frames = sum(n for _, n in _rooms(name, data_cfg))
    fields = field_layout(int(data_cfg["width"]), int(data_cfg["height"]))
    return {**{k: ((frames,) + shape, dtype) for k, (shape, dtype) in fields.items()},
            "room": ((frames,), np.dtype(np.int64))}


def _allocate_parts(folder: Path, data_cfg: dict) -> None:
    """One empty .npy file per split and field, at its full size (sparse until written), and `room`
    filled in: what every rank then writes its rooms into."""
    for name in SPLITS:
        allocate_parts(folder, name, _layout(name, data_cfg))
        room = np.load(part_path(folder, name, "room"), mmap_mode="r+")
        room[:] = np.repeat(np.arange(len(_rooms(name, data_cfg))), [n for _, n in _rooms(name, data_cfg)])
        room.flush()
        del room


def _render_to_files(folder: Path, data_cfg: dict, progress: bool, rank: int, world: int,
                     workers: int = 0) -> dict[str, np.ndarray] | None:
    """Render this rank's rooms of every split into the part files of `folder` (`_allocate_parts`),
    each room written at its frame offset as it arrives; rank 0 also renders the recording's room,
    returned in memory (it is small), if the config asks for one."""
    replay = rank == 0 and data_cfg["recording"]["frames"] > 0
    jobs = _jobs(list(SPLITS), data_cfg, replay)
    starts = {name: np.cumsum([0] + [n for _, n in _rooms(name, data_cfg)]) for name in SPLITS}
    layouts = {name: _layout(name, data_cfg) for name in SPLITS}
    files, offsets, out = {}, {}, {}
    try:
        for name in SPLITS:
            for field in layouts[name]:
                if field != "room":
                    offsets[name, field] = part_offset(folder, name, field)
                    files[name, field] = os.open(part_path(folder, name, field), os.O_WRONLY)

        def keep(name, indices, rendered):
            if name == "replay":
                out["replay"] = rendered[0]
                return
            for r, room in zip(indices, rendered):
                for field, array in room.items():
                    shape, dtype = layouts[name][field]
                    if array.dtype != dtype or array.shape[1:] != shape[1:]:
                        raise MkeError(f"the renderer gave {field} as {array.dtype} {array.shape[1:]}, not "
                                       f"{dtype} {shape[1:]} (mke.runtime.sim.batch.field_layout)")
                    row = array[0].nbytes if len(array) else 0
                    os.pwrite(files[name, field], np.ascontiguousarray(array).tobytes(),
                              offsets[name, field] + int(starts[name][r]) * row)

        _render(jobs, keep, progress, workers, rank, world)
    finally:
        for fd in files.values():
            os.close(fd)
    return out.get("replay")


def _pack_parts(folder: Path) -> None:
    """Each split's part files into `<split>.npz`, in the order np.savez wrote the fields before
    (render_rooms' fields, then `room`): the same arrays, byte for byte."""
    from mke.runtime.sim.batch import FIELDS

    for name in SPLITS:
        pack_parts(folder, name, FIELDS + ("room",))


def _write_recording(path: Path, room: dict[str, np.ndarray], fps: int) -> Path:
    from mke.runtime.sensors.realsense_recording import write_recording

    n, h, w = room["rgb"].shape[:3]
    return write_recording(path, ((room["rgb"][i], room["depth_mm"][i]) for i in range(n)),
                           color_intrinsics=Intrinsics.from_row(room["intrinsics"][0], w, h), fps=fps, pace=True)


def build_cache(data_cfg: dict, progress: bool = True, workers: int = 0) -> Path:
    """Render the built-in data into its cache folder unless it is there; returns the folder. Under
    torchrun all ranks call it: each renders its share of the rooms, rank 0 finishes the folder."""
    from mke.train import distributed

    folder = cache_dir(data_cfg)
    me = distributed.joined()
    rank, world = me.rank, me.size
    if not distributed.broadcast_object(cache_ready(folder, data_cfg) if rank == 0 else None):
        if world == 1:
            with building_cache(folder, lambda f: cache_ready(f, data_cfg)) as tmp:
                _fill(tmp, data_cfg, progress, 0, 1, workers)
        elif rank == 0:
            with building_cache(folder, lambda f: cache_ready(f, data_cfg)) as tmp:
                _allocate_parts(tmp, data_cfg)
                distributed.broadcast_object(str(tmp))
                _fill(tmp, data_cfg, progress, 0, world, workers)
        else:
            tmp = Path(distributed.broadcast_object(None))
            if not (tmp / "parts").is_dir():
                raise MkeError(f"rank {rank} cannot see {tmp}, where rank 0 renders the built-in data: put "
                               f"data.cache_dir on a filesystem every machine shares, or render it beforehand "
                               f"on each machine (mke-train --task rgbd … with the same data settings)")
            _fill(tmp, data_cfg, False, rank, world, workers)
        distributed.barrier()  # the others wait until rank 0 has renamed the folder into place
    if rank != 0 and not cache_ready(folder, data_cfg):
        raise MkeError(f"rank {rank} cannot see the built-in data at {folder}, which rank 0 has: put "
                       "data.cache_dir on a filesystem every machine shares, or render it beforehand on each "
                       "machine (mke-train --task rgbd … with the same data settings)")
    return folder


def _fill(tmp: Path, data_cfg: dict, progress: bool, rank: int, world: int, workers: int) -> None:
    """Render into the building folder `tmp`: every rank its rooms; rank 0 then packs the splits,
    writes the recording and data.json once all ranks are done."""
    from mke.train import distributed

    if world == 1:
        _allocate_parts(tmp, data_cfg)
    replay = _render_to_files(tmp, data_cfg, progress, rank, world, workers)
    distributed.barrier()  # every rank's rooms are in the part files
    if rank != 0:
        return
    _pack_parts(tmp)
    if replay is not None:
        _write_recording(tmp / "replay.db3", replay, int(data_cfg["recording"]["fps"]))
    write_json(tmp / "data.json", {k: data_cfg[k] for k in RENDER_KEYS})


def load_builtin_rgbd(data_cfg: dict, progress: bool = True) -> dict[str, FrameSet]:
    """The three splits (generated and cached on first use) as FrameSets whose frames stay on disk
    (memory-mapped) until used."""
    folder = build_cache(data_cfg, progress)
    out = {}
    for name in SPLITS:
        path = folder / f"{name}.npz"
        try:
            arrays = npz_memmaps(path)
            intrinsics, up = np.asarray(arrays["intrinsics"]), np.asarray(arrays["up"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise MkeError(f"cached data {path} is unreadable ({exc}); delete {folder} to render it again") from None
        h, w = arrays["rgb"].shape[1:3]
        keep_depth = name != "labeled"  # the teacher's data is RGB only, as in the MKE setting
        out[name] = FrameSet(rgb=arrays["rgb"], depth_mm=arrays["depth_mm"] if keep_depth else None,
                             labels=arrays["labels"], up=up, name=name,
                             intrinsics=[Intrinsics.from_row(k, w, h) for k in intrinsics])
    return out
