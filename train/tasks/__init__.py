"""Tasks by name. Each entry points at the class that builds its data, models and figures.

Imported lazily, so `mke-train --task twomoon` never loads the segmentation stack. A task that is
planned but not built yet names the issue that will bring it.
"""
from __future__ import annotations

import difflib
import importlib

from mke.runtime.errors import MkeError
from mke.train.tasks.base import Task

TASKS: dict[str, str] = {
    "twomoon": "mke.train.tasks.twomoon:TwoMoonTask",
    "rgbd": "mke.train.tasks.rgbd:RGBDTask",
    "nyuv2": "mke.train.tasks.nyuv2:NYUv2Task",
}
PLANNED: dict[str, str] = {
    "av": "audio-visual recognition on built-in data",
    "ravdess": "RAVDESS emotion recognition",
    "vggsound": "AudioSet→VGGSound event recognition",
}


def task_names() -> list[str]:
    return list(TASKS) + list(PLANNED)


def get_task(name: str) -> Task:
    if name in TASKS:
        module, cls = TASKS[name].split(":")
        return getattr(importlib.import_module(module), cls)()
    if name in PLANNED:
        raise MkeError(f"task '{name}' is not built yet: {PLANNED[name]}")
    hint = difflib.get_close_matches(name, task_names(), n=1)
    raise MkeError(f"unknown task '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                   + f"; tasks: {', '.join(task_names())}")
