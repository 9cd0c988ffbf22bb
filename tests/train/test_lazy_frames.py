"""Frames read when indexed (`FrameArray`): a manifest split larger than `loader.in_memory_mb` is lazy
from the files up — its FrameSet fields read a sample's files only when a row is asked, its inputs
are LazyInputs — and gives, to the last bit, the frames and tensors of reading everything into memory."""
import pickle

import numpy as np
import pytest
import torch
from test_rgbd_manifest import H, W, config, scene, write_data, write_sample

from mke.runtime.depth_units import metres_to_millimetres
from mke.runtime.errors import MkeError
from mke.runtime.preprocess import resize_image
from mke.train.config import apply_overrides
from mke.train.data import LazyInputs
from mke.train.datasets.frame_arrays import FrameArray
from mke.train.datasets.manifest import Manifest
from mke.train.tasks import get_task
from mke.train.tasks.rgbd import manifest_frames, read_manifests

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Ramp:
    """Frame i: a (2, 3) int16 ramp plus i; counts its reads."""

    def __init__(self):
        self.reads = []

    def __call__(self, i):
        self.reads.append(i)
        return (np.arange(6, dtype=np.int16).reshape(2, 3) + i).astype(np.int16)


def test_a_frame_array_reads_only_the_frames_indexed():
    ramp = Ramp()
    a = FrameArray(ramp, 5, (2, 3), np.int16, name="ramps")
    full = np.stack([np.arange(6, dtype=np.int16).reshape(2, 3) + i for i in range(5)])
    assert (a.shape, a.ndim, len(a), a.dtype) == ((5, 2, 3), 3, 5, np.int16) and ramp.reads == []
    np.testing.assert_array_equal(a[3], full[3])
    assert ramp.reads == [3]
    for index in (-1, slice(1, 4), slice(None, None, -2), [4, 0, 4], np.array([2, 1]), torch.tensor([0, 3]),
                  np.array([True, False, True, False, True]), (slice(1, 3), 1), (2, 0), np.array([], np.int64)):
        got = a[index]
        assert isinstance(got, np.ndarray) and got.dtype == np.int16
        np.testing.assert_array_equal(got, full[index.numpy() if isinstance(index, torch.Tensor) else index])
    np.testing.assert_array_equal(np.ascontiguousarray(a), full)
    np.testing.assert_array_equal(np.stack(list(a)), full)
    with pytest.raises(IndexError):
        a[5]
    bad = FrameArray(ramp, 5, (3, 2), np.int16, name="ramps")
    with pytest.raises(MkeError, match=r"ramps: frame 1 was read as int16 \(2, 3\), but the split's frames are "
                                       r"int16 \(3, 2\)"):
        bad[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("lazy") / "data", recording=False)


def in_memory(manifest, split, size):
    """The frames as the rgbd task made them before they were lazy: every sample read, resized and stacked."""
    samples = list(manifest)
    rgb = np.stack([resize_image(s.rgb, size, nearest=False) for s in samples])
    depth = np.stack([metres_to_millimetres(resize_image(s.depth_m, size, nearest=True).astype(np.float64))
                      for s in samples]) if split != "labeled" else None
    labels = np.stack([resize_image(s.labels, size, nearest=True) for s in samples]) \
        if split != "unlabeled" or manifest.has_masks else None
    return rgb, depth, labels


def test_manifest_frames_are_lazy_and_the_frames_read_before(files):
    for split, manifest in read_manifests(config(files)).items():
        frames = manifest_frames(manifest, split, [H, W])
        for field, expected in zip(("rgb", "depth_mm", "labels"), in_memory(manifest, split, [H, W])):
            array = getattr(frames, field)
            assert (array is None) == (expected is None), (split, field)
            if array is not None:
                assert isinstance(array, FrameArray) and array.shape == expected.shape and array.dtype == expected.dtype
                np.testing.assert_array_equal(array[:], expected, err_msg=f"{split} {field}")


def test_a_manifest_split_larger_than_in_memory_mb_is_lazy_all_the_way_down(files):
    cfg = config(files)
    eager = get_task("rgbd").build_data(cfg)
    task = get_task("rgbd")
    lazy_cfg = apply_overrides(cfg, ["loader.in_memory_mb=0", "loader.num_workers=1",
                                     "loader.persistent_workers=false"])  # (a persistent worker takes 5 s to end)
    frames = task.load_frames(lazy_cfg)
    assert all(isinstance(frames[s].rgb, FrameArray) for s in frames)
    assert isinstance(frames["unlabeled"].depth_mm, FrameArray) and isinstance(frames["test"].labels, FrameArray)
    lazy = task.build_data(lazy_cfg)
    assert eager.unlabeled.lazy is None and lazy.unlabeled.lazy.num_workers == 1
    for split in ("labeled", "unlabeled", "test"):
        for name, tensor in getattr(eager, split).inputs.items():
            inputs = getattr(lazy, split).inputs[name]
            assert isinstance(inputs, LazyInputs) and isinstance(tensor, torch.Tensor), (split, name)
            assert isinstance(inputs.sources[0].frames.field(inputs.sources[0].modality.field), FrameArray)
            assert torch.equal(inputs[:], tensor), (split, name)
        want, got = getattr(eager, split).targets, getattr(lazy, split).targets
        assert got is None if want is None else torch.equal(got, want)
    made = list(lazy.test.batches(3, True, torch.Generator().manual_seed(1)))       # by a DataLoader worker
    pairs = list(zip(eager.test.batches(3, True, torch.Generator().manual_seed(1)), made))
    assert len(pairs) == 2
    for a, b in pairs:
        assert all(torch.equal(a.inputs[m], b.inputs[m]) for m in a.inputs) and torch.equal(a.targets, b.targets)


def test_a_lazy_field_pickles_as_paths_not_pixels(tmp_path):
    h, w = 120, 160
    (tmp_path / "frames").mkdir()
    for k in range(8):
        write_sample(tmp_path / "frames", f"{k}", k % 5, h, w)
    (tmp_path / "u.csv").write_text("rgb,depth\n" + "".join(f"frames/{k}.png,frames/{k}_depth.png\n" for k in range(8)))
    frames = manifest_frames(Manifest.read(tmp_path / "u.csv"), "unlabeled", [h, w])
    blob = pickle.dumps(frames.rgb)
    assert len(blob) < 1000 * len(frames.rgb) < frames.rgb[0].nbytes     # under 1 kB a frame: paths
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again[[7, 2]], frames.rgb[[7, 2]])
    np.testing.assert_array_equal(again[2], scene(2, h, w)[0])


def test_sizes_are_checked_from_the_headers_before_any_frame_is_read(files, tmp_path, monkeypatch):
    import mke.train.datasets.manifest as manifest_module

    manifests = read_manifests(config(files))

    def no_reading(*args):
        raise AssertionError("a file was decoded")

    monkeypatch.setattr(manifest_module, "READERS", {c: no_reading for c in manifest_module.READERS})
    with pytest.raises(MkeError, match=r"labeled\.csv line 5: rgb is 64x48 but earlier rows are 32x24; "
                                       r"set preprocess\.rgb\.size to resize them"):
        manifest_frames(manifests["labeled"], "labeled", None)         # the fourth row is the larger camera's
    assert manifest_frames(manifests["test"], "test", None).rgb.shape == (4, H, W, 3)
    monkeypatch.undo()
    import cv2

    cv2.imwrite(str(files / "frames" / "narrow_depth.png"), np.zeros((H, W - 2), np.uint16))
    (tmp_path / "t.csv").write_text(f"rgb,depth,mask\n{files}/frames/6.png,{files}/frames/narrow_depth.png,"
                                    f"{files}/frames/6_mask.png\n")
    with pytest.raises(MkeError, match=r"t\.csv line 2: depth file .*narrow_depth\.png is 30x24 \(WxH\); "
                                       r"expected the size of its rgb image, 32x24"):
        manifest_frames(Manifest.read(tmp_path / "t.csv"), "test", [H, W])


def test_a_mapped_cache_array_pickles_as_its_place_in_the_file(tmp_path):
    """A DataLoader worker started by spawn or forkserver receives the split pickled: a memory-mapped
    cache member must travel as (file, offset, shape), not as the whole split's bytes."""
    import pickle

    from mke.train.datasets.frame_cache import MappedArray, npz_memmaps

    frames = np.arange(40 * 16 * 16 * 3, dtype=np.uint8).reshape(40, 16, 16, 3)
    with open(tmp_path / "split.npz", "wb") as f:
        np.savez(f, rgb=frames, labels=np.asfortranarray(frames[:, :, :, 0]))
    arrays = npz_memmaps(tmp_path / "split.npz")
    for key, want in (("rgb", frames), ("labels", frames[:, :, :, 0])):
        blob = pickle.dumps(arrays[key])
        assert len(blob) < 1000 < want.nbytes
        back = pickle.loads(blob)
        assert isinstance(back, MappedArray) and np.array_equal(back, want)
        assert np.array_equal(pickle.loads(pickle.dumps(back)), want)  # and again
    part = arrays["rgb"][3:5]  # a view travels as its bytes, as any array
    assert np.array_equal(pickle.loads(pickle.dumps(part)), frames[3:5])
