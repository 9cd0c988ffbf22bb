"""`ravdess`: RAVDESS emotion recognition (image → image + audio), the paper's Table 3, on the user's copy of
the dataset (`data.root`; `mke.train.datasets.ravdess` reads, pairs and caches it). 8 emotions; the teacher
sees a clip's images (an image every 0.5 s), the students add its MFCCs."""
from __future__ import annotations

import logging

from mke.train.tasks import register_task
from mke.train.tasks.audiovisual import AudioVisualTask

log = logging.getLogger(__name__)

# The paper's Table 3 (RAVDESS, image → image + audio, test accuracy %).
RAVDESS_PAPER = {"UM teacher": 80.33, "UM student": 77.79, "NOISY student": 83.09, "MM student (no reg)": 89.28,
                 "MM student": 91.38, "MM student (sup)": 97.35}


@register_task
class RavdessTask(AudioVisualTask):
    name = "ravdess"
    title = "RAVDESS emotion recognition (image → image + audio)"
    input_kinds = {"rgb": "rgb_clip", "audio": "mfcc"}   # the paper's MFCCs
    paper = RAVDESS_PAPER
    paper_note = ("Paper, Table 3: RAVDESS emotion recognition (image → image + audio), test accuracy %. The paper "
                  "split its clips at random (data.split=paper), so its test actors were also seen in training; "
                  "data.split=actor tests on unseen actors, a harder test. The Data section names the protocol "
                  "this run used.")

    def check_settings(self, cfg: dict) -> None:
        from mke.train.datasets.ravdess import data_settings, frame_times

        s = data_settings(cfg["data"])
        self.check_clip_settings(cfg, len(frame_times(s)), s["frame_period_s"], s["clip_seconds"])

    def load_clips(self, cfg: dict, progress: bool = False) -> dict:
        from mke.train.datasets.ravdess import load_ravdess

        self.check_settings(cfg)
        return load_ravdess(cfg["data"], progress=progress)

    def class_names(self, cfg: dict) -> list[str]:
        from mke.train.datasets.ravdess import EMOTIONS

        return list(EMOTIONS)

    def prepare(self, cfg: dict, progress: bool) -> None:
        """Decode once (warning about each skipped file); a cache made before says how many it skipped."""
        from mke.train.datasets.ravdess import ensure_cache, read_cache_meta

        self.check_settings(cfg)
        folder, decoded = ensure_cache(cfg["data"], progress)
        skipped = read_cache_meta(folder)["skipped"]
        if not decoded and skipped:
            log.warning("RAVDESS: %d files were skipped when %s was decoded (metrics.json and report.md list "
                        "them; so does its data.json)", len(skipped), folder)

    def data_summary(self, cfg: dict) -> dict:
        from mke.train.datasets.ravdess import data_summary

        return data_summary(cfg["data"])

