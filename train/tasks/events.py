"""`events`: audio-visual event recognition on built-in clips (audio → audio + video, multilabel), the
paper's AudioSet → VGGSound setting on data made offline (`mke.train.datasets.builtin_events`): 2 s clips
in which 1–3 of 10 event classes sound and show at once, some masked or confusable by ear but plain to
see. The teacher hears D_l's clips; the students add the video of D_u's. Scored by mAP (0–1)."""
from __future__ import annotations

from pathlib import Path

from mke.train.data import MKEData
from mke.train.tasks import register_task
from mke.train.tasks.audiovisual import AudioVisualTask

# The paper's Table 4 (AudioSet → VGGSound, audio → audio + video, test mAP).
EVENTS_PAPER = {"UM teacher": 0.345, "UM student": 0.406, "NOISY student": 0.411, "MM student (no reg)": 0.421,
                "MM student": 0.427, "MM student (sup)": 0.434}


class EventsTask(AudioVisualTask):
    """The shared part of the multilabel event tasks: audio is α (the teacher's), the clip's images β."""

    kind = "multilabel"
    networks = ("fusion",)   # DMD's margin loss needs one class per clip
    input_kinds = {"audio": "log_mel", "rgb": "rgb_clip"}   # α, β
    paper = EVENTS_PAPER

    def figures(self, run, data: MKEData) -> list[Path]:
        from mke.train.plots import class_average_precision

        return [class_average_precision(run, self, data)]


@register_task
class BuiltinEventsTask(EventsTask):
    name = "events"
    title = "built-in audio-visual events (audio → audio + video, multilabel)"
    paper_note = ("Paper, Table 4: AudioSet → VGGSound event recognition (audio → audio + video, 46 classes), "
                  "test mAP, shown for reference: the built-in clips have 10 classes of synthetic events; only the "
                  "ordering compares.")

    def load_clips(self, cfg: dict, progress: bool = False) -> dict:
        from mke.train.datasets.builtin_events import load_events

        return load_events(cfg["data"], progress=progress, workers=int(cfg.get("workers", 0)))

    def class_names(self, cfg: dict) -> list[str]:
        from mke.train.datasets.builtin_events import CLASS_NAMES

        return list(CLASS_NAMES)

    def data_summary(self, cfg: dict) -> dict:
        """Clips per split, their events and the masked ones, for the report's "Data" section."""
        from mke.train.datasets.builtin_events import data_settings, split_summary

        s, clips = data_settings(cfg["data"]), self.load_clips(cfg)
        masked = {name: int(c.masked.sum()) for name, c in clips.items()}
        return {"split_protocol": (f"independent clips per split (seed {s['seed']}); every class in the same number "
                                   f"of clips of a split (±1)"),
                "clips": {name: len(c) for name, c in clips.items()},
                "masked_events": masked,
                "per_class_test": split_summary({"labels": clips["test"].labels, **clips["test"].events,
                                                 **clips["test"].meta})["per_class"],
                "material": (f"{s['clip_seconds']:g} s clips with {s['events'][0]}–{s['events'][1]} of 10 events "
                             f"(sounds synthesised and eSpeak NG speech; OpenCV sprites), a frame every "
                             f"{s['frame_period_s']:g} s")}

    def replay(self, cfg: dict) -> Path | None:
        from mke.train.datasets.builtin_events import replay_paths

        return replay_paths(cfg["data"])["video"]

    def replay_audio(self, cfg: dict) -> Path | None:
        from mke.train.datasets.builtin_events import replay_paths

        return replay_paths(cfg["data"])["audio"]
