"""Test-time augmentation of the labelling teacher (mke.train.tta)."""
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.data import Split
from mke.train.tta import tta_probs, views


class Net(torch.nn.Module):
    """A segmentation-shaped net: 1×1 conv (flip- and nearly scale-equivariant) plus, optionally, a
    fixed left-to-right ramp added to the scores, which flipping does not commute with."""

    def __init__(self, ramp: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.ramp = ramp

    def forward(self, rgb):
        out = self.conv(rgb)
        w = out.shape[-1]
        return out + self.ramp * torch.linspace(-1, 1, w).view(1, 1, 1, w) * torch.arange(4.0).view(1, 4, 1, 1)


def rgb_split(n=3, h=8, w=12):
    return Split({"rgb": torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(1))})


def test_views_plain_first_and_parameters_checked():
    assert views({}) == [(1.0, False)]
    assert views({"flip": True, "scales": [0.75, 1.0, 1.25]}) == [
        (1.0, False), (1.0, True), (0.75, False), (0.75, True), (1.25, False), (1.25, True)]
    with pytest.raises(MkeError, match="scale"):
        views({"scale": [0.5]})
    with pytest.raises(MkeError, match=r"\[0.25, 4\]"):
        views({"scales": [8]})


def test_no_views_is_the_plain_softmax():
    net, split = Net(ramp=1.0), rgb_split()
    expected = torch.softmax(net(split.inputs["rgb"]), 1)
    torch.testing.assert_close(tta_probs(net, split, {}, kind="segmentation", batch_size=2), expected)


def test_flip_averages_the_flipped_back_view():
    net, split = Net(ramp=1.0), rgb_split()
    x = split.inputs["rgb"]
    plain = torch.softmax(net(x), 1)
    flipped_back = torch.softmax(net(x.flip(-1)), 1).flip(-1)
    assert not torch.allclose(plain, flipped_back)  # the ramp makes the two views differ
    torch.testing.assert_close(tta_probs(net, split, {"flip": True}, kind="segmentation"), (plain + flipped_back) / 2)


def test_views_land_on_the_input_grid_and_sum_to_one():
    net, split = Net(), rgb_split(h=16, w=24)
    probs = tta_probs(net, split, {"flip": True, "scales": [0.5, 2.0]}, kind="segmentation", batch_size=2)
    assert probs.shape == (3, 4, 16, 24)
    torch.testing.assert_close(probs.sum(1), torch.ones(3, 16, 24))
    # a pointwise net on a smooth image barely changes under scaling: the average stays near the plain pass
    smooth = Split({"rgb": torch.nn.functional.interpolate(torch.randn(3, 3, 4, 6), size=(16, 24), mode="bilinear")})
    plain = tta_probs(net, smooth, {}, kind="segmentation")
    assert (tta_probs(net, smooth, {"scales": [0.5, 2.0]}, kind="segmentation") - plain).abs().max() < 0.1


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


def test_spatial_views_need_images():
    vectors = Split({"x": torch.randn(5, 2)})
    with pytest.raises(MkeError, match="image inputs"):
        tta_probs(Mlp(), vectors, {"flip": True}, kind="classification")
    assert tta_probs(Mlp(), vectors, {}, kind="classification").shape == (5, 2)
