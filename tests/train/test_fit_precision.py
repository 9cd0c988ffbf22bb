"""Mixed precision on a GPU: `precision: auto` is bf16 where the GPU runs it natively, else fp16 with
a GradScaler; the choice is tested here without a GPU, the training itself only where CUDA is."""
import pytest
import torch

from mke.train.data import Split
from mke.train.fit import fit, resolve_precision
from mke.train.methods import NO_REG

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (PyTorch sees none here)")


@pytest.mark.parametrize("native_bf16, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_is_bf16_where_native_else_fp16(monkeypatch, native_bf16, expected):
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native_bf16 or including_emulation  # a pre-Ampere GPU emulates bf16: it must not count

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert resolve_precision("auto", "cuda") == expected
    assert resolve_precision("auto", "cuda:0") == expected
    assert asked == [False, False]


def test_explicit_precisions_are_kept_on_a_gpu():
    assert [resolve_precision(p, "cuda") for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]


def test_auto_on_a_cpu_never_picks_fp16():
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")


class TinySegmenter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, rgb):
        return self.conv(rgb)


def _images(n=16):
    g = torch.Generator().manual_seed(0)
    return Split({"rgb": torch.randn(n, 3, 8, 8, generator=g)}, torch.randint(0, 4, (n, 8, 8), generator=g))


@needs_cuda
@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16"])
def test_mixed_precision_training_on_cuda_updates_fp32_weights(precision):
    model = TinySegmenter()
    before = model.conv.weight.detach().clone()
    scaler_steps = []
    real_step = torch.amp.GradScaler.step

    def step(self, optimizer, *args, **kwargs):
        scaler_steps.append(self.is_enabled())
        return real_step(self, optimizer, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.amp.GradScaler, "step", step)
        fit(model, _images(), {"name": "adamw", "lr": 0.01, "epochs": 2, "batch_size": 4}, NO_REG, seed=0,
            device="cuda", precision=precision)
    weight = model.conv.weight
    assert weight.dtype == torch.float32 and weight.device.type == "cuda"
    assert torch.isfinite(weight).all() and not torch.equal(weight.detach().cpu(), before)
    used = resolve_precision(precision, "cuda")
    assert scaler_steps == [used == "fp16"] * 8  # the loss is scaled exactly when the forward pass runs in fp16
