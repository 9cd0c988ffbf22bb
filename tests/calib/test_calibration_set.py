"""The calibration set: seeded selection, the .npz Model Optimizer reads, checks against the model."""
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mke.calib.reader import NpzCalibrationReader
from mke.calib.samples import (check_calibration, ensure_calibration, load_calibration, model_inputs,
                               save_calibration, select_samples)
from mke.runtime.errors import MkeError


def rgbd_model(path, h=8, w=8, batch=1):
    """A real two-input ONNX model: concat(rgb, depth) → 3×3 Conv → Relu."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [5, 4, 3, 3], np.linspace(-1, 1, 180).tolist())
    graph = helper.make_graph(
        [helper.make_node("Concat", ["rgb", "depth"], ["x"], axis=1),
         helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["y"], ["out"])],
        "rgbd", [helper.make_tensor_value_info("rgb", TensorProto.FLOAT, [batch, 3, h, w]),
                 helper.make_tensor_value_info("depth", TensorProto.FLOAT, [batch, 1, h, w])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def frames(n=40, h=8, w=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"rgb": rng.standard_normal((n, 3, h, w)).astype(np.float32),
            "depth": rng.random((n, 1, h, w)).astype(np.float64)}  # float64: the set stores float32


def test_selection_is_seeded_and_takes_the_same_rows_of_every_input():
    arrays = frames()
    a, b, c = select_samples(arrays, 10, seed=3), select_samples(arrays, 10, seed=3), select_samples(arrays, 10, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["rgb"], c["rgb"])
    rows = [int(np.flatnonzero((arrays["rgb"] == r).all(axis=(1, 2, 3)))[0]) for r in a["rgb"]]
    assert rows == sorted(rows) and len(set(rows)) == 10
    assert np.array_equal(a["depth"], arrays["depth"][rows].astype(np.float32))
    assert a["depth"].dtype == np.float32


def test_selection_from_a_lazy_split_reads_only_the_drawn_rows():
    """mke-export draws its calibration set from D_u, which may be larger than memory (a lazy split:
    mke.train.data.LazyInputs): the draw reads the chosen rows only, and equals the draw from the arrays."""
    torch = pytest.importorskip("torch")
    from mke.train.data import LazyInputs

    arrays = frames()
    read = []

    class Rows:  # a SampleSource that notes what it is asked for
        def __init__(self, array):
            self.array = array

        def __len__(self):
            return len(self.array)

        def load(self, rows):
            read.append(np.asarray(rows).copy())
            return torch.from_numpy(self.array[rows])

    lazy = {k: LazyInputs([Rows(v)]) for k, v in arrays.items()}
    read.clear()   # LazyInputs made one sample to learn its shape
    chosen = select_samples(lazy, 10, seed=3)
    want = select_samples(arrays, 10, seed=3)
    assert all(np.array_equal(chosen[k], want[k]) for k in want)
    assert sum(len(r) for r in read) == 2 * 10   # 10 rows of each of the two inputs, nothing else


def test_fewer_samples_than_asked_uses_all_and_warns(caplog):
    with caplog.at_level(logging.WARNING):
        chosen = select_samples(frames(n=12), n=500)
    assert len(chosen["rgb"]) == 12 and "500+" in caplog.text


def test_npz_round_trip_is_keyed_by_input_name_and_float32(tmp_path):
    model = rgbd_model(tmp_path / "m.onnx")
    chosen = select_samples(frames(), 16, seed=1)
    path = save_calibration(tmp_path / "calib.npz", chosen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz", "m.onnx"]  # no temp file left behind
    with np.load(path) as z:  # what Model Optimizer does with --calibration_data
        assert sorted(z.files) == ["depth", "rgb"] and z["rgb"].shape == (16, 3, 8, 8) and z["depth"].dtype == np.float32
    back = load_calibration(path, model)
    assert all(np.array_equal(back[k], chosen[k]) for k in chosen)


def test_calibration_set_that_does_not_fit_the_model_names_file_and_mismatch(tmp_path):
    model = rgbd_model(tmp_path / "m.onnx")
    good = select_samples(frames(), 8)
    cases = {
        "missing input(s) depth": {"rgb": good["rgb"]},
        "unknown input(s) hha": {**good, "hha": good["depth"]},
        "input 'rgb' has samples of shape (3, 16, 16)": {**good, "rgb": np.zeros((8, 3, 16, 16), np.float32)},
    }
    for expected, samples in cases.items():
        path = save_calibration(tmp_path / "bad.npz", samples)
        with pytest.raises(MkeError) as err:
            load_calibration(path, model)
        assert str(path) in str(err.value) and expected in str(err.value)
    with pytest.raises(MkeError, match="'depth' is float64"):
        check_calibration({**good, "depth": good["depth"].astype(np.float64)}, model)
    with pytest.raises(MkeError, match="different sample counts"):
        check_calibration({**good, "depth": good["depth"][:3]}, model)
    with pytest.raises(MkeError, match="no such calibration set"):
        load_calibration(tmp_path / "absent.npz", model)
    with pytest.raises(MkeError, match=r"\.npz"):
        save_calibration(tmp_path / "calib.bin", good)


def test_model_inputs_read_from_the_onnx_graph(tmp_path):
    inputs = model_inputs(rgbd_model(tmp_path / "m.onnx", h=6, w=10))
    assert list(inputs) == ["rgb", "depth"]  # the weight initializer is no input
    assert inputs["depth"].shape == (1, 1, 6, 10) and inputs["depth"].dtype == np.float32


def test_existing_set_is_reused_when_it_fits_and_remade_when_not(tmp_path):
    model = rgbd_model(tmp_path / "m.onnx")
    path = tmp_path / "calib.npz"
    ensure_calibration(path, model, frames(), n=10, seed=0)
    stamp = path.stat().st_mtime_ns
    ensure_calibration(path, model, frames(), n=10, seed=0)
    ensure_calibration(path, model)  # no arrays: a fitting file is enough
    assert path.stat().st_mtime_ns == stamp
    ensure_calibration(path, model, frames(), n=10, seed=1)  # another selection
    assert path.stat().st_mtime_ns != stamp
    bigger = rgbd_model(tmp_path / "m16.onnx", h=16, w=16)  # the model changed resolution
    with pytest.raises(MkeError, match="per sample"):
        ensure_calibration(path, bigger)
    ensure_calibration(path, bigger, frames(h=16, w=16), n=10)
    assert load_calibration(path, bigger)["rgb"].shape == (10, 3, 16, 16)


def test_reader_batches_to_the_models_fixed_batch_size(tmp_path):
    model = rgbd_model(tmp_path / "m4.onnx", batch=4)
    reader = NpzCalibrationReader(select_samples(frames(), 10), model)
    batches = list(iter(reader.get_next, None))
    assert len(reader) == 2 and [b["rgb"].shape[0] for b in batches] == [4, 4]  # 2 samples do not fill a batch
    with pytest.raises(MkeError, match="do not fill one batch of 4"):
        NpzCalibrationReader(select_samples(frames(), 3), model)


def test_a_stratified_draw_represents_every_class_however_rare():
    arrays = frames(n=200)
    classes = np.zeros((200, 4), bool)
    classes[:, 0] = True                      # everywhere
    classes[::2, 1] = True                    # every other sample
    classes[[7, 93], 2] = True                # in two samples only
    classes[150, 3] = True                    # in one
    rows_of = {tuple(arrays["rgb"][i].ravel()[:4]): i for i in range(200)}

    def drawn(selection):
        return {rows_of[tuple(x.ravel()[:4])] for x in selection["rgb"]}

    stratified = drawn(select_samples(arrays, 16, seed=0, classes=classes))
    assert len(stratified) == 16
    assert {7, 93} <= stratified and 150 in stratified  # the rare classes, each as often as n // (2K) allows
    random_draws = [drawn(select_samples(arrays, 16, seed=s)) for s in range(20)]
    assert sum(150 in d for d in random_draws) < 10  # a random draw mostly misses the one-sample class
    assert drawn(select_samples(arrays, 16, seed=0, classes=classes)) == stratified  # seeded
    with pytest.raises(MkeError, match="samples, classes"):
        select_samples(arrays, 16, classes=np.ones(200, bool))
