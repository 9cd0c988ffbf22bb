"""The modality registry: each kind of model input found by its spec's preprocessing `kind`, its input
shape from its parameters, and the live path of every kind through mke-live's InputBuilder — the same
functions training and calibration call, on the raw arrays of a LiveFrame."""
import json

import numpy as np
import pytest

from mke.runtime import audio_features
from mke.runtime.camera import Intrinsics
from mke.runtime.depth_units import metres_to_millimetres
from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame
from mke.runtime.live.inputs import InputBuilder, audio_params
from mke.runtime.live.sources.base import Source
from mke.runtime.modalities import get_modality, input_spec, modality_names, modality_of
from mke.runtime.preprocess import preprocess_audio, preprocess_depth, preprocess_rgb, preprocessor
from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec

BUILT_IN = {"rgb", "depth", "vector", "audio", "mfcc", "log_mel"}


def spec_of(*inputs: InputSpec) -> ModelSpec:
    return ModelSpec(task="t", kind="classification", classes=["a", "b"], colors=[[0, 0, 0], [9, 9, 9]],
                     inputs=list(inputs), outputs=[OutputSpec("logits", [1, 2])])


def frame(**fields) -> LiveFrame:
    return LiveFrame(index=0, timestamp_s=0.0, arrival_s=0.0, **fields)


def room(h=48, w=64):
    """A level camera 1.5 m above a floor that rises into a wall 3 m ahead: uint16 mm, with holes."""
    rng = np.random.default_rng(0)
    depth = np.full((h, w), 3000, np.uint16)
    depth[h // 2:] = (1500 * 30 / np.arange(1, h - h // 2 + 1)[:, None]).clip(0, 3000).astype(np.uint16)
    depth[rng.random((h, w)) < 0.05] = 0
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    k = Intrinsics(width=w, height=h, fx=50.0, fy=50.0, cx=(w - 1) / 2, cy=(h - 1) / 2)
    return rgb, depth, k


def tone(seconds=1.5, rate=16000, channels=2):
    t = np.arange(int(seconds * rate)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([left, 0.25 * np.sin(2 * np.pi * 1200 * t)][:channels]).astype(np.float32)


# ---------------------------------------------------------------------------------------- the registry

def test_every_built_in_kind_is_registered_with_its_raw_field():
    assert BUILT_IN <= set(modality_names())
    fields = {name: get_modality(name).field for name in BUILT_IN}
    assert fields == {"rgb": "rgb", "depth": "depth", "vector": None, "audio": "audio", "mfcc": "audio",
                      "log_mel": "audio"}
    assert get_modality("depth").nearest and not get_modality("rgb").nearest
    assert get_modality("rgb").photometric and not get_modality("depth").photometric
    assert preprocessor({"kind": "rgb"}) is preprocess_rgb and preprocessor({"kind": "mfcc"}) is audio_features.mfcc


def test_an_unknown_kind_names_the_registered_ones():
    with pytest.raises(MkeError) as err:
        get_modality("thermal2")
    assert "'thermal2'" in str(err.value)
    assert all(name in str(err.value) for name in BUILT_IN)


@pytest.mark.parametrize("kind, params, shape", [
    ("rgb", {"size": [120, 160]}, (3, 120, 160)),
    ("rgb", {}, (3, -1, -1)),
    ("depth", {"size": [120, 160]}, (1, 120, 160)),
    ("depth", {"encoding": "hha", "size": [60, 80]}, (3, 60, 80)),
    ("vector", {}, (-1,)),
    ("audio", {}, (-1, 16000)),
    ("audio", {"sample_rate": 8000, "seconds": 0.5}, (-1, 4000)),
    ("mfcc", {}, (1, 40, 101)),
    ("mfcc", {"n_mfcc": 13, "seconds": 0.5}, (1, 13, 51)),
    ("log_mel", {}, (1, 64, 101)),
    ("log_mel", {"n_mels": 32, "hop_length": 320}, (1, 32, 51)),
])
def test_the_input_shape_follows_from_the_parameters(kind, params, shape):
    assert get_modality(kind).input_shape(params) == shape


def test_audio_feature_shapes_are_what_the_features_come_out_as():
    for kind in ("mfcc", "log_mel"):
        params = {"n_mels": 32, "n_mfcc": 20, "seconds": 0.75}
        out = get_modality(kind)(tone(channels=1), params)
        assert out.shape == get_modality(kind).input_shape(params)


def test_a_bad_depth_encoding_is_named_when_the_shape_is_asked_for():
    with pytest.raises(MkeError, match="depth encoding 'disparity' is not one of metric, hha"):
        get_modality("depth").input_shape({"encoding": "disparity"})
    assert get_modality("depth").needs({"encoding": "hha"}) == {"intrinsics": "encoding=hha"}
    assert get_modality("depth").needs({}) == {} and get_modality("rgb").needs({}) == {}


def test_input_spec_builds_the_spec_entry_training_and_export_write():
    rgb = input_spec("rgb", {"kind": "rgb", "size": [120, 160], "mean": [0.5] * 3, "std": [0.25] * 3})
    assert rgb == InputSpec("rgb", "rgb", [1, 3, 120, 160], layout="NCHW",
                            preprocess={"kind": "rgb", "size": [120, 160], "mean": [0.5] * 3, "std": [0.25] * 3})
    # an image without `size` is used at the frames' own size: the fallback fills the open dimensions only
    depth = input_spec("depth", {"kind": "depth", "encoding": "hha"}, fallback_shape=lambda: (-1, 48, 64))
    assert depth.shape == [1, 3, 48, 64] and depth.preprocess == {"kind": "depth", "encoding": "hha"}
    assert input_spec("x", {"kind": "vector"}, fallback_shape=(1,)) == \
        InputSpec("x", "vector", [1, 1], layout="NC", preprocess={"kind": "vector"})  # TwoMoon's, as before
    mfcc = input_spec("voice", {"kind": "mfcc", "n_mfcc": 13})
    assert (mfcc.modality, mfcc.shape, mfcc.layout) == ("audio", [1, 1, 13, 101], "NCHW")
    with pytest.raises(MkeError, match="3 dimensions, but the fallback shape \\[48, 64\\] has 2"):
        input_spec("rgb", {"kind": "rgb"}, fallback_shape=(48, 64))


def test_a_spec_written_without_a_kind_falls_back_to_its_modality():
    assert modality_of(InputSpec("rgb", "rgb", [1, 3, 8, 8])).name == "rgb"
    assert modality_of(InputSpec("d", "depth", [1, 1, 8, 8], preprocess={"kind": "depth"})).name == "depth"


# ---------------------------------------------------------------------------------- the live path

def test_rgb_live_is_preprocess_rgb_at_the_model_size_even_when_the_spec_leaves_it_implicit():
    rgb, _, _ = room()
    explicit = InputBuilder(spec_of(InputSpec("rgb", "rgb", [1, 3, 24, 32], preprocess={"kind": "rgb",
                                                                                      "size": [24, 32]})))
    implicit = InputBuilder(spec_of(InputSpec("rgb", "rgb", [1, 3, 24, 32], preprocess={"kind": "rgb"})))
    want = preprocess_rgb(rgb, {"size": [24, 32]})
    for builder in (explicit, implicit):
        feeds = builder(frame(rgb=rgb))
        assert feeds["rgb"].shape == (1, 3, 24, 32) and feeds["rgb"][0].tobytes() == want.tobytes()
    assert explicit.modalities == {"rgb"}


def test_metric_depth_live_takes_millimetres_or_a_sources_float_metres():
    _, depth, _ = room()
    params = {"kind": "depth", "encoding": "metric", "max_m": 7.0, "mean": 2.5, "std": 1.2}
    builder = InputBuilder(spec_of(InputSpec("depth", "depth", [1, 1, 48, 64], preprocess=params)))
    want = preprocess_depth(depth, params)
    assert builder(frame(depth=depth))["depth"][0].tobytes() == want.tobytes()
    metres = np.where(depth > 0, depth / 1000.0, np.nan).astype(np.float32)  # a renderer's, NaN = invalid
    assert np.array_equal(metres_to_millimetres(metres), depth)
    assert builder(frame(depth=metres))["depth"][0].tobytes() == want.tobytes()


def test_hha_depth_live_uses_the_frames_intrinsics_and_up():
    _, depth, k = room()
    params = {"kind": "depth", "encoding": "hha", "size": [24, 32]}
    builder = InputBuilder(spec_of(InputSpec("depth", "depth", [1, 3, 24, 32], preprocess=params)))
    up = np.array([0.0, -0.95, 0.3])
    got = builder(frame(depth=depth, intrinsics=k, up=up))["depth"][0]
    assert got.tobytes() == preprocess_depth(depth, params, k, up).tobytes()
    assert not np.array_equal(got, builder(frame(depth=depth, intrinsics=k))["depth"][0])  # `up` is used
    with pytest.raises(MkeError, match="HHA depth encoding needs the camera intrinsics"):
        builder(frame(depth=depth))


def test_the_waveform_live_is_the_last_window_at_the_models_channels():
    params = {"kind": "audio", "sample_rate": 16000, "seconds": 0.5}
    spec = spec_of(InputSpec("audio", "audio", [1, 2, 8000], layout="NCT", preprocess=params))
    audio = tone(channels=2)
    got = InputBuilder(spec)(frame(audio=audio))["audio"]
    assert got.shape == (1, 2, 8000) and np.array_equal(got[0], preprocess_audio(audio, params))
    assert audio_params(spec) == {"sample_rate": 16000, "seconds": 0.5, "channels": 2}


@pytest.mark.parametrize("kind", ["mfcc", "log_mel"])
def test_audio_features_live_are_the_numpy_features_of_the_frames_audio(kind):
    spec_in = input_spec(kind, {"kind": kind, "sample_rate": 16000, "seconds": 0.5})
    audio = tone(channels=1)
    got = InputBuilder(spec_of(spec_in))(frame(audio=audio))[kind]
    want = getattr(audio_features, kind)(audio, {"sample_rate": 16000, "seconds": 0.5})
    assert got.shape == (1, *want.shape) and got[0].tobytes() == want.tobytes()
    # the audio stream the model wants: its rate and window, one channel (the features are of the mono mix)
    assert audio_params(spec_of(spec_in)) == {"sample_rate": 16000, "seconds": 0.5, "channels": 1}


def test_a_model_without_audio_gets_the_default_window_for_the_level_meter():
    assert audio_params(spec_of(InputSpec("rgb", "rgb", [1, 3, 8, 8], preprocess={"kind": "rgb"}))) == \
        {"sample_rate": 16000, "seconds": 1.0, "channels": 1}


def test_parameters_that_do_not_give_the_models_shape_are_named():
    spec = spec_of(InputSpec("rgb", "rgb", [1, 3, 24, 32], preprocess={"kind": "rgb", "size": [12, 16]}))
    with pytest.raises(MkeError, match=r"input 'rgb' preprocessed to shape \[3, 12, 16\] but the model takes "
                                       r"\[3, 24, 32\]"):
        InputBuilder(spec)(frame(rgb=room()[0]))


def test_a_spec_of_an_unknown_kind_is_refused_with_the_registered_kinds():
    with pytest.raises(MkeError, match="preprocessing kind 'lidar' is not one of the registered modalities"):
        InputBuilder(spec_of(InputSpec("x", "lidar", [1, 3, 8, 8], preprocess={"kind": "lidar"})))


def test_inputs_no_sensor_gives_are_refused_for_live_use():
    with pytest.raises(MkeError, match=r"m.onnx takes 'x' \(vector\): no live sensor gives that; mke-live feeds "
                                       r"inputs of the kinds audio, depth, log_mel, mfcc, rgb\b") as err:
        InputBuilder(spec_of(InputSpec("x", "vector", [1, 2], layout="NC", preprocess={"kind": "vector"})), "m.onnx")
    assert "vector" not in str(err.value).split("kinds ")[1]


class Gives(Source):
    """A source that only declares what it gives (never opened here)."""

    def __init__(self, name, *modalities):
        self.name, self.modalities = name, frozenset(modalities)

    def open(self): ...

    def read(self, timeout_s): ...

    def close(self): ...


@pytest.mark.parametrize("inputs, source, hint", [
    ([("rgb", "rgb"), ("depth", "depth")], Gives("camera 0", "rgb"),
     "camera 0 gives only rgb: give --input realsense://, file://REC.db3 or sim://"),
    ([("rgb", "rgb"), ("voice", "mfcc")], Gives("sim", "rgb", "depth"),
     "sim gives only depth, rgb: add --audio mic:// or --audio file://X.wav"),
    ([("voice", "log_mel")], Gives("a WAV", "audio"), None),
    ([("rgb", "rgb")], Gives("a microphone", "audio"), "give --input with a colour camera: realsense://"),
])
def test_the_source_check_names_what_to_give_in_the_uri_syntax(inputs, source, hint):
    spec = spec_of(*[input_spec(name, {"kind": kind, "size": [8, 8]} if kind in ("rgb", "depth") else {"kind": kind})
                     for name, kind in inputs])
    builder = InputBuilder(spec)
    if hint is None:
        builder.check_source(source, "m.onnx")
        return
    with pytest.raises(MkeError) as err:
        builder.check_source(source, "m.onnx")
    assert str(err.value).startswith("m.onnx needs ") and hint in str(err.value)


def test_a_spec_json_written_before_the_registry_still_runs():
    old = ('{"task": "rgbd", "kind": "segmentation", "classes": ["a"], "colors": [[1, 2, 3]], "inputs": ['
           '{"name": "rgb", "modality": "rgb", "shape": [1, 3, 12, 16], "dtype": "float32", "layout": "NCHW", '
           '"preprocess": {"kind": "rgb", "size": [12, 16], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}, '
           '{"name": "depth", "modality": "depth", "shape": [1, 1, 12, 16], "dtype": "float32", "layout": "NCHW", '
           '"preprocess": {"kind": "depth", "encoding": "metric", "size": [12, 16], "max_m": 7.0, "mean": 2.5, "std": 1.2}}], '
           '"outputs": [{"name": "logits", "shape": [1, 1, 12, 16], "meaning": "logits"}], "provenance": {}, '
           '"format": "mke-model-spec/1"}')
    spec = ModelSpec.from_json(old)
    rgb, depth, _ = room()
    feeds = InputBuilder(spec)(frame(rgb=rgb, depth=depth))
    assert feeds["rgb"][0].tobytes() == preprocess_rgb(rgb, spec.input("rgb").preprocess).tobytes()
    assert feeds["depth"][0].tobytes() == preprocess_depth(depth, spec.input("depth").preprocess).tobytes()
    assert json.loads(spec.to_json()) == json.loads(old)


def test_a_live_frame_gives_its_fields_and_a_sources_extras_by_name():
    rgb = np.zeros((2, 2, 3), np.uint8)
    f = frame(rgb=rgb, extras={"thermal": np.ones((2, 2), np.float32)})
    assert f.field("rgb") is rgb and f.field("depth") is None and f.field("thermal").sum() == 4
    assert f.field("nothing") is None
