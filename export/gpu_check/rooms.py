"""The check's rooms: rendered by the project's renderer (`mke.train.datasets.builtin_rgbd`, pybullet)
where pybullet is; elsewhere unpacked from an archive made on a CPU machine (`--pack-data`) and carried.

pybullet publishes no wheel for Python 3.12 (the GPU machine's) and its 3.11 wheel is 103 MB, more
than a call to that machine may carry; the rooms packed with xz are about 50 MB."""
from __future__ import annotations

import tarfile
import time
from pathlib import Path

from mke.export.gpu_check.context import Context, Row, say
from mke.export.gpu_check.machine import has_module
from mke.export.gpu_check.plan import check_config
from mke.runtime.errors import MkeError

STAGE = "data: the check's rooms"


def data_ready(folder: Path) -> bool:
    """Whether the cache folder holds every split (what load_builtin_rgbd reads instead of rendering)."""
    from mke.train.datasets.builtin_rgbd import SPLITS

    return all((folder / f"{name}.npz").is_file() for name in SPLITS)


def pack_data(archive: Path, work: Path) -> Path:
    """Render the check's rooms here (once: they are cached) and pack their folder into `archive`."""
    from mke.runtime.fileio import atomic_path
    from mke.train.datasets.builtin_rgbd import cache_dir, load_builtin_rgbd

    data = check_config(False, work)["data"]
    folder = cache_dir(data)
    if not data_ready(folder):
        say(f"rendering the check's rooms into {folder} (pybullet, one process per core)")
        load_builtin_rgbd(data, progress=True)
    say(f"packing {folder} into {archive} (xz)")
    with atomic_path(archive, keep_suffix=True) as tmp:
        with tarfile.open(tmp, "w:xz", preset=3) as tar:
            for path in sorted(folder.iterdir()):
                tar.add(path, arcname=f"{folder.name}/{path.name}")
    say(f"{archive}: {archive.stat().st_size / 1e6:.1f} MB; carry it to the GPU machine (docs/gpu.md, Running it)")
    return archive


def unpack_data(archive: Path, folder: Path) -> None:
    """The carried archive into the cache; an archive of other rooms (another config) is refused."""
    with tarfile.open(archive, "r:*") as tar:
        names = tar.getnames()
        tops = {n.split("/", 1)[0] for n in names}
        if tops != {folder.name} or any(n.startswith("/") or ".." in n.split("/") for n in names):
            raise MkeError(f"{archive} holds {', '.join(sorted(tops)) or 'nothing'}, not the rooms this check uses "
                           f"({folder.name}): pack it again with `python -m mke.export.gpu_check --pack-data`")
        folder.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.11.4+
            tar.extractall(folder.parent, filter="data")
        else:
            tar.extractall(folder.parent)


def stage_data(ctx: Context, archive: Path) -> Row:
    from mke.train.datasets.builtin_rgbd import cache_dir, load_builtin_rgbd

    data = ctx.cfg["data"]
    folder = cache_dir(data)
    frames = sum(int(data[s]["frames"]) for s in ("labeled", "unlabeled", "test"))
    what = (f"{frames} frames at {data['width']}×{data['height']}: D_l {data['labeled']['frames']}, "
            f"D_u {data['unlabeled']['frames']}, test {data['test']['frames']}")
    start = time.monotonic()
    if data_ready(folder):
        return Row(STAGE, "ok", f"found in {folder}", what, 0.0)
    if not ctx.dry_run and archive.is_file():
        unpack_data(archive, folder)
        if data_ready(folder):
            return Row(STAGE, "ok", f"unpacked from {archive}", what, time.monotonic() - start)
    if not has_module("pybullet"):
        return Row(STAGE, "failed", f"no rooms: pybullet is absent and none were carried ({archive})",
                   "make them on a CPU machine with `python -m mke.export.gpu_check --pack-data` and carry the "
                   "archive (Running it, below)")
    load_builtin_rgbd(data, progress=False)
    return Row(STAGE, "ok", "rendered here (pybullet)", what, time.monotonic() - start)
