"""The audio-visual student exports as a two-input ONNX — the rgb clip (N, 4, 3, 32, 32) and its
log-mel features (N, 1, 40, 101) — that ONNX Runtime runs like PyTorch, carrying the spec (inputs,
their preprocessing, classes) the live side reads. No training: random weights, BatchNorm statistics
made non-trivial first, so the comparison covers every layer."""
import numpy as np
import torch

from mke.export.onnx_export import torch_to_onnx
from mke.runtime.onnx_spec import read_onnx_spec
from mke.runtime.onnxrt import ort_session
from mke.runtime.spec import ModelSpec, OutputSpec
from mke.train.config import resolve_config
from mke.train.methods import NO_REG
from mke.train.tasks import get_task


def test_the_av_student_exports_two_inputs_that_onnx_runtime_runs_like_pytorch(tmp_path):
    cfg = resolve_config("av", None, [])
    task = get_task("av")
    torch.manual_seed(0)
    model = task.build_model(cfg, "student", ("rgb", "audio"), NO_REG)
    inputs = [task.input_spec(cfg, name) for name in ("rgb", "audio")]
    assert [(i.name, list(i.shape[1:]), i.preprocess["kind"]) for i in inputs] == [
        ("rgb", [4, 3, 32, 32], "rgb_clip"), ("audio", [1, 40, 101], "log_mel")]
    classes = task.class_names(cfg)
    spec = ModelSpec(task="av", kind=task.kind, classes=classes, colors=task.colors(len(classes)), inputs=inputs,
                     outputs=[OutputSpec("logits", task.output_shape(inputs, len(classes)))])
    with torch.no_grad():  # BatchNorm running statistics away from their initial 0 / 1
        model.train()
        for _ in range(3):
            model(rgb=torch.randn(8, 4, 3, 32, 32) * 2 + 0.5, audio=torch.randn(8, 1, 40, 101) * 3 - 1)
    model.eval()

    path = torch_to_onnx(model, spec, tmp_path / "student.onnx", dynamic_batch=True)
    assert read_onnx_spec(path).input_names == ["rgb", "audio"]
    assert read_onnx_spec(path).classes == classes

    rng = np.random.default_rng(0)
    feeds = {"rgb": rng.standard_normal((5, 4, 3, 32, 32), dtype=np.float32),
             "audio": rng.standard_normal((5, 1, 40, 101), dtype=np.float32)}
    got = ort_session(path).run(None, feeds)[0]
    with torch.no_grad():
        want = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).numpy()
    assert got.shape == (5, len(classes))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert not np.allclose(want[0], want[1])  # the inputs matter: not a constant output
