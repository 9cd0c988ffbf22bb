"""The segmentation augmentation T: geometry moves inputs, labels and weights together; colour
jitter touches the colour input only."""
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.augment import augment_batch, color_jitter, flip_scale_crop
from mke.train.data import Split
from mke.train.fit import autocast, resolve_precision
from mke.train.losses import IGNORE_INDEX


def _batch(n=6, h=12, w=16):
    # the label of a pixel is its column // 4, the depth its column, so every transform is checkable
    cols = torch.arange(w).view(1, 1, 1, w).expand(n, 1, h, w).float()
    rgb = torch.randn(n, 3, h, w)
    return Split({"rgb": rgb, "depth": cols.clone()}, (cols[:, 0] // 4).to(torch.uint8), torch.ones(n, h, w))


def test_flip_and_scale_keep_labels_on_their_pixels():
    batch = _batch()
    out = flip_scale_crop(batch, {"flip": True, "scale": (0.5, 1.75)}, torch.Generator().manual_seed(1))
    assert out.inputs["depth"].shape == batch.inputs["depth"].shape
    labels, depth = out.targets, out.inputs["depth"][:, 0]
    inside = labels != IGNORE_INDEX
    assert inside.any()
    # depth is resized with nearest neighbours, so depth // 4 must still be the label wherever there is one
    assert torch.equal((depth[inside] // 4).to(torch.uint8), labels[inside])
    # padding: ignored label, zero weight, zero depth
    assert torch.all(out.weights[~inside] == 0) and torch.all(depth[~inside] == 0)


def test_flip_mirrors_every_input_and_the_labels():
    batch = _batch(n=32)
    out = flip_scale_crop(batch, {"flip": True}, torch.Generator().manual_seed(0))
    flipped = [i for i in range(32) if torch.equal(out.inputs["depth"][i], batch.inputs["depth"][i].flip(-1))]
    assert 5 < len(flipped) < 27  # about half
    for i in flipped:
        assert torch.equal(out.inputs["rgb"][i], batch.inputs["rgb"][i].flip(-1))
        assert torch.equal(out.targets[i], batch.targets[i].flip(-1))


def test_color_jitter_changes_colour_only_and_is_reproducible():
    batch = _batch()
    a = augment_batch(batch, {"color": 0.4}, torch.Generator().manual_seed(3))
    b = augment_batch(batch, {"color": 0.4}, torch.Generator().manual_seed(3))
    assert torch.equal(a.inputs["rgb"], b.inputs["rgb"])
    assert not torch.allclose(a.inputs["rgb"], batch.inputs["rgb"])
    assert torch.equal(a.inputs["depth"], batch.inputs["depth"]) and torch.equal(a.targets, batch.targets)


def test_color_jitter_is_an_affine_map_per_channel_or_grey():
    x = torch.randn(64, 3, 5, 7)
    y = color_jitter(x, 0.5, torch.Generator().manual_seed(0), grey_p=0.3)
    grey = [i for i in range(64) if torch.allclose(y[i, 0], y[i, 1]) and torch.allclose(y[i, 1], y[i, 2])]
    assert 5 <= len(grey) <= 40
    for i in set(range(64)) - set(grey):
        for c in range(3):  # y = gain * x + offset with gain in 1 ± 0.5 · (1 ± 0.25)
            xs, ys = x[i, c].flatten(), y[i, c].flatten()
            gain = ((ys - ys.mean()) @ (xs - xs.mean())) / ((xs - xs.mean()) @ (xs - xs.mean()))
            assert torch.allclose(ys, gain * xs + (ys - gain * xs).mean(), atol=1e-5)
            assert 0.5 * 0.75 - 1e-6 <= float(gain) <= 1.5 * 1.25 + 1e-6


def test_unknown_augmentation_parameter_is_named():
    with pytest.raises(MkeError, match="colour"):
        augment_batch(_batch(), {"colour": 0.3}, torch.Generator())


def test_precision_choices():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    with pytest.raises(MkeError, match="precision 'half'"):
        resolve_precision("half", "cpu")
    with pytest.raises(MkeError, match="needs a GPU"):
        autocast("cpu", "fp16")
