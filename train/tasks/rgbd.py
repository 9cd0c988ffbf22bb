"""`rgbd`: RGB → RGB-D indoor segmentation, on the built-in rendered rooms or on the user's own data.

`data.source: builtin` renders rooms with `mke.runtime.sim` (no download). `data.source: manifest`
reads three manifests (`mke.train.datasets.manifest`, docs/data.md): `labeled` rows need rgb and
mask (D_l; any depth is ignored: the teacher is RGB-only), `unlabeled` rows rgb and depth, or
RealSense recordings (D_u; masks, if every row has one, feed only `MM student (sup)`), `test` rows
all three. The classes are `data.class_names`, in label-id order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mke.runtime.depth_units import metres_to_millimetres
from mke.runtime.errors import MkeError
from mke.runtime.preprocess import resize_image
from mke.runtime.sim.classes import CLASS_COLORS, CLASS_NAMES
from mke.train.datasets.frame_arrays import FrameArray
from mke.train.datasets.manifest import entry_size, read_column
from mke.train.tasks import register_task
from mke.train.tasks.base import label_colors
from mke.train.tasks.segmentation import FrameSet, RGBDSegmentationTask

SOURCES = ("builtin", "manifest")
SPLITS = ("labeled", "unlabeled", "test")
NEEDS = {"labeled": ("mask",), "unlabeled": ("depth",), "test": ("depth", "mask")}
SUP = "MM student (sup)"




def source(cfg: dict) -> str:
    value = cfg["data"]["source"]
    if value not in SOURCES:
        raise MkeError(f"data.source must be one of {', '.join(SOURCES)}, got {value!r}")
    return value


def manifest_class_names(cfg: dict) -> tuple[str, ...]:
    names = cfg["data"]["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise MkeError("data.source=manifest needs data.class_names: your classes in label-id order, e.g. "
                       "data.class_names='[floor, wall, table]' (mask value 0 is the first, 255 is void)")
    if len(names) > 255:
        raise MkeError(f"data.class_names has {len(names)} classes; masks are 8-bit with 255 = void, so at most 255")
    return tuple(names)


def manifest_path(cfg: dict, split: str) -> Path:
    value = cfg["data"]["manifests"].get(split) or ""
    if not value:
        raise MkeError(f"data.source=manifest needs data.manifests.{split}: a .csv or .jsonl manifest of "
                       f"{_needs_text(split)} (see docs/data.md)")
    return Path(value).expanduser()


def _needs_text(split: str) -> str:
    return {"labeled": "rgb + mask rows", "unlabeled": "rgb + depth rows (or RealSense recordings)",
            "test": "rgb + depth + mask rows"}[split]


def read_manifests(cfg: dict) -> dict:
    """The three manifests, checked for the columns each split needs (recordings are extracted
    into `<data.cache_dir>/recordings` on the first read)."""
    from mke.train.datasets.manifest import Manifest

    cache = Path(cfg["data"]["cache_dir"]).expanduser() / "recordings"
    out = {}
    for split in SPLITS:
        path = manifest_path(cfg, split)
        m = Manifest.read(path, cache_dir=cache)
        for column in NEEDS[split]:
            lacking = next((e for e in m.entries if getattr(e, column) is None), None)
            if lacking is not None:
                raise MkeError(f"{lacking.origin}: the {split} manifest needs a {column} on every row "
                               f"({_needs_text(split)}); this row has none")
        out[split] = m
    return out


def manifest_frames(manifest, split: str, size) -> FrameSet:
    """Every sample of a manifest as lazy frames (`FrameArray`): a sample's files are read and brought
    to `size` = [h, w] (RGB area / linear, depth and masks nearest, as the runtime's preprocessing
    resizes) when a frame is indexed, so frames of several cameras stack and a manifest larger than
    memory trains from disk. Sizes are checked now, from the files' headers (`entry_size`)."""
    keep_depth = split != "labeled"
    keep_labels = split != "unlabeled" or manifest.has_masks
    columns = ("rgb",) + (("depth",) if keep_depth else ()) + (("mask",) if keep_labels else ())
    first = None
    for entry in manifest.entries:
        hw = entry_size(entry, columns[1:])
        if first is None:
            first = hw
        elif size is None and hw != first:
            raise MkeError(f"{entry.origin}: rgb is {hw[1]}x{hw[0]} but earlier rows are {first[1]}x{first[0]}; "
                           "set preprocess.rgb.size to resize them")
    h, w = (int(size[0]), int(size[1])) if size is not None else first
    entries = tuple(manifest.entries)

    def lazy(column, frame_shape, dtype):
        return FrameArray(ManifestColumn(entries, column, (h, w), size is None), len(entries), frame_shape,
                          dtype, name=f"the {split} manifest's {column}")

    return FrameSet(rgb=lazy("rgb", (h, w, 3), np.uint8),
                    depth_mm=lazy("depth", (h, w), np.uint16) if keep_depth else None,
                    labels=lazy("mask", (h, w), np.uint8) if keep_labels else None, name=split)


class ManifestColumn:
    """Frame i of a manifest column as a FrameSet holds it — rgb uint8, depth uint16 millimetres, mask
    uint8 class ids — read from the sample's file and brought to `hw`; picklable, it holds the
    entries (paths), not frames. `same_size`: the frames are not resized (preprocess.rgb.size unset),
    so each must already be `hw`."""

    def __init__(self, entries: tuple, column: str, hw: tuple[int, int], same_size: bool):
        self.entries, self.column, self.hw, self.same_size = entries, column, hw, same_size

    def __call__(self, i: int) -> np.ndarray:
        entry = self.entries[i]
        raw = read_column(entry, self.column)
        if self.same_size and raw.shape[:2] != self.hw:
            raise MkeError(f"{entry.origin}: {self.column} file {getattr(entry, self.column)} is "
                           f"{raw.shape[1]}x{raw.shape[0]} but earlier rows are {self.hw[1]}x{self.hw[0]} "
                           "(did it change since the manifest was read?); set preprocess.rgb.size to resize them")
        if self.column == "rgb":
            return resize_image(raw, self.hw, nearest=False)
        if self.column == "depth":
            return metres_to_millimetres(resize_image(raw, self.hw, nearest=True).astype(np.float64))
        return resize_image(raw, self.hw, nearest=True)


@register_task
class RGBDTask(RGBDSegmentationTask):
    name = "rgbd"
    title = "built-in RGB-D rooms (RGB → RGB + depth)"
    class_names = tuple(CLASS_NAMES)
    class_colors = tuple(CLASS_COLORS)
    # NYU Depth V2, the paper's Table 4 (RGB → RGB + HHA, mIoU %): the reference for this task's shape.
    paper = {"UM teacher": 44.15, "UM student": 46.13, "NOISY student": 47.68, "MM student (no reg)": 46.14,
             "MM student": 48.88}
    paper_note = ("Paper figures are NYU Depth V2 (Table 4, mIoU %), shown for reference: this run uses the "
                  "built-in rendered rooms, so only the ordering, not the values, is comparable.")
    live_inputs = ("realsense://", "sim://")

    def use_config(self, cfg: dict) -> None:
        """Set this instance's classes and title from the config.

        The built-in rooms keep the class attributes; a manifest brings its own classes, so they
        are set on the instance — by `prepare` (the report's instance) and `load_frames` (each
        worker's), the two places a task first sees the config.
        """
        if source(cfg) != "manifest":
            return
        self.class_names = manifest_class_names(cfg)
        self.class_colors = label_colors(len(self.class_names))
        self.title = "your RGB-D data (RGB → RGB + depth)"
        self.paper_note = ("Paper figures are NYU Depth V2 (Table 4, mIoU %), shown for reference: this run uses "
                           "your own data, so only the ordering, not the values, is comparable.")

    def prepare(self, cfg: dict, progress: bool) -> None:
        self.use_config(cfg)
        if source(cfg) == "builtin":
            from mke.train.datasets.builtin_rgbd import load_builtin_rgbd

            load_builtin_rgbd(cfg["data"], progress=progress)
            return
        self.check_frame_metadata(cfg, carried=(), source="manifests (data.source=manifest)")
        manifests = read_manifests(cfg)
        if SUP in cfg["methods"] and not manifests["unlabeled"].has_masks:
            raise MkeError(f"'{SUP}' needs a mask on every row of the unlabeled manifest "
                           f"{manifests['unlabeled'].path}; remove it from `methods`, e.g. "
                           "methods='[UM teacher, UM student, NOISY student, MM student (no reg), MM student]'")

    def replay(self, cfg: dict) -> Path | None:
        if source(cfg) != "builtin":
            return None
        from mke.train.datasets.builtin_rgbd import cache_dir

        path = cache_dir(cfg["data"]) / "replay.db3"
        return path if path.is_file() else None

    def load_frames(self, cfg: dict) -> dict[str, FrameSet]:
        self.use_config(cfg)
        if source(cfg) == "builtin":
            from mke.train.datasets.builtin_rgbd import load_builtin_rgbd

            return load_builtin_rgbd(cfg["data"], progress=False)
        size = self.input_modality("rgb").params(cfg["preprocess"]["rgb"])["size"]
        return {split: manifest_frames(m, split, size) for split, m in read_manifests(cfg).items()}
