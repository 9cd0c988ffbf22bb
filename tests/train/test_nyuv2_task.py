"""The nyuv2 task on a tiny NYU Depth V2 written in the real formats, and raw depth registration."""
import json

import h5py
import numpy as np
import pytest
from scipy.io import savemat
from test_nyuv2 import mapclass, raw_name, write_labeled_mat, write_pgm, write_ppm

from mke.runtime.errors import MkeError
from mke.train import pipeline
from mke.train.config import resolve_config
from mke.train.datasets.nyuv2 import (CLASS_NAMES_40, DEPTH_INTRINSICS, DEPTH_TO_RGB_R, DEPTH_TO_RGB_T,
                                      RGB_INTRINSICS, raw_depth_to_metres, register_depth_to_rgb, reproject_depth,
                                      scaled_intrinsics)
from mke.train.tasks import get_task
from mke.train.tasks.nyuv2 import CLASS_COLORS_40, cache_dir

N, H, W = 6, 48, 64                       # a 640×480 Kinect frame at a tenth of the size
TRAIN, TEST = [1, 3, 5], [2, 4, 6]        # 1-based, as splits.mat holds them
SCENES = ["bedroom_0001", "kitchen_0002"] * 3
T0 = 1294886362.238178
RAW = {"bedrooms_part1/bedroom_0001": 4, "kitchens_part1/kitchen_0002a": 2}   # the kitchen is a test room
TINY = ["seeds=1", "workers=1", "model.encoder=tiny", "model.decoder_width=16", "model.pretrained=false",
        "data.unlabeled_every=1", "data.unlabeled_max=0", "preprocess.rgb.size=[48, 64]",
        "preprocess.depth.size=[48, 64]", "teacher.optim.epochs=1", "student.optim.epochs=1",
        "teacher.optim.batch_size=4", "student.optim.batch_size=4", "report.examples=2"]  # device: auto, the default


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def frames():
    """Upper half wall (NYU class 1), lower half otherprop (894); depth 1–2 m; colour says which."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([np.stack([np.where(y < H // 2, 200, 40), 4 * x, np.full_like(y, 30 * n)], -1)
                    for n in range(N)]).astype(np.uint8)
    depth = np.stack([(1.0 + y / H + 0.1 * n).astype(np.float32) for n in range(N)])
    labels = np.where(y < H // 2, 1, 894).astype(np.uint16)[None].repeat(N, 0)
    labels[:, :, 0] = 0                   # unlabeled → void
    return rgb, depth, labels


def add_scenes(path, names):
    """The labeled set's `scenes`: a MATLAB cell of char rows, stored as HDF5 object references."""
    with h5py.File(path, "a") as f:
        group = f.create_group("#refs#")
        refs = []
        for k, name in enumerate(names):
            d = group.create_dataset(f"s{k}", data=np.array([[ord(c)] for c in name], np.uint16))
            d.attrs["MATLAB_class"] = np.bytes_("char")
            refs.append(d.ref)
        cell = f.create_dataset("scenes", data=np.array([refs], dtype=h5py.ref_dtype))
        cell.attrs["MATLAB_class"] = np.bytes_("cell")


def write_nyu(root):
    rgb, depth, labels = frames()
    root.mkdir(parents=True, exist_ok=True)
    write_labeled_mat(root / "nyu_depth_v2_labeled.mat", rgb, depth, labels)
    add_scenes(root / "nyu_depth_v2_labeled.mat", SCENES)
    savemat(root / "splits.mat", {"trainNdxs": np.array(TRAIN, float)[:, None],
                                  "testNdxs": np.array(TEST, float)[:, None]})
    savemat(root / "classMapping40.mat", {"mapClass": mapclass()[None, :]})
    for scene, n in RAW.items():
        folder = root / "raw" / scene
        folder.mkdir(parents=True)
        for k in range(n):
            t = T0 + k / 30
            write_ppm(folder / raw_name("r", t + 0.004, 100 + k), rgb[0])
            write_pgm(folder / raw_name("d", t, 200 + k), np.full((H, W), 700 + 20 * k), "<")
    return root


@pytest.fixture(scope="module")
def nyu(tmp_path_factory):
    root = write_nyu(tmp_path_factory.mktemp("nyu") / "nyu")
    cfg = resolve_config("nyuv2", None, TINY + [f"data.root={root}", f"data.cache_dir={root.parent / 'cache'}"])
    return root, cfg


def test_the_task_is_registered_with_40_classes_and_no_supervised_bound():
    cfg = resolve_config("nyuv2", None, [])
    assert "MM student (sup)" not in cfg["methods"] and cfg["data"]["unlabeled_max"] == 1488
    task = get_task("nyuv2")
    assert task.class_names == CLASS_NAMES_40 and task.class_colors == CLASS_COLORS_40
    assert len(set(CLASS_COLORS_40)) == 40 and all(0 <= c <= 255 for rgb in CLASS_COLORS_40 for c in rgb)


def test_splits_follow_the_paper_and_are_cached(nyu):
    root, cfg = nyu
    task = get_task("nyuv2")
    task.prepare(cfg, progress=False)
    splits = task.load_frames(cfg)
    rgb, depth, labels = frames()
    lab, unl, test = splits["labeled"], splits["unlabeled"], splits["test"]
    assert (len(lab), len(unl), len(test)) == (3, 4, 3)           # the kitchen's raw frames are a test room's
    assert lab.depth_mm is None and unl.labels is None             # D_l: RGB + labels; D_u: RGB + depth
    np.testing.assert_array_equal(lab.rgb, rgb[[0, 2, 4]])
    np.testing.assert_array_equal(test.depth_mm, np.rint(depth[[1, 3, 5]].astype(float) * 1000).astype(np.uint16))
    assert set(np.unique(test.labels)) == {0, 39, 255}             # wall, otherprop, void
    assert unl.depth_mm.dtype == np.uint16 and unl.depth_mm[0, 0].max() == 0   # registration leaves a border
    centre = unl.depth_mm[:, H // 2, W // 2].astype(float) / 1000
    np.testing.assert_allclose(centre, raw_depth_to_metres(np.array([700, 720, 740, 760])), atol=0.01)
    np.testing.assert_allclose(test.intrinsics[0].row, scaled_intrinsics(RGB_INTRINSICS, (H, W)), rtol=1e-6)
    folder = cache_dir(cfg)
    stamp = (folder / "unlabeled.npz").stat().st_mtime_ns
    task.prepare(cfg, progress=False)
    assert (folder / "unlabeled.npz").stat().st_mtime_ns == stamp  # read from the cache, not built again
    assert json.loads((folder / "data.json").read_text())["test_scenes_excluded"] == ["kitchen_0002"]


def test_raw_frames_can_be_capped_or_include_test_rooms(nyu):
    root, cfg = nyu
    for overrides, n in ((["data.unlabeled_max=3"], 3), (["data.exclude_test_scenes=false"], 6),
                         (["data.unlabeled_every=2"], 2)):
        c = resolve_config("nyuv2", None, TINY + [f"data.root={root}", f"data.cache_dir={root.parent / 'cache'}",
                                                  *overrides])
        task = get_task("nyuv2")
        task.prepare(c, progress=False)
        assert len(task.load_frames(c)["unlabeled"]) == n, overrides


def test_test_depth_may_be_the_raw_registered_depth(nyu):
    root, cfg = nyu
    c = resolve_config("nyuv2", None, TINY + [f"data.root={root}", f"data.cache_dir={root.parent / 'cache'}",
                                              "data.test_depth=rawDepths"])
    task = get_task("nyuv2")
    task.prepare(c, progress=False)
    with h5py.File(root / "nyu_depth_v2_labeled.mat") as f:
        raw = f["rawDepths"][1].T
    expected = np.rint(raw.astype(float) * 1000).astype(np.uint16)
    np.testing.assert_array_equal(task.load_frames(c)["test"].depth_mm[0], expected)


def test_pipeline_runs_end_to_end(nyu, tmp_path):
    _, cfg = nyu
    metrics = pipeline.run_mke(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["metric"] == metrics["metric"] == "miou"
    methods = {r["method"] for r in saved["results"]}
    assert methods == {"UM teacher", "UM student", "NOISY student", "MM student (no reg)", "MM student"}
    teacher = next(r for r in saved["results"] if r["method"] == "UM teacher")
    assert set(teacher["per_class_iou"]) == set(CLASS_NAMES_40)
    assert (tmp_path / "run" / "figures" / "examples.png").is_file()


def test_missing_root_or_files_are_named(tmp_path):
    def cfg(*extra):
        return resolve_config("nyuv2", None, TINY + [f"data.cache_dir={tmp_path / 'cache'}", *extra])

    task = get_task("nyuv2")
    with pytest.raises(MkeError, match=r"data.root is not set.*nyu_depth_v2_labeled.mat.*splits.mat.*"
                                       r"classMapping40.mat.*raw/"):
        task.prepare(cfg(), progress=False)
    with pytest.raises(MkeError, match=r"data.root .*nowhere is not a folder"):
        task.prepare(cfg(f"data.root={tmp_path / 'nowhere'}"), progress=False)
    root = write_nyu(tmp_path / "nyu")
    (root / "splits.mat").unlink()
    with pytest.raises(MkeError, match=r"files missing: .*splits\.mat \(data\.splits\); data.root must hold"):
        task.prepare(cfg(f"data.root={root}"), progress=False)
    with pytest.raises(MkeError, match=r"files missing: .*elsewhere \(data\.raw\)"):
        task.prepare(cfg(f"data.root={root}", "data.splits=../nyu/classMapping40.mat", "data.raw=elsewhere"),
                     progress=False)
    with pytest.raises(MkeError, match=r"'MM student \(sup\)' needs labels on the unlabeled frames"):
        task.prepare(cfg(f"data.root={root}", "methods=[UM teacher, MM student (sup)]"), progress=False)


# ---------------------------------------------------------------------------------------------
# registration of raw depth to the colour camera


def toolbox_pixel(u, v, z):
    """Where the NYU toolbox puts depth pixel (u, v) (0-based, 640×480) at z metres: its own formulas,
    1-based pixels, R = inv(reshape(-r, 3, 3)') and T = [t_x; t_z; t_y] of camera_params.m."""
    r = -np.array([9.9997798940829263e-01, 5.0518419386157446e-03, 4.3011152014118693e-03,
                   -5.0359919480810989e-03, 9.9998051861143999e-01, -3.6879781309514218e-03,
                   -4.3196624923060242e-03, 3.6662365748484798e-03, 9.9998394948385538e-01])
    rot = np.linalg.inv(r.reshape(3, 3, order="F").T)
    t_x, t_z, t_y = 2.5031875059141302e-02, -2.9342312935846411e-04, 6.6238747008330102e-04
    fx_d, fy_d, cx_d, cy_d = DEPTH_INTRINSICS
    fx, fy, cx, cy = RGB_INTRINSICS
    p = rot @ np.array([(u + 1 - cx_d) * z / fx_d, (v + 1 - cy_d) * z / fy_d, z]) + np.array([t_x, t_z, t_y])
    return int(np.rint(p[0] * fx / p[2] + cx)) - 1, int(np.rint(p[1] * fy / p[2] + cy)) - 1


def test_registration_puts_points_where_the_toolbox_does():
    depth = np.zeros((480, 640), np.float32)
    points = [(100, 50, 0.8), (320, 240, 2.0), (600, 400, 4.5), (20, 460, 1.2)]
    for u, v, z in points:
        depth[v, u] = z
    out = register_depth_to_rgb(depth)
    assert np.count_nonzero(out) == len(points)
    for u, v, z in points:
        col, row = toolbox_pixel(u, v, z)
        assert out[row, col] == pytest.approx(z, abs=0.01), (u, v)


def test_a_constant_depth_stays_constant_with_a_shifted_valid_region():
    out = register_depth_to_rgb(np.full((H, W), 2.0, np.float32))
    valid = out > 0
    np.testing.assert_allclose(out[valid], 2.0, atol=0.01)
    rows, cols = np.nonzero(valid)
    # the colour camera sees more (shorter focal length): the depth camera's view is an inner region,
    # shifted by the 2.5 cm baseline; inside it every pixel is hit
    assert rows.min() >= 3 and cols.min() >= 3 and cols.max() <= W - 3
    assert H - 1 - rows.max() < rows.min()           # not centred: shifted towards the bottom
    assert valid[rows.min() + 1:rows.max(), cols.min() + 1:cols.max()].all()


def test_a_plane_facing_the_colour_camera_registers_flat():
    fx, fy, cx, cy = scaled_intrinsics(DEPTH_INTRINSICS, (480, 640))
    v, u = np.mgrid[0:480, 0:640]
    ray = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u, float)])
    s = (2.5 - DEPTH_TO_RGB_T[2]) / np.tensordot(DEPTH_TO_RGB_R[2], ray, axes=1)   # z_rgb = 2.5 m
    out = register_depth_to_rgb(s.astype(np.float32))
    np.testing.assert_allclose(out[out > 0], 2.5, atol=1e-4)


def test_near_surfaces_hide_far_ones_and_leave_a_shadow():
    depth = np.full((480, 640), 3.0, np.float32)
    depth[200:280, 300:380] = 1.0                  # a box 2 m in front of the wall
    out = register_depth_to_rgb(depth)
    near = np.abs(out - 1.0) < 0.01
    rows, cols = np.nonzero(near)
    box = out[rows.min() + 1:rows.max(), cols.min() + 1:cols.max()]  # inside its (slightly rotated) outline
    assert np.abs(box - 1.0).max() < 0.01           # z-buffer: no wall point shows through the box
    assert 0.85 < near.sum() / (80 * 80 * (RGB_INTRINSICS[0] / DEPTH_INTRINSICS[0]) ** 2) < 1.15
    # the box moves more than the wall (parallax): the wall behind it, unseen by the depth camera, is a hole
    shadow = out[240, cols.max() + 1:cols.max() + 6]
    assert (shadow == 0).all()


def test_registering_there_and_back_returns_the_depth():
    v, u = np.mgrid[0:480, 0:640]
    depth = (1.5 + 0.002 * u + 0.001 * v).astype(np.float32)        # a slanted plane
    there = register_depth_to_rgb(depth)
    k_d, k_rgb = scaled_intrinsics(DEPTH_INTRINSICS, depth.shape), scaled_intrinsics(RGB_INTRINSICS, depth.shape)
    back = reproject_depth(there, k_rgb, k_d, DEPTH_TO_RGB_R.T, -DEPTH_TO_RGB_R.T @ DEPTH_TO_RGB_T)
    both = (back > 0) & (depth > 0)
    assert both.mean() > 0.6
    np.testing.assert_allclose(back[both], depth[both], atol=0.005)


# sha256 (first 16 hex digits) of each cached array of the `nyu` fixture's splits as the cache before
# issue 16 held them (built in memory, np.savez_compressed), measured on this project's CPU machine on 2026-12-02.
BEFORE = {"labeled/rgb": "9fdecca264961e21", "labeled/labels": "eaf1b33a2bc65624",
          "unlabeled/rgb": "0039a57952efdd16", "unlabeled/depth_mm": "4e126c9c27545561",
          "test/rgb": "45efed30fba89af7", "test/depth_mm": "42665bc4d7c7c8cd", "test/labels": "eaf1b33a2bc65624"}


def test_the_cache_is_written_uncompressed_and_read_memory_mapped_with_the_values_of_before(nyu):
    import hashlib
    import zipfile

    root, cfg = nyu
    task = get_task("nyuv2")
    task.prepare(cfg, progress=False)
    folder = cache_dir(cfg)
    assert sorted(p.name for p in folder.iterdir()) == ["data.json", "labeled.npz", "test.npz", "unlabeled.npz"]
    for split in ("labeled", "unlabeled", "test"):
        with zipfile.ZipFile(folder / f"{split}.npz") as zf:
            assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    digests = {}
    for split, frames in task.load_frames(cfg).items():
        for field in ("rgb", "depth_mm", "labels"):
            array = getattr(frames, field)
            if array is not None:
                assert isinstance(array, np.memmap), (split, field)
                digests[f"{split}/{field}"] = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
    assert digests == BEFORE
