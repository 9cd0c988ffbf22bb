"""`vggsound`: the paper's AudioSet → VGGSound event recognition (audio → audio + video, multilabel, mAP
0–1), on the user's copies of both datasets (`data.root`; `mke.train.datasets.audioset_vggsound` reads
the lists and finds the clips, `mke.train.datasets.vggsound_clips` decodes and caches them). The
teacher hears labeled AudioSet clips (D_l); the students add the video of VGGSound's train clips (D_u);
VGGSound's test clips score every method, over the shared classes of the class map."""
from __future__ import annotations

import logging

from mke.train.tasks import register_task
from mke.train.tasks.events import EventsTask

log = logging.getLogger(__name__)


@register_task
class VGGSoundTask(EventsTask):
    name = "vggsound"
    title = "AudioSet → VGGSound event recognition (audio → audio + video, multilabel)"
    paper_note = ("Paper, Table 4: AudioSet → VGGSound event recognition (audio → audio + video), test mAP over "
                  "its 46 shared classes, which it does not list. This run's classes are those of its class map "
                  "(the default: 63, built from the datasets' class lists by a stated rule; the Data section "
                  "names the file), and its clips are those found on disk, so the figures compare with the "
                  "paper's in ordering, not class for class.")

    def check_settings(self, cfg: dict) -> None:
        from mke.train.datasets.vggsound_clips import data_settings, frame_times

        s = data_settings(cfg["data"])
        self.check_clip_settings(cfg, len(frame_times(s)), s["frame_period_s"], s["clip_seconds"])

    def load_clips(self, cfg: dict, progress: bool = False) -> dict:
        from mke.train.datasets.vggsound_clips import load_vggsound

        self.check_settings(cfg)
        return load_vggsound(cfg["data"], progress=progress, workers=int(cfg["workers"]))

    def class_names(self, cfg: dict) -> list[str]:
        """The class map's shared classes, read without decoding anything (or needing data.root)."""
        from mke.train.datasets.vggsound_clips import class_names

        return list(class_names(cfg["data"]))

    def prepare(self, cfg: dict, progress: bool) -> None:
        """Decode once (the readers warn about missing clips, the decoder about broken ones); a cache made
        before says how many it could not decode."""
        from mke.train.datasets.vggsound_clips import ensure_cache, read_cache_meta

        self.check_settings(cfg)
        folder, decoded = ensure_cache(cfg["data"], progress, workers=int(cfg["workers"]))
        undecodable = sum(len(v) for v in read_cache_meta(folder)["undecodable"].values())
        if not decoded and undecodable:
            log.warning("VGGSound: %d clips could not be decoded when %s was built (metrics.json and report.md "
                        "list them; so does its data.json)", undecodable, folder)

    def data_summary(self, cfg: dict) -> dict:
        from mke.train.datasets.vggsound_clips import data_summary

        return data_summary(cfg["data"])
