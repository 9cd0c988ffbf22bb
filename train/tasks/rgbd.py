"""`rgbd`: RGB → RGB-D indoor segmentation on the built-in rendered rooms (no download)."""
from __future__ import annotations

from mke.runtime.sim.classes import CLASS_COLORS, CLASS_NAMES
from mke.train.tasks.segmentation import FrameSet, RGBDSegmentationTask


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

    def prepare(self, cfg: dict, progress: bool) -> None:
        from mke.train.datasets.builtin_rgbd import load_builtin_rgbd

        load_builtin_rgbd(cfg["data"], progress=progress)

    def load_frames(self, cfg: dict) -> dict[str, FrameSet]:
        from mke.train.datasets.builtin_rgbd import load_builtin_rgbd

        return load_builtin_rgbd(cfg["data"], progress=False)
