"""NYU Depth V2 readers, on tiny files written in the dataset's real formats."""
import json
import subprocess
import sys
import textwrap

import cv2
import h5py
import numpy as np
import pytest
from scipy.io import savemat

from mke.runtime.errors import MkeError
from mke.train.datasets.nyuv2 import (CLASS_NAMES_40, VOID, NYUv2Labeled, NYUv2Raw, load_class_mapping,
                                      load_raw_pair, raw_depth_to_metres, raw_pairs, read_raw_depth)

N, H, W = 4, 6, 8   # not square, so a transposed frame cannot pass for an upright one


def upright_frames():
    """Frames whose pixels tell where they are: red = 10*row, green = 10*column, blue = frame."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([np.stack([10 * y, 10 * x, np.full_like(y, n)], axis=-1) for n in range(N)]).astype(np.uint8)
    depth = np.stack([(1.0 + 0.1 * y + 0.01 * x + n).astype(np.float32) for n in range(N)])
    labels = np.zeros((N, H, W), np.uint16)
    labels[:, 0, :] = 1        # top row: class 1
    labels[:, :, -1] = 894     # right column: the last class
    labels[:, -1, 0] = 2       # bottom-left pixel: class 2; the rest stays 0 = unlabeled
    return rgb, depth, labels


def write_labeled_mat(path, rgb, depth, labels, *, skip=()):
    """nyu_depth_v2_labeled.mat as MATLAB -v7.3 writes it: HDF5 after a 512-byte header, axes reversed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr, cls in (("images", rgb.transpose(0, 3, 2, 1), "uint8"),     # (N, 3, W, H)
                               ("depths", depth.transpose(0, 2, 1), "single"),      # (N, W, H)
                               ("rawDepths", depth.transpose(0, 2, 1), "single"),
                               ("labels", labels.transpose(0, 2, 1), "uint16")):
            if name not in skip:
                f.create_dataset(name, data=arr).attrs["MATLAB_class"] = np.bytes_(cls)
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 17 12:00:00 2011 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:   # 116 bytes of text, 8 of subsystem offset, version 0x0200, "IM"
        f.write(text.ljust(116) + b"\0" * 8 + b"\x00\x02IM")


def mapclass():
    """classMapping40's mapClass: class 1 → 1 (wall), 2 → 0 (void), 894 → 40 (otherprop), rest → 39."""
    values = np.full(894, 39.0)
    values[0], values[1], values[893] = 1, 0, 40
    return values


@pytest.fixture
def nyu(tmp_path):
    rgb, depth, labels = upright_frames()
    write_labeled_mat(tmp_path / "nyu_depth_v2_labeled.mat", rgb, depth, labels)
    savemat(tmp_path / "splits.mat", {"trainNdxs": np.array([[1.0], [3.0]]), "testNdxs": np.array([[2.0], [4.0]])})
    names = np.empty((1, 40), dtype=object)
    names[0, :] = CLASS_NAMES_40
    savemat(tmp_path / "classMapping40.mat", {"mapClass": mapclass()[None, :], "className": names})
    return tmp_path, rgb, depth, labels


def test_labeled_frames_come_back_upright(nyu):
    root, rgb, depth, _ = nyu
    with NYUv2Labeled(root / "nyu_depth_v2_labeled.mat") as ds:
        assert len(ds) == N and ds.image_size == (H, W)
        for i in range(N):
            s = ds[i]
            assert s.rgb.dtype == np.uint8 and s.rgb.shape == (H, W, 3)
            np.testing.assert_array_equal(s.rgb, rgb[i])
            assert s.depth_m.dtype == np.float32
            np.testing.assert_array_equal(s.depth_m, depth[i])
            assert s.labels is None                       # no mapping given
        assert ds[0].rgb[H - 1, 0, 0] == 10 * (H - 1) and ds[0].rgb[0, W - 1, 1] == 10 * (W - 1)
        assert ds.labels_894(0)[0, 0] == 1 and ds.labels_894(0)[H - 1, 0] == 2


def test_labels_map_to_40_classes_with_unlabeled_as_void(nyu):
    root, *_ = nyu
    ds = NYUv2Labeled(root / "nyu_depth_v2_labeled.mat", mapping=root / "classMapping40.mat")
    labels = ds[2].labels
    assert labels.dtype == np.uint8 and labels.shape == (H, W)
    assert labels[0, 0] == 0 and CLASS_NAMES_40[0] == "wall"            # class 1 → wall
    assert labels[0, W - 1] == 39 and CLASS_NAMES_40[39] == "otherprop"  # class 894 → otherprop
    assert labels[H - 1, 0] == VOID == 255                              # mapped to 0 → void
    assert labels[2, 3] == VOID                                         # unlabeled 0 → void
    assert set(np.unique(labels)) == {0, 39, 255}


def test_mapping_may_be_given_as_npy_json_or_values(nyu):
    root, *_ = nyu
    np.save(root / "map.npy", mapclass().astype(np.int64))
    (root / "map.json").write_text(json.dumps({"mapClass": mapclass().astype(int).tolist()}))
    (root / "list.json").write_text(json.dumps(mapclass().astype(int).tolist()))
    expected = load_class_mapping(root / "classMapping40.mat")
    for source in (root / "map.npy", root / "map.json", root / "list.json", mapclass().tolist()):
        np.testing.assert_array_equal(load_class_mapping(source), expected)
    assert expected[0] == VOID and expected[1] == 0 and expected[894] == 39


def test_split_indices_are_zero_based(nyu):
    root, rgb, *_ = nyu
    ds = NYUv2Labeled(root / "nyu_depth_v2_labeled.mat", splits_path=root / "splits.mat")
    np.testing.assert_array_equal(ds.split_indices("train"), [0, 2])
    np.testing.assert_array_equal(ds.split_indices("test"), [1, 3])
    np.testing.assert_array_equal(ds[ds.split_indices("test")[1]].rgb, rgb[3])


def test_labeled_errors_name_the_file(nyu):
    root, rgb, depth, labels = nyu
    with pytest.raises(MkeError, match="missing.mat does not exist"):
        NYUv2Labeled(root / "missing.mat")
    savemat(root / "v5.mat", {"images": np.zeros((2, 2))})
    with pytest.raises(MkeError, match=r"v5\.mat is not a MATLAB v7\.3 \(HDF5\)"):
        NYUv2Labeled(root / "v5.mat")
    write_labeled_mat(root / "noimages.mat", rgb, depth, labels, skip=("images",))
    with pytest.raises(MkeError, match=r"noimages\.mat has no dataset 'images'"):
        NYUv2Labeled(root / "noimages.mat")
    with h5py.File(root / "badshape.mat", "w") as f:
        f["images"] = rgb.transpose(0, 3, 2, 1)
        f["depths"] = depth                     # (N, H, W): not reversed like images
    with pytest.raises(MkeError, match=r"badshape\.mat: 'depths' has shape \(4, 6, 8\); expected \(4, 8, 6\)"):
        NYUv2Labeled(root / "badshape.mat")
    savemat(root / "badsplits.mat", {"trainNdxs": np.array([[0.0], [1.0]]), "testNdxs": np.array([[2.0]])})
    with pytest.raises(MkeError, match=r"badsplits\.mat: trainNdxs holds 0; expected 1-based indices in 1\.\.4"):
        NYUv2Labeled(root / "nyu_depth_v2_labeled.mat", splits_path=root / "badsplits.mat")
    savemat(root / "bigsplits.mat", {"trainNdxs": np.array([[1.0]]), "testNdxs": np.array([[5.0]])})
    with pytest.raises(MkeError, match=r"bigsplits\.mat: testNdxs holds 5"):
        NYUv2Labeled(root / "nyu_depth_v2_labeled.mat", splits_path=root / "bigsplits.mat")
    savemat(root / "short.mat", {"mapClass": np.ones((1, 40))})
    with pytest.raises(MkeError, match=r"short\.mat has 40 entries; expected 894"):
        NYUv2Labeled(root / "nyu_depth_v2_labeled.mat", mapping=root / "short.mat")
    savemat(root / "nomap.mat", {"className": np.ones((1, 40))})
    with pytest.raises(MkeError, match=r"nomap\.mat has no variable 'mapClass'"):
        load_class_mapping(root / "nomap.mat")
    with pytest.raises(MkeError, match="expected integers in 0..40"):
        load_class_mapping(np.full(894, 41))


# ---------------------------------------------------------------------------------------------
# raw sequences

T0 = 1294439283.377657


def write_ppm(path, rgb):
    """A binary PPM (P6) as the Kinect dump writes it: RGB byte order."""
    h, w, _ = rgb.shape
    path.write_bytes(b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(rgb, np.uint8).tobytes())


def write_pgm(path, raw, byteorder):
    """A 16-bit binary PGM (P5, maxval 65535); the pixel bytes in the order asked for."""
    h, w = raw.shape
    path.write_bytes(b"P5\n%d %d\n65535\n" % (w, h) + raw.astype(byteorder + "u2").tobytes())


def raw_name(kind, t, n):
    return f"{kind}-{t:.6f}-{n}.{'ppm' if kind == 'r' else 'pgm'}"


def write_scene(folder, rgb_times, depth_times, *, byteorder="<"):
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:H, 0:W]
    for k, t in enumerate(rgb_times):
        write_ppm(folder / raw_name("r", t, 2381571548 + k), np.stack([10 * y, 10 * x, np.full_like(y, k)], -1))
    for k, t in enumerate(depth_times):
        write_pgm(folder / raw_name("d", t, 2381571000 + k), np.full((H, W), 600 + 100 * k), byteorder)
    (folder / f"a-{T0:.6f}-2381570000.dump").write_bytes(b"\0" * 16)   # accelerometer, ignored
    (folder / "INDEX.txt").write_text("ignored\n")


def test_each_depth_frame_pairs_with_the_nearest_colour_frame(tmp_path):
    scene = tmp_path / "bedrooms_part1" / "bedroom_0001"
    write_scene(scene, rgb_times=[T0 + 0.010, T0 + 0.040, T0 + 0.070],
                depth_times=[T0 + 0.000, T0 + 0.033, T0 + 0.069, T0 + 0.500])   # the last: no colour near
    pairs = raw_pairs(tmp_path)
    got = [(r.name, d.name) for r, d in pairs]
    assert got == [(raw_name("r", T0 + 0.010, 2381571548), raw_name("d", T0 + 0.000, 2381571000)),
                   (raw_name("r", T0 + 0.040, 2381571549), raw_name("d", T0 + 0.033, 2381571001)),
                   (raw_name("r", T0 + 0.070, 2381571550), raw_name("d", T0 + 0.069, 2381571002))]
    assert len(raw_pairs(tmp_path, max_time_diff_s=1.0)) == 4
    assert [d.name for _, d in raw_pairs(scene, every=2)] == [got[0][1], got[2][1]]


def test_scenes_are_found_recursively_and_every_applies_per_scene(tmp_path):
    write_scene(tmp_path / "part1" / "kitchen_0001", [T0, T0 + 0.03, T0 + 0.06], [T0, T0 + 0.03, T0 + 0.06])
    write_scene(tmp_path / "part2" / "office_0001", [T0 + 9, T0 + 9.03], [T0 + 9, T0 + 9.03])
    pairs = raw_pairs(tmp_path, every=2)
    assert [p[1].parent.name for p in pairs] == ["kitchen_0001", "kitchen_0001", "office_0001"]
    ds = NYUv2Raw(tmp_path, every=2)
    s = ds[2]
    assert len(ds) == 3 and s.labels is None and s.rgb.shape == (H, W, 3)


def test_raw_pair_loads_upright_rgb_and_depth_in_metres(tmp_path):
    write_scene(tmp_path / "bedroom_0001", [T0], [T0])
    rgb, depth = load_raw_pair(*raw_pairs(tmp_path)[0])
    y, x = np.mgrid[0:H, 0:W]
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(rgb[..., 0], 10 * y)    # red first: RGB, not OpenCV's BGR
    np.testing.assert_array_equal(rgb[..., 1], 10 * x)
    assert depth.dtype == np.float32 and depth.shape == (H, W)
    np.testing.assert_allclose(depth, 351.3 / (1092.5 - 600), rtol=1e-6)


def test_raw_depth_formula_and_invalid_values():
    raw = np.array([[600, 1000, 1057, 1058, 1092, 1093, 2047]], np.uint16)
    depth = raw_depth_to_metres(raw)
    assert depth.dtype == np.float32
    np.testing.assert_allclose(depth[0, :3], [351.3 / 492.5, 351.3 / 92.5, 351.3 / 35.5], rtol=1e-6)
    assert depth[0, 2] < 10 and np.all(depth[0, 3:] == 0)     # > 10 m, huge, negative, no reading → 0


def test_pgm_byte_order(tmp_path):
    raw = np.array([[600, 700, 1000], [2047, 0, 1050]], np.uint16)
    write_pgm(tmp_path / "big.pgm", raw, ">")         # the PGM standard
    write_pgm(tmp_path / "little.pgm", raw, "<")      # NYU's files: the toolbox swapbytes after imread
    # OpenCV follows the standard: big-endian bytes come back as written, little-endian ones swapped
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "big.pgm"), cv2.IMREAD_UNCHANGED), raw)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "little.pgm"), cv2.IMREAD_UNCHANGED), raw.byteswap())
    for name in ("big.pgm", "little.pgm"):
        np.testing.assert_array_equal(read_raw_depth(tmp_path / name), raw)     # auto: the 11-bit reading
    np.testing.assert_array_equal(read_raw_depth(tmp_path / "little.pgm", "little"), raw)
    np.testing.assert_array_equal(read_raw_depth(tmp_path / "big.pgm", "big"), raw)
    np.testing.assert_array_equal(read_raw_depth(tmp_path / "big.pgm", "little"), raw.byteswap())


def test_raw_errors_name_the_file_or_folder(tmp_path):
    with pytest.raises(MkeError, match="nowhere does not exist"):
        raw_pairs(tmp_path / "nowhere")
    write_scene(tmp_path / "rgb_only", [T0, T0 + 0.03], [])
    with pytest.raises(MkeError, match=r"rgb_only has no synchronised frame pairs: found 2 r-.*and 0 d-"):
        raw_pairs(tmp_path / "rgb_only")
    write_pgm(tmp_path / "noise.pgm", np.full((H, W), 0xFFF0), ">")
    with pytest.raises(MkeError, match=r"noise\.pgm holds values above 2047"):
        read_raw_depth(tmp_path / "noise.pgm")
    cv2.imwrite(str(tmp_path / "eight.pgm"), np.zeros((H, W), np.uint8))
    with pytest.raises(MkeError, match=r"eight\.pgm is uint8 .*expected a 16-bit"):
        read_raw_depth(tmp_path / "eight.pgm")
    write_pgm(tmp_path / "small.pgm", np.full((H - 1, W), 700), "<")
    write_ppm(tmp_path / "frame.ppm", np.zeros((H, W, 3), np.uint8))
    with pytest.raises(MkeError, match=r"small\.pgm is 8x5; expected the size of .*frame\.ppm, 8x6"):
        load_raw_pair(tmp_path / "frame.ppm", tmp_path / "small.pgm")


def test_readers_import_without_torch():
    script = textwrap.dedent("""
        import sys
        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")
        sys.meta_path.insert(0, NoTorch())
        import mke.train.datasets.nyuv2, mke.train.datasets.manifest
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
