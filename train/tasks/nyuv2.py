"""`nyuv2`: NYU Depth V2 segmentation in the paper's setting (DESIGN.md §2), RGB → RGB + depth.

- D_l: the 795 train frames of `nyu_depth_v2_labeled.mat` — RGB and the 40 classes of Gupta et al.;
  their depth is dropped, the teacher is RGB-only.
- D_u: RGB-D pairs of the raw sequences — every `unlabeled_every`-th synchronised pair of each
  scene, then at most `unlabeled_max` spread evenly (the paper used 1488); the raw depth is
  registered to the colour camera (`register_depth_to_rgb`). No labels, so no `MM student (sup)`.
  With `exclude_test_scenes`, raw scenes of the 654 test frames are left out, so the student never
  trains on (unlabeled) views of the rooms it is tested in.
- test: the 654 test frames — RGB, the labeled set's depth (`depths`, registered and in-painted by
  the toolbox, or `rawDepths`, registered with holes), labels.

Frames are resized once, to `preprocess.rgb.size` (RGB with area interpolation, depth and labels
nearest, as the runtime's preprocessing would), and cached as uncompressed .npz files under
`<data.cache_dir>/nyuv2-<hash>/`, so worker processes start from the cache, not the 2.8 GB file.
Each split is written frame by frame into memory-mapped part files and packed into its .npz
(`frame_cache`, as the built-in rooms are), and read back memory-mapped: neither building nor
loading holds a split in memory. Caches of version 1 (np.savez_compressed, read whole) sit in
another folder (the version is in its key) and are built again in the new format.
Intrinsics (for HHA) are the toolbox's RGB camera's, scaled to that size.
"""
from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mke.runtime.camera import Intrinsics
from mke.runtime.depth_units import metres_to_millimetres
from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, cache_folder, write_json
from mke.runtime.modalities import get_modality
from mke.runtime.preprocess import resize_image
from mke.train.datasets import data_root
from mke.train.datasets.frame_cache import allocate_parts, npz_memmaps, open_parts, pack_parts
from mke.train.datasets.nyuv2 import (CLASS_NAMES_40, RGB_INTRINSICS, NYUv2Labeled, load_raw_pair, raw_pairs,
                                      register_depth_to_rgb, scaled_intrinsics)
from mke.train.tasks import register_task
from mke.train.tasks.base import label_colors
from mke.train.tasks.rgbd import SUP
from mke.train.tasks.segmentation import FrameSet, RGBDSegmentationTask

CLASS_COLORS_40: tuple[tuple[int, int, int], ...] = label_colors(40)
FILES = {"labeled_mat": "nyu_depth_v2_labeled.mat", "splits": "splits.mat", "mapping": "classMapping40.mat",
         "raw": "raw/"}
TEST_DEPTHS = ("depths", "rawDepths")
SPLITS = ("labeled", "unlabeled", "test")
CACHE_VERSION = 2  # 2: uncompressed, written and read memory-mapped (1: np.savez_compressed)


def _expected() -> str:
    return ("nyu_depth_v2_labeled.mat (the labeled set), splits.mat (trainNdxs / testNdxs), "
            "classMapping40.mat (mapClass, 894 → 40 classes) and raw/ (the raw scene folders, "
            "r-*.ppm / d-*.pgm; other names through data.labeled_mat, data.splits, data.mapping, data.raw)")


def nyu_paths(data_cfg: dict) -> dict[str, Path]:
    """The four inputs under `data.root`, checked to exist; the error lists what is expected."""
    base = data_root(data_cfg, "NYU Depth V2", "nyuv2", "/data/nyu", _expected())
    paths = {key: base / str(data_cfg[key]) for key in FILES}
    missing = [f"{p} (data.{key})" for key, p in paths.items()
               if not (p.is_dir() if key == "raw" else p.is_file())]
    if missing:
        raise MkeError(f"NYU Depth V2 files missing: {', '.join(missing)}; data.root must hold {_expected()}")
    return paths


def rgb_size(cfg: dict) -> list[int] | None:
    """[h, w] the frames are brought to (preprocess.rgb.size; None: as the files give them)."""
    return get_modality("rgb").params(cfg["preprocess"]["rgb"])["size"]


def cache_dir(cfg: dict) -> Path:
    """`<cache_dir>/nyuv2-<hash of the files and the settings that change the frames>`.

    The raw folder is not listed (hundreds of thousands of files); delete the folder after
    changing the data in place.
    """
    d = cfg["data"]
    mat = Path(str(d["root"])).expanduser() / str(d["labeled_mat"])
    stat = mat.stat() if mat.is_file() else None
    key = {"version": CACHE_VERSION, "root": str(Path(str(d["root"])).expanduser().resolve()),
           **{k: d[k] for k in (*FILES, "unlabeled_every", "unlabeled_max", "max_time_diff_s",
                                "exclude_test_scenes", "test_depth")},
           "labeled_mat_stat": [stat.st_size, stat.st_mtime_ns] if stat else None,
           "size": rgb_size(cfg)}
    return cache_folder(d["cache_dir"], "nyuv2", key)


def _scene_key(name: str) -> str:
    """A scene's name without the part letter the raw folders may add ("basement_0001a")."""
    return re.sub(r"(?<=\d)[a-z]$", "", name)


def labeled_scenes(mat_path: Path) -> list[str] | None:
    """The `scenes` cell array of the labeled set (one name per frame), None if it has none."""
    import h5py

    with h5py.File(mat_path, "r") as f:
        if "scenes" not in f:
            return None
        refs = np.asarray(f["scenes"]).ravel()
        return ["".join(chr(int(c)) for c in np.asarray(f[r]).ravel()) for r in refs]


class _TestDepth:
    """Reads the test split's depth: the reader's `depths`, or `rawDepths` from the same file."""

    def __init__(self, ds: NYUv2Labeled, key: str):
        self.ds, self.key, self.file = ds, key, None
        if key == "rawDepths":
            import h5py

            self.file = h5py.File(ds.mat_path, "r")
            if key not in self.file:
                self.close()
                raise MkeError(f"{ds.mat_path} has no dataset {key!r}; set data.test_depth=depths")

    def __call__(self, i: int) -> np.ndarray:
        if self.file is None:
            return self.ds.depth_m(i)
        depth = np.ascontiguousarray(self.file[self.key][i].T, dtype=np.float32)
        depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
        return depth

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _layout(n: int, size, depth: bool, labels: bool) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each array of a split's .npz, in the order they are stored."""
    h, w = size
    out = {"rgb": ((n, h, w, 3), np.dtype(np.uint8))}
    if depth:
        out["depth_mm"] = ((n, h, w), np.dtype(np.uint16))
    if labels:
        out["labels"] = ((n, h, w), np.dtype(np.uint8))
    return out


def _labeled_split(out: dict[str, np.ndarray], ds: NYUv2Labeled, split: str, size, test_depth: str,
                   progress: bool) -> None:
    """Frame by frame into `out` (the split's mapped part files, `_layout`)."""
    index = ds.split_indices("train" if split == "labeled" else "test")
    with _TestDepth(ds, test_depth if split == "test" else "depths") as read_depth:
        for k, i in enumerate(tqdm(index, desc=f"NYUv2 {split}", unit="frame", disable=not progress, leave=False)):
            out["rgb"][k] = resize_image(ds.rgb(i), size, nearest=False)
            out["labels"][k] = resize_image(ds.labels(i), size, nearest=True)
            if split == "test":
                depth_m = resize_image(read_depth(i), size, nearest=True).astype(np.float64)
                out["depth_mm"][k] = metres_to_millimetres(depth_m)


def unlabeled_pairs(data_cfg: dict, raw: Path, test_scenes: set[str]) -> list[tuple[Path, Path]]:
    """The raw pairs D_u draws on: every N-th per scene, test scenes left out, at most `unlabeled_max`."""
    pairs = raw_pairs(raw, every=int(data_cfg["unlabeled_every"]), max_time_diff_s=float(data_cfg["max_time_diff_s"]))
    kept = [p for p in pairs if _scene_key(p[1].parent.name) not in test_scenes]
    if not kept:
        raise MkeError(f"every raw pair under {raw} is from a scene of the test split; add raw scenes of "
                       "training rooms or set data.exclude_test_scenes=false")
    most = int(data_cfg["unlabeled_max"])
    if 0 < most < len(kept):
        kept = [kept[i] for i in np.unique(np.linspace(0, len(kept) - 1, most).round().astype(int))]
    return kept


def _unlabeled_split(out: dict[str, np.ndarray], pairs, size, progress: bool) -> None:
    """Frame by frame into `out` (the split's mapped part files, `_layout`)."""
    for k, (rgb_path, depth_path) in enumerate(tqdm(pairs, desc="NYUv2 unlabeled", unit="frame",
                                                    disable=not progress, leave=False)):
        rgb, depth = load_raw_pair(rgb_path, depth_path)
        out["rgb"][k] = resize_image(rgb, size, nearest=False)
        depth_m = resize_image(register_depth_to_rgb(depth), size, nearest=True).astype(np.float64)
        out["depth_mm"][k] = metres_to_millimetres(depth_m)


def _check_data_cfg(cfg: dict) -> None:
    d = cfg["data"]
    if d["test_depth"] not in TEST_DEPTHS:
        raise MkeError(f"data.test_depth must be one of {', '.join(TEST_DEPTHS)}, got {d['test_depth']!r}")
    if int(d["unlabeled_every"]) < 1 or int(d["unlabeled_max"]) < 0:
        raise MkeError(f"data.unlabeled_every must be >= 1 and data.unlabeled_max >= 0 (0 = all), got "
                       f"{d['unlabeled_every']} and {d['unlabeled_max']}")
    size = rgb_size(cfg)
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and x > 0 for x in size)):
        raise MkeError(f"preprocess.rgb.size must be [height, width] in pixels, got {size!r}")


def build_nyuv2(cfg: dict, progress: bool) -> Path:
    """Read, register, resize and cache the three splits (once per data config); the cache folder."""
    _check_data_cfg(cfg)
    d = cfg["data"]
    paths = nyu_paths(d)
    folder = cache_dir(cfg)
    if all((folder / f"{s}.npz").is_file() for s in SPLITS):
        return folder
    size = [int(x) for x in cfg["preprocess"]["rgb"]["size"]]
    with NYUv2Labeled(paths["labeled_mat"], paths["splits"], paths["mapping"]) as ds:
        test_scenes: set[str] = set()
        if d["exclude_test_scenes"]:
            scenes = labeled_scenes(paths["labeled_mat"])
            if scenes is None:
                raise MkeError(f"{paths['labeled_mat']} has no 'scenes' to tell the test split's rooms; "
                               "set data.exclude_test_scenes=false to draw D_u from every raw scene")
            test_scenes = {_scene_key(scenes[i]) for i in ds.split_indices("test")}
        pairs = unlabeled_pairs(d, paths["raw"], test_scenes)
        splits = {"labeled": (_layout(len(ds.split_indices("train")), size, depth=False, labels=True),
                              lambda out: _labeled_split(out, ds, "labeled", size, d["test_depth"], progress)),
                  "test": (_layout(len(ds.split_indices("test")), size, depth=True, labels=True),
                           lambda out: _labeled_split(out, ds, "test", size, d["test_depth"], progress)),
                  "unlabeled": (_layout(len(pairs), size, depth=True, labels=False),
                                lambda out: _unlabeled_split(out, pairs, size, progress))}
        for name, (layout, fill) in splits.items():
            path = folder / f"{name}.npz"
            if path.is_file():
                continue
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=f".{name}.", suffix=".parts", dir=folder) as parts:
                # parts of this process's own (every torchrun rank may build the cache at once)
                allocate_parts(Path(parts), name, layout)
                arrays = open_parts(Path(parts), name, layout)
                fill(arrays)
                for array in arrays.values():
                    array.flush()
                del arrays
                with atomic_path(path) as tmp:
                    pack_parts(Path(parts), name, tuple(layout), tmp)
    write_json(folder / "data.json", {"root": str(paths["labeled_mat"].parent), "size": size,
                                      "frames": {"unlabeled": len(pairs)}, "test_scenes_excluded": sorted(test_scenes),
                                      "data": {k: v for k, v in d.items() if k != "cache_dir"}})
    return folder


def load_nyuv2(cfg: dict) -> dict[str, FrameSet]:
    """The cached splits as FrameSets whose frames stay on disk (memory-mapped) until used (build_nyuv2
    must have run)."""
    folder = cache_dir(cfg)
    size = [int(x) for x in cfg["preprocess"]["rgb"]["size"]]
    k = Intrinsics.from_row(np.asarray(scaled_intrinsics(RGB_INTRINSICS, tuple(size)), np.float32), size[1], size[0])
    out = {}
    for name in SPLITS:
        path = folder / f"{name}.npz"
        try:
            arrays = npz_memmaps(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise MkeError(f"cached NYUv2 data {path} is unreadable ({exc}); delete {folder} to build it again") \
                from None
        n = len(arrays["rgb"])
        out[name] = FrameSet(rgb=arrays["rgb"], depth_mm=arrays.get("depth_mm"), labels=arrays.get("labels"),
                             intrinsics=[k] * n, name=name)
    return out


@register_task
class NYUv2Task(RGBDSegmentationTask):
    name = "nyuv2"
    title = "NYU Depth V2 (RGB → RGB + depth)"
    class_names = CLASS_NAMES_40
    class_colors = CLASS_COLORS_40
    # The paper's Table 4 (RGB → RGB + HHA, mIoU %).
    paper = {"UM teacher": 44.15, "UM student": 46.13, "NOISY student": 47.68, "MM student (no reg)": 46.14,
             "MM student": 48.88}
    paper_note = ("Paper figures: NYU Depth V2, Table 4 (mIoU %), with a DeepLabV3+ ResNet-101 teacher and an "
                  "SA-Gate RGB-HHA student at 640×480; with other networks or resolutions compare the ordering.")
    live_inputs = ("realsense://",)

    def prepare(self, cfg: dict, progress: bool) -> None:
        if SUP in cfg["methods"]:
            raise MkeError(f"'{SUP}' needs labels on the unlabeled frames, which NYU Depth V2's raw sequences "
                           "lack; remove it from `methods`")
        build_nyuv2(cfg, progress)

    def load_frames(self, cfg: dict) -> dict[str, FrameSet]:
        if not all((cache_dir(cfg) / f"{s}.npz").is_file() for s in SPLITS):
            build_nyuv2(cfg, progress=False)
        return load_nyuv2(cfg)
