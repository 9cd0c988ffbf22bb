"""The rgbd task on the user's own data: three manifests of PNG files and a RealSense recording."""
import json

import cv2
import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.runtime.sim.classes import CLASS_NAMES
from mke.train import pipeline
from mke.train.config import resolve_config
from mke.train.tasks import get_task
from mke.train.tasks.base import label_colors
from mke.train.tasks.rgbd import RGBDTask

H, W = 24, 32
CLASSES = ["floor", "wall", "box"]
TINY = ["seeds=1", "workers=1", "data.source=manifest", "data.class_names=[floor, wall, box]",
        "preprocess.rgb.size=[24, 32]", "preprocess.depth.size=[24, 32]", "model.decoder_width=16",
        "teacher.optim.epochs=1", "student.optim.epochs=1", "teacher.optim.batch_size=4",
        "student.optim.batch_size=4", "methods=[UM teacher, UM student, MM student]", "report.examples=2"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def scene(k, h=H, w=W):
    """Floor below, wall above, a box whose place depends on k; depth says which is which (mm)."""
    y, x = np.mgrid[0:h, 0:w]
    mask = np.where(y >= h // 2, 0, 1).astype(np.uint8)
    box = (abs(x - (w // 4 + k * w // 8)) < w // 8) & (abs(y - h // 2) < h // 6)
    mask[box] = 2
    rgb = np.stack([80 + 50 * mask, 100 + 5 * k + 0 * x, 120 + 3 * (y % 5)], -1).astype(np.uint8)
    depth = np.where(mask == 0, 1500 + 40 * (h - y), np.where(mask == 1, 3000, 1200)).astype(np.uint16)
    depth[0, 0] = 0                                   # a hole stays invalid
    mask[0, :] = 255                                  # void
    return rgb, depth, mask


def write_sample(folder, name, k, h=H, w=W):
    rgb, depth, mask = scene(k, h, w)
    cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / f"{name}_depth.png"), depth)
    cv2.imwrite(str(folder / f"{name}_mask.png"), mask)


def write_data(root, recording=True):
    """labeled.csv (rgb + mask; one frame from a larger camera), unlabeled.jsonl (rgb + depth and a
    RealSense recording), test.csv (rgb + depth + mask)."""
    frames = root / "frames"
    frames.mkdir(parents=True)
    for k in range(10):
        write_sample(frames, f"{k}", k % 5)
    write_sample(frames, "big", 2, 2 * H, 2 * W)
    (root / "labeled.csv").write_text("rgb,mask\n" + "".join(f"frames/{k}.png,frames/{k}_mask.png\n" for k in range(3))
                                      + "frames/big.png,frames/big_mask.png\n")
    rows = [{"rgb": f"frames/{k}.png", "depth": f"frames/{k}_depth.png"} for k in range(3, 6)]
    if recording:
        from mke.runtime.sensors.realsense_recording import write_recording

        write_recording(root / "robot.db3", [scene(k)[:2] for k in range(3)],
                        color_intrinsics={"width": W, "height": H, "fx": 30.0, "fy": 30.0, "cx": W / 2, "cy": H / 2})
        rows.append({"recording": "robot.db3", "every": 1})
    (root / "unlabeled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "test.csv").write_text("rgb,depth,mask\n" + "".join(
        f"frames/{k}.png,frames/{k}_depth.png,frames/{k}_mask.png\n" for k in range(6, 10)))
    return root


def config(root, *extra):
    return resolve_config("rgbd", None, TINY + [
        f"data.manifests.labeled={root / 'labeled.csv'}", f"data.manifests.unlabeled={root / 'unlabeled.jsonl'}",
        f"data.manifests.test={root / 'test.csv'}", f"data.cache_dir={root / 'cache'}", *extra])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    pytest.importorskip("pyrealsense2", reason="pyrealsense2 is not installed (pip install pyrealsense2)")
    return write_data(tmp_path_factory.mktemp("own") / "data")


def test_manifests_become_the_three_splits(data):
    cfg = config(data)
    task = get_task("rgbd")
    task.prepare(cfg, progress=False)
    frames = task.load_frames(cfg)
    lab, unl, test = frames["labeled"], frames["unlabeled"], frames["test"]
    assert (len(lab), len(unl), len(test)) == (4, 6, 4)      # 3 files + 3 recorded frames unlabeled
    assert lab.depth_mm is None and unl.labels is None and test.labels is not None
    assert lab.rgb.shape[1:3] == (H, W)                       # the larger frame is brought to rgb.size
    np.testing.assert_array_equal(lab.labels[3], scene(2)[2])  # nearest keeps class ids exact
    np.testing.assert_array_equal(unl.depth_mm[0], scene(3)[1])   # metres → millimetres, holes stay 0
    np.testing.assert_array_equal(unl.depth_mm[3:], np.stack([scene(k)[1] for k in range(3)]))  # recording
    assert unl.depth_mm.dtype == np.uint16 and test.labels.dtype == np.uint8
    assert task.class_names == tuple(CLASSES) and task.class_colors == label_colors(3)
    assert RGBDTask.class_names == tuple(CLASS_NAMES)          # the built-in classes stay the class's own


def test_the_pipeline_runs_on_manifests(data, tmp_path):
    metrics = pipeline.run_mke(config(data), tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["metric"] == metrics["metric"] == "miou"
    assert {r["method"] for r in saved["results"]} == {"UM teacher", "UM student", "MM student"}
    assert set(saved["results"][0]["per_class_iou"]) == set(CLASSES)
    assert (tmp_path / "run" / "figures" / "examples.png").is_file()
    assert "your RGB-D data" in (tmp_path / "run" / "report.md").read_text()


def test_unlabeled_masks_enable_the_supervised_bound(tmp_path):
    root = write_data(tmp_path, recording=False)
    (root / "unlabeled.csv").write_text("rgb,depth,mask\n" + "".join(
        f"frames/{k}.png,frames/{k}_depth.png,frames/{k}_mask.png\n" for k in range(3, 6)))
    cfg = config(root, f"data.manifests.unlabeled={root / 'unlabeled.csv'}", "methods=[UM teacher, MM student (sup)]")
    task = get_task("rgbd")
    task.prepare(cfg, progress=False)
    assert task.load_frames(cfg)["unlabeled"].labels is not None


def test_the_builtin_source_keeps_its_classes():
    task = get_task("rgbd")
    task.use_config(resolve_config("rgbd", None, []))
    assert task.class_names == tuple(CLASS_NAMES) and task.title.startswith("built-in")


@pytest.fixture
def files(tmp_path):
    return write_data(tmp_path, recording=False)


def test_missing_class_names_or_manifests_are_named(files):
    task = get_task("rgbd")
    with pytest.raises(MkeError, match=r"needs data.class_names: your classes in label-id order"):
        task.prepare(config(files, "data.class_names=[]"), progress=False)
    with pytest.raises(MkeError, match=r"needs data.manifests.test: a .csv or .jsonl manifest of rgb \+ depth \+ mask"):
        task.prepare(config(files, "data.manifests.test="), progress=False)
    with pytest.raises(MkeError, match=r"manifest .*nowhere.csv does not exist"):
        task.prepare(config(files, f"data.manifests.test={files / 'nowhere.csv'}"), progress=False)
    with pytest.raises(MkeError, match="data.source must be one of builtin, manifest"):
        task.prepare(config(files, "data.source=folder"), progress=False)


@pytest.mark.parametrize("split, text, message", [
    ("unlabeled", "rgb,depth\nframes/3.png,frames/3_depth.png\nframes/4.png,\n",
     r"bad\.csv line 3: the unlabeled manifest needs a depth on every row \(rgb \+ depth rows"),
    ("labeled", "rgb,mask\nframes/0.png,\n", r"bad\.csv line 2: the labeled manifest needs a mask on every row"),
    ("test", "rgb,depth\nframes/6.png,frames/6_depth.png\n", r"bad\.csv line 2: the test manifest needs a mask"),
])
def test_rows_lacking_what_their_split_needs_are_named(files, split, text, message):
    (files / "bad.csv").write_text(text)
    with pytest.raises(MkeError, match=message):
        get_task("rgbd").prepare(config(files, f"data.manifests.{split}={files / 'bad.csv'}"), progress=False)


def test_settings_manifests_cannot_serve_are_refused_early(files):
    task = get_task("rgbd")
    with pytest.raises(MkeError, match=r"'MM student \(sup\)' needs a mask on every row of the unlabeled manifest"):
        task.prepare(config(files, "methods=[UM teacher, MM student (sup)]"), progress=False)
    with pytest.raises(MkeError, match=r"encoding=hha needs the camera intrinsics"):
        task.prepare(config(files, "preprocess.depth.encoding=hha"), progress=False)
    cfg = config(files, "data.class_names=[floor, wall]")      # the masks hold class 2
    with pytest.raises(MkeError, match=r"the labeled split has class ids \[2\] but the task has 2 classes"):
        get_task("rgbd").build_data(cfg)
