"""The rgbd task on a tiny rendered data set: data honesty, the stages, the errors."""
import json

import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.train import pipeline
from mke.train.checkpoint import load_checkpoint, save_checkpoint
from mke.train.config import resolve_config
from mke.train.datasets.builtin_rgbd import cache_dir, load_builtin_rgbd
from mke.train.tasks.segmentation import FrameSet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["seeds=1", "workers=1", "data.width=64", "data.height=48",
        "data.labeled={rooms: 2, frames: 6}", "data.unlabeled={rooms: 2, frames: 10}", "data.test={rooms: 1, frames: 4}",
        "data.recording.frames=0", "preprocess.rgb.size=[48, 64]", "preprocess.depth.size=[48, 64]",
        "teacher.optim.epochs=1", "student.optim.epochs=1", "teacher.optim.batch_size=4", "student.optim.batch_size=4",
        "methods=[UM teacher, UM student, NOISY student, MM student]"]


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return resolve_config("rgbd", None, TINY + [f"data.cache_dir={root}"])


def test_rendered_splits_have_the_mke_shape_and_are_cached(tiny_cfg):
    frames = load_builtin_rgbd(tiny_cfg["data"], progress=False)
    assert frames["labeled"].depth_mm is None  # the teacher's data is RGB only
    assert frames["unlabeled"].depth_mm.dtype == np.uint16 and frames["test"].labels.dtype == np.uint8
    assert [len(frames[s]) for s in ("labeled", "unlabeled", "test")] == [6, 10, 4]
    folder = cache_dir(tiny_cfg["data"])
    stamp = (folder / "unlabeled.npz").stat().st_mtime_ns
    again = load_builtin_rgbd(tiny_cfg["data"], progress=False)
    assert (folder / "unlabeled.npz").stat().st_mtime_ns == stamp  # read from the cache, not rendered again
    assert np.array_equal(again["test"].rgb, frames["test"].rgb)


def test_pipeline_runs_and_reports_per_class_iou(tiny_cfg, tmp_path):
    metrics = pipeline.run_mke(tiny_cfg, tmp_path / "run", progress=False)
    assert metrics["metric"] == "miou"
    teacher = next(r for r in metrics["results"] if r["method"] == "UM teacher")
    assert set(teacher["per_class_iou"]) == {"floor", "wall", "table", "chair", "cabinet", "sofa", "bin"}
    noisy = next(r for r in metrics["results"] if r["method"] == "NOISY student")
    assert (noisy["regularization"], noisy["strength"]) == ("augment", "default")
    assert metrics["pseudo_labels"]["bytes_per_sample"] < 48 * 64 * 7 * 4 / 3  # top-2 storage, not dense fp32
    assert (tmp_path / "run" / "figures" / "examples.png").stat().st_size > 5000
    assert "replay" not in metrics  # data.recording.frames=0: no recording to point mke-live at


def test_the_run_names_the_recording_of_its_world(tiny_cfg, tmp_path):
    from mke.train.config import apply_overrides

    cfg = apply_overrides(tiny_cfg, ["data.recording={frames: 3, width: 64, height: 48, step: 0.1, fps: 15}",
                                     "methods=[UM teacher]"])
    metrics = pipeline.run_mke(cfg, tmp_path / "run", progress=False)
    assert metrics["replay"] == str(cache_dir(cfg["data"]) / "replay.db3")
    assert (cache_dir(cfg["data"]) / "replay.db3").stat().st_size > 1000


def test_teacher_with_another_class_count_is_refused(tiny_cfg, tmp_path):
    root = tmp_path / "run"
    pipeline.run_mke(tiny_cfg, root, progress=False)
    teacher = root / "seed0" / "teacher.pt"
    state, meta = load_checkpoint(teacher)
    meta["classes"] = ["a", "b", "c"]

    class Holder:
        def state_dict(self):
            return state

    save_checkpoint(teacher, Holder(), meta)
    with pytest.raises(MkeError, match="predicts 3 classes but the data has 7"):
        pipeline.run_mke(tiny_cfg, root, progress=False)


def test_bad_frames_are_named():
    rgb = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(MkeError, match="unlabeled: depth must be uint16 millimetres, got float32"):
        FrameSet(rgb, depth_mm=np.zeros((2, 8, 8), np.float32), name="unlabeled")
    with pytest.raises(MkeError, match=r"test: depth is \(8, 6\) but RGB is \(8, 8\)"):
        FrameSet(rgb, depth_mm=np.zeros((2, 8, 6), np.uint16), name="test")
    with pytest.raises(MkeError, match="labels are"):
        FrameSet(rgb, labels=np.zeros((2, 4, 4), np.uint8), name="labeled")


def test_labels_beyond_the_class_list_are_refused(tiny_cfg):
    from mke.train.tasks.rgbd import RGBDTask

    class Broken(RGBDTask):
        def load_frames(self, cfg):
            frames = super().load_frames(cfg)
            frames["test"].labels[0, 0, 0] = 9
            return frames

    with pytest.raises(MkeError, match=r"the test split has class ids \[9\] but the task has 7 classes"):
        Broken().build_data(tiny_cfg)


def test_rendering_does_not_depend_on_the_number_of_processes(tiny_cfg):
    from mke.train.datasets.builtin_rgbd import _render_data, _stack_rooms

    one = _stack_rooms(_render_data(["unlabeled"], tiny_cfg["data"], progress=False, workers=1)["unlabeled"])
    with_replay = {**tiny_cfg["data"], "recording": {**tiny_cfg["data"]["recording"], "frames": 3, "width": 80, "height": 60}}
    both = _render_data(["labeled", "unlabeled"], with_replay, progress=False, replay=True, workers=2)
    assert list(both) == ["replay", "labeled", "unlabeled"]
    assert both["replay"][0]["rgb"].shape == (3, 60, 80, 3) and both["replay"][0]["depth_mm"].shape == (3, 60, 80)
    two = _stack_rooms(both["unlabeled"])
    assert set(one) == set(two) == {"rgb", "depth_mm", "labels", "intrinsics", "up", "room"}
    for key in one:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    assert one["room"].tolist() == [0] * 5 + [1] * 5  # 10 frames from 2 rooms, in room order


@pytest.mark.parametrize("encoding", ["metric", "hha"])
def test_training_tensors_are_what_mke_live_feeds_the_exported_model(tiny_cfg, encoding):
    """One preprocessing: the task's tensors and the live InputBuilder's feeds, for the same raw frame
    and the spec export writes, are the same bytes (depth through the frame's intrinsics and up)."""
    from mke.runtime.live.frame import LiveFrame
    from mke.runtime.live.inputs import InputBuilder
    from mke.runtime.spec import ModelSpec, OutputSpec
    from mke.train.config import apply_overrides
    from mke.train.tasks.rgbd import RGBDTask

    cfg = apply_overrides(tiny_cfg, [f"preprocess.depth.encoding={encoding}", "preprocess.rgb.size=[24, 32]",
                                     "preprocess.depth.size=[24, 32]"])
    task = RGBDTask()
    frames, data = task.load_frames(cfg)["test"], task.build_data(cfg)
    inputs = [task.input_spec(cfg, name) for name in ("rgb", "depth")]
    assert [i.shape for i in inputs] == [[1, 3, 24, 32], [1, 3 if encoding == "hha" else 1, 24, 32]]
    spec = ModelSpec("rgbd", "segmentation", list(task.class_names), task.colors(len(task.class_names)), inputs,
                     [OutputSpec("logits", [1, len(task.class_names), 24, 32])])
    builder = InputBuilder(spec)
    for i in range(len(frames)):
        feeds = builder(LiveFrame(i, 0.0, 0.0, rgb=frames.rgb[i], depth=frames.depth_mm[i],
                                  intrinsics=frames.intrinsics[i], up=frames.up[i]))
        for name in ("rgb", "depth"):
            assert feeds[name][0].tobytes() == data.test.inputs[name][i].numpy().tobytes(), (i, name)
    assert tuple(data.test.targets.shape[1:]) == (24, 32)  # labels follow the α image's size


def test_a_preprocess_kind_that_is_not_the_inputs_is_refused(tiny_cfg):
    from mke.train.config import apply_overrides
    from mke.train.tasks.rgbd import RGBDTask

    with pytest.raises(MkeError, match="preprocess.depth.kind must be 'depth' \\(task rgbd's depth input\\), "
                                       "got 'rgb'"):
        RGBDTask().input_spec(apply_overrides(tiny_cfg, ["preprocess.depth.kind=rgb"]), "depth")
