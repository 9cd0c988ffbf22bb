"""Manifests of users' own data: CSV and JSONL rows of rgb / depth / mask files, or recordings."""
import json
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.train.datasets.manifest import Manifest

H, W = 5, 7


def rgb_image(k=0):
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([30 * y, 20 * x, np.full_like(y, k)], axis=-1).astype(np.uint8)


def depth_mm_image(k=0):
    y, x = np.mgrid[0:H, 0:W]
    depth = (500 + 100 * y + 10 * x + k).astype(np.uint16)
    depth[0, 0] = 0                                   # a hole: invalid
    return depth


def mask_image():
    mask = np.zeros((H, W), np.uint8)
    mask[:, 3:] = 2
    mask[0, :] = 255                                  # void
    return mask


@pytest.fixture
def data(tmp_path):
    """Two samples: lossless rgb PNGs, 16-bit PNG depth in mm, a .npy depth in metres, one mask."""
    (tmp_path / "frames").mkdir()
    (tmp_path / "labels").mkdir()
    for k in range(2):
        cv2.imwrite(str(tmp_path / "frames" / f"{k}.png"), cv2.cvtColor(rgb_image(k), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(tmp_path / "frames" / f"{k}_depth.png"), depth_mm_image(k))
    depth_m = depth_mm_image(1).astype(np.float32) / 1000
    depth_m[1, 1] = np.nan
    np.save(tmp_path / "frames" / "1_depth.npy", depth_m)
    cv2.imwrite(str(tmp_path / "labels" / "0.png"), mask_image())
    return tmp_path


def write(path, text):
    path.write_text(text)
    return path


def test_csv_rows_give_rgb_depth_in_metres_and_masks(data):
    m = Manifest.read(write(data / "train.csv", "rgb,depth,mask\n"
                                                "frames/0.png,frames/0_depth.png,labels/0.png\n"
                                                "\n"
                                                "frames/1.png,frames/1_depth.png,\n"))
    assert len(m) == 2 and not m.has_masks and m.has_depth
    rgb, depth, mask = m[0]
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(rgb, rgb_image(0))              # RGB order, upright
    assert depth.dtype == np.float32
    np.testing.assert_allclose(depth, depth_mm_image(0) / 1000.0, rtol=1e-6)
    assert depth[0, 0] == 0                                         # 0 mm stays invalid
    np.testing.assert_array_equal(mask, mask_image())
    assert m[1].labels is None
    assert [s.rgb[0, 0, 2] for s in m] == [0, 1]


def test_jsonl_rows_with_npy_depth_and_rgb_only_rows(data):
    lines = [{"rgb": "frames/1.png", "depth": "frames/1_depth.npy"},
             {"rgb": str(data / "frames" / "0.png"), "mask": "labels/0.png"}]   # absolute path, no depth
    m = Manifest.read(write(data / "d.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n"))
    assert len(m) == 2 and not m.has_depth and not m.has_masks
    depth = m[0].depth_m
    expected = depth_mm_image(1) / 1000.0
    expected[1, 1] = 0                                              # NaN → 0 = invalid
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    assert m[1].depth_m is None and m[1].labels is not None


def test_has_masks_when_every_row_has_one(data):
    m = Manifest.read(write(data / "l.csv", "rgb,mask\nframes/0.png,labels/0.png\n"))
    assert m.has_masks and not m.has_depth


@pytest.mark.parametrize("name, text, message", [
    ("norgb.csv", "rgb,depth\nframes/0.png,frames/0_depth.png\n,frames/1_depth.png\n",
     r"norgb\.csv line 3: no rgb path"),
    ("norgb.jsonl", '{"rgb": "frames/0.png"}\n{"depth": "frames/0_depth.png"}\n',
     r"norgb\.jsonl line 2: no rgb path"),
    ("missing.csv", "rgb,depth,mask\nframes/0.png,frames/0_depth.png,\nframes/9.png,,\n",
     r"missing\.csv line 3: rgb file .*frames/9\.png does not exist"),
    ("missing.jsonl", '{"rgb": "frames/0.png", "mask": "labels/nope.png"}\n',
     r"missing\.jsonl line 1: mask file .*labels/nope\.png does not exist"),
    ("column.csv", "rgb,dpeth\nframes/0.png,frames/0_depth.png\n",
     r"column\.csv line 1: unknown column 'dpeth' \(did you mean 'depth'\?\)"),
    ("column.jsonl", '{"rgb": "frames/0.png", "label": "labels/0.png"}\n',
     r"column\.jsonl line 1: unknown column 'label'"),
    ("extra.csv", "rgb,depth\nframes/0.png,frames/0_depth.png,labels/0.png\n",
     r"extra\.csv line 2: 3 fields but the header names 2"),
    ("json.jsonl", '{"rgb": "frames/0.png"\n', r"json\.jsonl line 1: not valid JSON"),
    ("mixed.jsonl", '{"recording": "frames/0.png", "rgb": "frames/0.png"}\n',
     r"mixed\.jsonl line 1: a recording row takes no rgb"),
    ("empty.csv", "rgb,depth\n", r"empty\.csv lists no samples"),
    ("manifest.txt", "rgb\nframes/0.png\n", r"manifest\.txt: expected a \.csv .* or a \.jsonl"),
])
def test_manifest_errors_name_the_line_and_file(data, name, text, message):
    with pytest.raises(MkeError, match=message):
        Manifest.read(write(data / name, text))


def test_file_errors_name_the_file_and_what_was_expected(data):
    cv2.imwrite(str(data / "frames" / "eight.png"), np.zeros((H, W), np.uint8))
    cv2.imwrite(str(data / "frames" / "small.png"), np.zeros((H, W - 1), np.uint16))
    cv2.imwrite(str(data / "labels" / "colour.png"), np.zeros((H, W, 3), np.uint8))
    np.save(data / "frames" / "mm.npy", depth_mm_image())
    cases = [("rgb,depth\nframes/0.png,frames/eight.png\n",
              r"line 2: depth file .*eight\.png is uint8 with 1 channel\(s\); expected a 16-bit single-channel"),
             ("rgb,depth\nframes/0.png,frames/small.png\n",
              r"line 2: depth file .*small\.png is 6x5 \(WxH\); expected the size of its rgb image, 7x5"),
             ("rgb,mask\nframes/0.png,labels/colour.png\n",
              r"line 2: mask file .*colour\.png is uint8 with 3 channel\(s\); expected an 8-bit single-channel"),
             ("rgb,depth\nframes/0.png,frames/mm.npy\n",
              r"line 2: depth file .*mm\.npy holds uint16 .*expected a 2-D float array of depth in metres")]
    for k, (text, message) in enumerate(cases):
        m = Manifest.read(write(data / f"bad{k}.csv", text))       # files exist: found when read
        with pytest.raises(MkeError, match=rf"bad{k}\.csv {message}"):
            m[0]
    write(data / "frames" / "0_depth.jpeg", "x")
    with pytest.raises(MkeError, match=r"jpg\.csv line 2: depth file .*0_depth\.jpeg: expected a 16-bit \.png"):
        Manifest.read(write(data / "jpg.csv", "rgb,depth\nframes/0.png,frames/0_depth.jpeg\n"))


def test_recording_rows_need_a_whole_every(data):
    (data / "robot.db3").write_bytes(b"\0")
    with pytest.raises(MkeError, match=r"e\.jsonl line 1: every must be a whole number >= 1"):
        Manifest.read(write(data / "e.jsonl", '{"recording": "robot.db3", "every": 0}\n'))


class Frame(NamedTuple):
    rgb: np.ndarray
    depth_mm: np.ndarray


def test_recording_rows_become_samples(data):
    pytest.importorskip("pyrealsense2", reason="pyrealsense2 is not installed (pip install pyrealsense2)")
    from mke.runtime.sensors import realsense_recording as rec

    frames = [Frame(rgb_image(k), depth_mm_image(k)) for k in range(5)]
    rec.write_recording(data / "robot.db3", frames,
                        color_intrinsics={"width": W, "height": H, "fx": 6.0, "fy": 6.0,
                                          "cx": W / 2, "cy": H / 2})
    path = write(data / "r.jsonl", '{"recording": "robot.db3", "every": 2}\n'
                                   '{"rgb": "frames/0.png", "depth": "frames/0_depth.png"}\n')
    m = Manifest.read(path, cache_dir=data / "cache")
    assert len(m) == 4 and m.has_depth and not m.has_masks         # frames 0, 2, 4 and the file row
    for i, k in enumerate((0, 2, 4)):
        rgb, depth, mask = m[i]
        np.testing.assert_array_equal(rgb, rgb_image(k))
        assert depth.dtype == np.float32 and mask is None
        np.testing.assert_array_equal(np.round(depth * 1000), depth_mm_image(k))   # aligned, same lens
    assert len(Manifest.read(path, cache_dir=data / "cache")) == 4  # second read reuses the cache


def test_image_sizes_come_from_headers_as_decoding_gives_them(data):
    from mke.train.datasets.manifest import READERS, image_size

    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3)).astype(np.uint8)
    files = {"c.png": ("rgb", img), "g.png": ("rgb", img[:, :, 0]), "d.png": ("depth", img[:, :, 0].astype(np.uint16)),
             "c.jpg": ("rgb", img), "d.tif": ("depth", img[:, :, 0].astype(np.uint16))}
    for name, (column, array) in files.items():
        cv2.imwrite(str(data / name), array)
    cv2.imwrite(str(data / "p.jpg"), img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    files["p.jpg"] = ("rgb", img)
    np.save(data / "d.npy", np.ones((37, 53), np.float32))
    files["d.npy"] = ("depth", None)
    for name, (column, _) in files.items():
        assert image_size(data / name, column) == READERS[column](data / name).shape[:2] == (37, 53), name
    (data / "not.png").write_bytes(b"\x89PNG\r\n")                 # no header to read: the reader says why
    with pytest.raises(MkeError, match=r"rgb file .*not\.png could not be read as an image"):
        image_size(data / "not.png", "rgb")
