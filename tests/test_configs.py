"""Every task's default config resolves and starts: `mke-train --task T` on tiny data, through its first stage.

Each configs/<task>.yaml (found by glob: a new task's YAML is covered the day it lands) is resolved as
mke-train resolves it — the shared defaults under it, `device: auto` and `precision: auto` left as they
are — with only sizes made tiny (few samples, a tiny model, one epoch), and the run goes through its
first stage: the data built, one teacher trained and scored. Tasks that read files get them written
in their real formats by the writers their own tests use (tests/train).
"""
import json
import math
import sys
from importlib import resources
from pathlib import Path

import pytest

from mke.train import pipeline
from mke.train.cli import main
from mke.train.config import DEFAULTS, resolve_config

CONFIGS = Path(str(resources.files("mke.configs")))   # the folder mke-train reads them from
CONFIG_FILES = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.stem != DEFAULTS)
DATASET_WRITERS = Path(__file__).parent / "train"    # tests/train: NYU and RAVDESS written in their real formats

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dataset_writers_importable():
    if str(DATASET_WRITERS) not in sys.path:
        sys.path.insert(0, str(DATASET_WRITERS))


# A task's overrides for a quick start: one seed, tiny sizes, one teacher epoch, the data written under
# tmp_path where the task reads files. Nothing else: device, precision, methods, the rest stay as shipped.

def twomoon(tmp_path):
    return ["seeds=1", "teacher.optim.epochs=1"]


def rgbd(tmp_path):
    return ["seeds=1", f"data.cache_dir={tmp_path / 'cache'}", "data.width=64", "data.height=48",
            "data.labeled={rooms: 2, frames: 6}", "data.unlabeled={rooms: 2, frames: 4}",
            "data.test={rooms: 1, frames: 2}", "data.recording.frames=0",
            "preprocess.rgb.size=[48, 64]", "preprocess.depth.size=[48, 64]",
            "model.encoder=tiny", "teacher.optim.epochs=1", "teacher.optim.batch_size=4"]


def nyuv2(tmp_path):
    _dataset_writers_importable()
    from test_nyuv2_task import TINY, write_nyu

    root = write_nyu(tmp_path / "nyu")
    return TINY + [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}"]


def av(tmp_path):
    return ["seeds=1", f"data.cache_dir={tmp_path / 'cache'}", "data.actors=6", "data.statements=1",
            "data.repetitions=1", "data.val_actors=1", "data.test_actors=1", "data.replay.clips=2",
            "teacher.optim.epochs=1"]


def ravdess(tmp_path):
    _dataset_writers_importable()
    from test_ravdess import SECONDS, make_tree

    make_tree(tmp_path / "ravdess")
    data = {"root": str(tmp_path / "ravdess"), "cache_dir": str(tmp_path / "cache"), "actors": 6,
            "val_actors": 1, "test_actors": 1, "clip_seconds": SECONDS, "image_size": 32}
    return ["seeds=1", *(f"data.{key}={json.dumps(value)}" for key, value in data.items()),
            "preprocess.rgb.frames=4", "preprocess.rgb.size=[32, 32]", f"preprocess.audio.seconds={SECONDS}",
            "teacher.optim.epochs=1"]


def events(tmp_path):
    return ["seeds=1", "workers=1", f"data.cache_dir={tmp_path / 'cache'}",
            "data.clips={labeled: 8, unlabeled: 8, val: 2, test: 8}", "data.image={size: 32}",
            "data.replay={clips: 1, fps: 10, size: 64}", "teacher.optim.epochs=1"]


def vggsound(tmp_path):
    _dataset_writers_importable()
    from test_vggsound_task import TINY, TINY_DATA as CLIPS, write_tree

    data = {**write_tree(tmp_path / "av", tmp_path / "cache"), **CLIPS}
    return ["seeds=1", "workers=1", *(f"data.{key}={json.dumps(value)}" for key, value in data.items()), *TINY,
            "teacher.optim.epochs=1"]


TINY_DATA = {f.__name__: f for f in (twomoon, rgbd, nyuv2, av, ravdess, events, vggsound)}  # task → overrides: tiny sizes, data written


class FirstStageDone(Exception):
    """Raised in place of the stages after the first: the run has started; the rest is other tests' work."""


@pytest.fixture
def first_stage_only(monkeypatch):
    """mke-train runs its first stage (pipeline.Stages.run) as it always does, then stops with
    FirstStageDone(stage name, its results)."""
    run = pipeline.Stages.run

    def run_then_stop(self, name, fn, units):
        raise FirstStageDone(name, run(self, name, fn, units))

    monkeypatch.setattr(pipeline.Stages, "run", run_then_stop)


def test_every_task_mke_train_lists_has_a_config_here():
    from mke.train.tasks import registered_tasks

    shipped = {name for name, cls in registered_tasks().items() if cls.__module__.startswith("mke.")}  # not tests' own
    assert shipped <= {Path(file).stem for file in CONFIG_FILES}  # so none is left untested
    assert "defaults.yaml" not in CONFIG_FILES  # under every task's YAML, not a task


@pytest.mark.parametrize("file", CONFIG_FILES)
def test_the_default_config_resolves_and_its_first_stage_runs(file, tmp_path, first_stage_only, capsys):
    task = Path(file).stem
    default = resolve_config(task, None, [])  # what `mke-train --task T` runs with, nothing overridden
    if task not in TINY_DATA:
        pytest.fail(f"configs/{file} has no tiny data here: add a `{task}(tmp_path)` to TINY_DATA in {__file__}")
    overrides = TINY_DATA[task](tmp_path)
    tiny = resolve_config(task, None, overrides)
    assert (tiny["device"], tiny["precision"]) == (default["device"], default["precision"])  # e.g. auto, as shipped

    with pytest.raises(FirstStageDone) as done:
        code = main(["--task", task, *overrides, "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
        pytest.fail(f"mke-train --task {task} exited {code} before its first stage ended:\n{capsys.readouterr().err}")
    stage, results = done.value.args
    assert stage == "teacher"
    [[teacher]] = results  # one seed, one unit of work
    assert math.isfinite(teacher["value"]) and 0 <= teacher["value"] <= 100
    assert (tmp_path / "runs" / task / "seed0" / "teacher.pt").stat().st_size > 0
