"""`av`: image → image + audio recognition on built-in clips shaped like RAVDESS (`builtin_av`): degraded
handwritten digits seen by a camera while a speaker says the digit's name. No download."""
from __future__ import annotations

from pathlib import Path

from mke.train.tasks import register_task
from mke.train.tasks.audiovisual import AudioVisualTask
from mke.train.tasks.ravdess import RAVDESS_PAPER


@register_task
class AVTask(AudioVisualTask):
    name = "av"
    title = "built-in audio-visual digits (image → image + audio)"
    input_kinds = {"rgb": "rgb_clip", "audio": "log_mel"}   # log-mel: a short word in 2 s of noise
    paper = RAVDESS_PAPER
    paper_note = ("Paper, Table 3: RAVDESS emotion recognition (image → image + audio), test accuracy %, shown "
                  "for reference: the built-in clips are digits, not emotions; only the ordering compares.")

    def load_clips(self, cfg: dict, progress: bool = False) -> dict:
        from mke.train.datasets.builtin_av import load_av

        return load_av(cfg["data"], progress=progress)

    def class_names(self, cfg: dict) -> list[str]:
        from mke.train.datasets.builtin_av import DIGIT_NAMES, data_settings

        return list(DIGIT_NAMES[:data_settings(cfg["data"])["classes"]])

    def data_summary(self, cfg: dict) -> dict:
        """The split protocol (by speaker) and the clips of each split, for the report's "Data" section."""
        from mke.train.datasets.builtin_av import data_settings

        s, clips = data_settings(cfg["data"]), self.load_clips(cfg)
        speakers = {name: ", ".join(str(a + 1) for a in sorted(set(clips[name].actors.tolist())))
                    for name in ("test", "val")}
        share = s["labeled_share"]
        return {"split_protocol": (f"speaker (test speakers {speakers['test']} and val speakers "
                                   f"{speakers['val'] or 'none'} held out whole; D_l : D_u = {share:g} : "
                                   f"{1 - share:g} over the other {s['actors'] - s['test_actors'] - s['val_actors']})"),
                "clips": {name: len(c) for name, c in clips.items()},
                "material": (f"{s['actors']} eSpeak NG voices saying digits 0–{s['classes'] - 1}; scikit-learn's "
                             f"handwritten digit scans, degraded; {s['clip_seconds']:g} s clips, an image every "
                             f"{s['frame_period_s']:g} s")}

    def replay(self, cfg: dict) -> Path | None:
        from mke.train.datasets.builtin_av import replay_paths

        return replay_paths(cfg["data"])["video"]

    def replay_audio(self, cfg: dict) -> Path | None:
        from mke.train.datasets.builtin_av import replay_paths

        return replay_paths(cfg["data"])["audio"]
