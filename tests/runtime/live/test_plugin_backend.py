"""A new backend is one file: this one defines and registers a numpy backend for `.npzmodel` files
(a fixed linear map per pixel that carries an MKE spec), and open_runner and mke-live pick it up
without any other file knowing it. The shared checks of the runner contract are pinned here too,
on this backend and on the real ONNX Runtime one alike."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mke.runtime.cli import main
from mke.runtime.errors import MkeError
from mke.runtime.live.backends import Runner, TensorMeta, backend_names, open_runner, register_backend
from mke.runtime.spec import ModelSpec, OutputSpec
from tiny_models import seg_model, seg_spec

SUFFIX = ".npzmodel"
H, W = 48, 64
# the weights of tiny_models.seg_model: class 0 near, class 1 far (depth), class 2 the blue channel
WEIGHT = np.zeros((3, 4), np.float32)
WEIGHT[2, 2], WEIGHT[0, 3], WEIGHT[1, 3] = 1.0, -2.0, 2.0


class LinearRunner(Runner):
    """logits[k] = Σ_c weight[k, c] · x[c] per pixel, x = the inputs concatenated along channels."""

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.name

    def _activate_impl(self):
        with np.load(self.path, allow_pickle=False) as z:
            self.weight, spec_json = z["weight"], str(z["spec"])
        self.spec = ModelSpec.from_json(spec_json, str(self.path))
        self.description = f"numpy-linear ({self.weight.shape[0]}×{self.weight.shape[1]})"

    def _input_metadata_impl(self):
        return {i.name: TensorMeta(np.dtype(i.dtype), tuple(None if d < 0 else d for d in i.shape))
                for i in self.spec.inputs}

    def _infer_impl(self, feeds):
        x = np.concatenate([feeds[i.name] for i in self.spec.inputs], axis=1)
        return {"logits": np.einsum("kc,nchw->nkhw", self.weight, x)}


@register_backend("numpy-linear", suffixes=(SUFFIX,), default=True, help="numpy, for this test")
def _numpy_linear(path, threads):
    return LinearRunner(path)


def linear_model(path, spec: ModelSpec | None = None, weight=WEIGHT) -> Path:
    with open(path, "wb") as f:
        np.savez(f, weight=weight, spec=np.array((spec or seg_spec(H, W)).to_json()))
    return Path(path)


def feeds(rng=None):
    rng = rng or np.random.default_rng(0)
    return {"rgb": rng.random((1, 3, H, W), np.float32), "depth": rng.random((1, 1, H, W), np.float32)}


@pytest.fixture
def npz_model(tmp_path):
    return linear_model(tmp_path / f"linear{SUFFIX}")


# --- the registry ----------------------------------------------------------------------------------------------

def test_the_new_backend_is_listed_with_the_built_in_ones():
    assert {"onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt", "numpy-linear"} <= set(backend_names())


def test_open_runner_picks_it_by_suffix_and_by_name(npz_model, tmp_path):
    with open_runner(npz_model) as runner:
        assert isinstance(runner, LinearRunner) and runner.description == "numpy-linear (3×4)"
    other = shutil.copy(npz_model, tmp_path / "linear.weights")  # a suffix no backend claims: --backend decides
    with open_runner(other, backend="numpy-linear") as runner:
        assert isinstance(runner, LinearRunner)
    with pytest.raises(MkeError, match=r"cannot tell the backend from the suffix \.weights; expected .*\.npzmodel"):
        open_runner(other)


def test_a_forced_backend_must_run_that_kind_of_file(npz_model, rgbd_onnx):
    with pytest.raises(MkeError, match=r"--backend onnxruntime cannot run linear\.npzmodel: a \.npzmodel file is "
                                       r"for numpy-linear"):
        open_runner(npz_model, backend="onnxruntime")
    with pytest.raises(MkeError, match=r"--backend numpy-linear cannot run student\.onnx: a \.onnx file is for "
                                       r"onnxruntime"):
        open_runner(rgbd_onnx, backend="numpy-linear")
    with pytest.raises(MkeError, match=r"--backend must be one of onnxruntime, .*numpy-linear.*, got 'numpy'"):
        open_runner(npz_model, backend="numpy")


def test_names_and_default_suffixes_cannot_be_taken_twice():
    def other(path, threads):
        return LinearRunner(path)

    with pytest.raises(MkeError, match="backend 'numpy-linear' is registered twice"):
        register_backend("numpy-linear", suffixes=(".other",))(other)
    with pytest.raises(MkeError, match=r"default for \.onnx, which 'onnxruntime' already is"):
        register_backend("numpy-onnx", suffixes=(".onnx",), default=True)(other)
    assert "numpy-onnx" not in backend_names()
    with pytest.raises(MkeError, match="suffixes that start with '.'"):
        register_backend("no-dot", suffixes=("npz",))


def test_it_computes_what_the_same_map_computes_on_onnx_runtime(npz_model, rgbd_onnx):
    x = feeds()
    with open_runner(npz_model) as mine, open_runner(rgbd_onnx, backend="onnxruntime-cpu") as ort:
        assert mine.spec == ort.spec
        np.testing.assert_allclose(mine.infer(x)["logits"], ort.infer(x)["logits"], rtol=1e-5, atol=1e-6)


# --- mke-live, end to end ----------------------------------------------------------------------------------------

def test_mke_live_runs_the_new_backend_on_the_simulator(npz_model, tmp_path):
    pytest.importorskip("pybullet")  # the sim source renders rooms with it
    jsonl, stats = tmp_path / "p.jsonl", tmp_path / "s.json"
    code = main([str(npz_model), "--sensor", "sim", "--fast", "--frames", "4", "--headless", "--stats-every", "0",
                 "--jsonl", str(jsonl), "--stats-json", str(stats)])
    assert code == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in lines] == [0, 1, 2, 3]
    assert all(r["classes"] and set(r["classes"]) <= {"floor", "wall", "table"} for r in lines)
    summary = json.loads(stats.read_text())
    assert summary["backend"] == "numpy-linear (3×4)" and summary["frames"] == 4 and summary["errors"] == 0


def test_mke_live_backend_flag_accepts_the_new_name(npz_model, tmp_path):
    pytest.importorskip("pybullet")
    model = shutil.copy(npz_model, tmp_path / "linear.weights")
    stats = tmp_path / "s.json"
    assert main([str(model), "--backend", "numpy-linear", "--sensor", "sim", "--fast", "--frames", "2", "--headless",
                 "--stats-every", "0", "--stats-json", str(stats)]) == 0
    assert json.loads(stats.read_text())["backend"] == "numpy-linear (3×4)"


# --- the contract every runner keeps ----------------------------------------------------------------------------

@pytest.fixture(params=["numpy-linear", "onnxruntime-cpu"])
def runner(request, npz_model, rgbd_onnx):
    path = npz_model if request.param == "numpy-linear" else rgbd_onnx
    with open_runner(path, backend=request.param) as active:
        yield active


def test_input_metadata_comes_from_the_model(runner):
    assert runner.input_metadata() == {"rgb": (np.dtype(np.float32), (1, 3, H, W)),
                                       "depth": (np.dtype(np.float32), (1, 1, H, W))}


@pytest.mark.parametrize("change, message", [
    (lambda f: {"rgb": f["rgb"], "dpth": f["depth"]},
     r": input\(s\) 'depth' not given; unknown input\(s\) 'dpth'; the model takes 'rgb' float32 \(1, 3, 48, 64\), "
     r"'depth' float32 \(1, 1, 48, 64\)"),
    (lambda f: {"rgb": f["rgb"]}, r": input\(s\) 'depth' not given; the model takes 'rgb'"),
    (lambda f: dict(f, extra=f["depth"]), r": unknown input\(s\) 'extra'; the model takes"),
    (lambda f: dict(f, rgb=f["rgb"][:, :, :40]), r"input 'rgb' has shape \(1, 3, 40, 64\), the model takes float32 "
                                                 r"\(1, 3, 48, 64\)"),
    (lambda f: dict(f, depth=f["depth"][0]), r"input 'depth' has shape \(1, 48, 64\), the model takes float32 "
                                             r"\(1, 1, 48, 64\)"),
    (lambda f: dict(f, rgb=f["rgb"].astype(np.float64)), r"input 'rgb' is float64, the model takes float32 "
                                                         r"\(1, 3, 48, 64\)"),
    (lambda f: dict(f, rgb=f["rgb"].tolist()), r"input 'rgb' is a list, not a numpy array"),
])
def test_feeds_that_do_not_fit_name_the_input_and_what_the_model_takes(runner, change, message):
    with pytest.raises(MkeError, match=message) as err:
        runner.infer(change(feeds()))
    assert str(err.value).startswith(runner.name)


def test_outputs_are_checked_against_the_spec(tmp_path):
    four = seg_spec(H, W)
    four = ModelSpec(**{**four.__dict__, "classes": four.classes + ["sofa"], "colors": four.colors + [[9, 9, 9]],
                        "outputs": [OutputSpec("logits", [1, 4, H, W])]})
    with open_runner(linear_model(tmp_path / f"four{SUFFIX}", four)) as runner:
        with pytest.raises(MkeError, match=r"output 'logits' has shape \(1, 3, 48, 64\) but the spec says "
                                           r"\(\?, 4, 48, 64\)"):
            runner.infer(feeds())
    renamed = ModelSpec(**{**seg_spec(H, W).__dict__, "outputs": [OutputSpec("scores", [1, 3, H, W])]})
    with open_runner(linear_model(tmp_path / f"renamed{SUFFIX}", renamed)) as runner:
        with pytest.raises(MkeError, match=r"the model returned \['logits'\] but its spec names the output 'scores'"):
            runner.infer(feeds())


def test_a_runner_is_activated_once_and_closed_once(npz_model):
    runner = LinearRunner(npz_model)
    with pytest.raises(MkeError, match=r"LinearRunner.infer on linear\.npzmodel before activate\(\)"):
        runner.infer(feeds())
    with runner as active:
        assert active is runner and runner.is_active
        assert runner.activate() is runner  # a second activate does nothing
        assert runner.infer(feeds())["logits"].shape == (1, 3, H, W)
    assert not runner.is_active
    runner.close()  # a second close does nothing
    with pytest.raises(MkeError, match="after close()"):
        runner.input_metadata()


def test_the_onnx_model_of_this_test_is_the_same_map(tmp_path):
    """Guards the comparison above: tiny_models.seg_model's weights are WEIGHT."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(seg_model(tmp_path / "m.onnx", H, W)))
    np.testing.assert_array_equal(numpy_helper.to_array(proto.graph.initializer[0]).reshape(3, 4), WEIGHT)
