"""A new modality is one file: this one registers `thermal` (a thermal camera's °C image, a raw field no
built-in source has) and, to feed it, a `thermalcam://` source whose frames carry it in
`LiveFrame.extras`; mke-live runs a model of that kind end to end, with nothing else edited."""
import json
import time
from dataclasses import dataclass

import numpy as np
import pytest
from onnx import TensorProto, checker, helper, numpy_helper, save

from mke.runtime.cli import main
from mke.runtime.errors import MkeError
from mke.runtime.live.frame import LiveFrame, Status
from mke.runtime.live.inputs import InputBuilder
from mke.runtime.live.pipeline import LivePipeline, PipelineOptions
from mke.runtime.live.sources import Source, SourceContext, register_source
from mke.runtime.modalities import get_modality, input_spec, register_modality
from mke.runtime.onnx_spec import SPEC_KEY
from mke.runtime.preprocess import resize_image
from mke.runtime.spec import ModelSpec, OutputSpec

THERMAL_DEFAULTS = {"size": None, "max_c": 100.0}   # size [h, w] in pixels; max_c in °C maps to 1


def _thermal_shape(params: dict) -> tuple[int, int, int]:
    h, w = params["size"] or (-1, -1)
    return 1, h, w


@register_modality("thermal", field="thermal", shape=_thermal_shape, layout="NCHW", defaults=THERMAL_DEFAULTS,
                   image=True, nearest=True, hint="give --input thermalcam://")
def preprocess_thermal(celsius: np.ndarray, params: dict) -> np.ndarray:
    """float32 °C (H, W) → float32 (1, h, w): resized (nearest), 0 °C … max_c as 0 … 1, clipped."""
    p = {**THERMAL_DEFAULTS, **params}
    if celsius.dtype != np.float32 or celsius.ndim != 2:
        raise MkeError(f"a thermal image must be float32 °C (H, W), got {celsius.dtype} {tuple(celsius.shape)}")
    return np.clip(resize_image(celsius, p["size"], nearest=True) / np.float32(p["max_c"]), 0, 1)[None]


HOT_C, COLD_C = 80.0, 20.0


class ThermalCamera(Source):
    """`frames` frames: the left `hot` share of the picture at 80 °C, the rest at 20 °C, in `extras`."""

    modalities = frozenset({"rgb", "thermal"})
    live = False

    def __init__(self, frames: int, hot: float, size: tuple[int, int]):
        self.frames, self.hot, self.size = frames, hot, size
        self.name = f"thermal camera of {frames} frames"
        self._index = 0

    def open(self) -> None:
        self._index = 0

    def read(self, timeout_s: float):
        if self._index >= self.frames:
            return Status.END, None
        w, h = self.size
        celsius = np.full((h, w), COLD_C, np.float32)
        celsius[:, : round(w * self.hot)] = HOT_C
        frame = LiveFrame(index=self._index, timestamp_s=self._index / 9, arrival_s=time.monotonic(),
                          rgb=np.zeros((h, w, 3), np.uint8), extras={"thermal": celsius})
        self._index += 1
        return Status.OK, frame

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ThermalOptions:
    frames: int = 4
    hot: float = 0.5


@register_source("thermalcam", options=ThermalOptions, modalities={"rgb", "thermal"}, form="thermalcam://",
                 summary="numpy thermal frames, hot on the left")
def open_thermal(options: ThermalOptions, context: SourceContext) -> ThermalCamera:
    return ThermalCamera(options.frames, options.hot, context.image_size)


def thermal_model(path, h=24, w=32):
    """thermal (1, 1, h, w) → 2 class logits per pixel: "hot" above 50 °C, "cold" below."""
    spec = ModelSpec(task="heat", kind="segmentation", classes=["cold", "hot"], colors=[[0, 0, 255], [255, 0, 0]],
                     inputs=[input_spec("thermal", {"kind": "thermal", "size": [h, w], "max_c": 100.0})],
                     outputs=[OutputSpec("logits", [1, 2, h, w])])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["thermal", "w", "b"], ["logits"])], "heat",
        [helper.make_tensor_value_info("thermal", TensorProto.FLOAT, [1, 1, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, h, w])],
        [numpy_helper.from_array(np.array([-1.0, 1.0], np.float32).reshape(2, 1, 1, 1), "w"),
         numpy_helper.from_array(np.array([0.5, -0.5], np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()
    checker.check_model(model)
    save(model, str(path))
    return path, spec


def test_the_kind_is_registered_from_this_file_alone():
    thermal = get_modality("thermal")
    assert (thermal.field, thermal.input_shape({"size": [24, 32]}), thermal.nearest) == ("thermal", (1, 24, 32), True)
    spec_in = input_spec("t", {"kind": "thermal", "size": [24, 32]})
    assert (spec_in.modality, spec_in.shape) == ("thermal", [1, 1, 24, 32])


def test_input_builder_reads_the_new_field_from_the_frames_extras(tmp_path):
    _, spec = thermal_model(tmp_path / "heat.onnx")
    builder = InputBuilder(spec)
    assert builder.modalities == {"thermal"}
    celsius = np.linspace(-10, 120, 48 * 64, dtype=np.float32).reshape(48, 64)
    got = builder(LiveFrame(0, 0.0, 0.0, extras={"thermal": celsius}))["thermal"]
    assert got.shape == (1, 1, 24, 32) and got[0].tobytes() == preprocess_thermal(celsius, {"size": [24, 32]}).tobytes()
    with pytest.raises(MkeError, match="a thermal input needs the frame's thermal, and this frame has none"):
        builder(LiveFrame(0, 0.0, 0.0, rgb=np.zeros((48, 64, 3), np.uint8)))


def test_the_live_pipeline_runs_the_new_kind(tmp_path):
    from mke.runtime.live.backends import open_runner
    from mke.runtime.live.sinks.files import JsonlSink

    path, _ = thermal_model(tmp_path / "heat.onnx")
    sink = JsonlSink(tmp_path / "p.jsonl")
    with open_runner(path) as runner:
        source = ThermalCamera(frames=3, hot=0.25, size=(64, 48))
        source.open()
        summary = LivePipeline(source, runner, [sink], PipelineOptions(stats_every_s=0), log=lambda m: None).run()
    sink.close()
    assert summary["frames"] == 3
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["classes"] for r in lines] == [{"hot": 0.25, "cold": 0.75}] * 3


def test_mke_live_runs_a_model_of_the_new_kind_on_the_new_source(tmp_path, capsys):
    path, _ = thermal_model(tmp_path / "heat.onnx")
    out = tmp_path / "p.jsonl"
    assert main([str(path), "--input", "thermalcam://?frames=5&hot=0.75", "--headless", "--stats-every", "0",
                 "--jsonl", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(5))
    for r in lines:   # the model saw the thermal field at its size: three quarters hot
        assert r["classes"]["hot"] == pytest.approx(0.75) and r["classes"]["cold"] == pytest.approx(0.25)


def test_a_source_without_the_field_gets_the_kinds_hint(tmp_path, capsys):
    path, _ = thermal_model(tmp_path / "heat.onnx")
    assert main([str(path), "--input", "v4l2://0", "--headless"]) == 2
    err = capsys.readouterr().err
    assert "needs 'thermal' (thermal), but camera 0 gives only rgb: give --input thermalcam://" in err
