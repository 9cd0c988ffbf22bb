"""The audio-visual networks' branches: every arch gives the feature width it declares, for images and
for clips; temporal pooling is what it says; bad settings name the key."""
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.models.branches import FrameBranch, branch_archs, build_branch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("params, channels, shape", [
    ({"arch": "cnn", "widths": [4, 8], "pool": "max"}, 1, (2, 1, 16, 24)),
    ({"arch": "cnn", "widths": [4, 8], "pool": "meanmax", "frames": "meanstd"}, 3, (2, 3, 3, 16, 16)),
    ({"arch": "mobilenet", "size": "small", "width": 0.25, "pool": "max"}, 1, (2, 1, 32, 48)),
    ({"arch": "mobilenet", "width": 0.4, "frames": "max"}, 3, (2, 2, 3, 32, 32)),
    ({"arch": "resnet18", "pool": "max"}, 1, (2, 1, 32, 32)),
    ({"arch": "r3d_18"}, 3, (2, 4, 3, 16, 16)),
])
def test_each_arch_gives_the_features_it_declares(params, channels, shape):
    torch.manual_seed(0)
    branch = build_branch(channels, params).eval()
    with torch.no_grad():
        out = branch(torch.randn(*shape))
    assert out.shape == (shape[0], branch.out_features)
    assert not torch.allclose(out[0], out[1])   # the input matters
    assert set(branch_archs()) >= {"cnn", "mobilenet", "resnet18", "r3d_18"}


def test_temporal_pooling_by_hand():
    body = torch.nn.Identity()
    x = torch.tensor([[[[[1.0]]], [[[3.0]]], [[[8.0]]]]])       # (N=1, T=3, C=1, 1, 1)
    assert FrameBranch(body, 1, "max", "mean")(x).tolist() == [[4.0]]
    assert FrameBranch(body, 1, "max", "max")(x).tolist() == [[8.0]]
    mean, std = FrameBranch(body, 1, "max", "meanstd")(x)[0].tolist()
    assert mean == pytest.approx(4.0) and std == pytest.approx((((1 - 4) ** 2 + (3 - 4) ** 2 + (8 - 4) ** 2) / 3) ** 0.5)
    # a still clip has no spread; a moving one has
    still = FrameBranch(torch.nn.Conv2d(1, 2, 1), 2, "mean", "meanstd")(torch.ones(1, 4, 1, 4, 4))
    assert torch.allclose(still[0, 2:], torch.zeros(2), atol=1e-6)


def test_meanmax_concatenates_both_spatial_pools():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])             # (1, 1, 2, 2)
    assert FrameBranch(torch.nn.Identity(), 1, "meanmax")(x).tolist() == [[3.0, 6.0]]


@pytest.mark.parametrize("params, words", [
    ({"arch": "vgg"}, "model.branches.audio.arch must be one of cnn, mobilenet"),
    ({"arch": "cnn", "widht": [4]}, "model.branches.audio (cnn) has no setting widht"),
    ({"arch": "cnn", "pool": "median"}, "model.branches.audio.pool must be one of mean, max, meanmax"),
    ({"arch": "cnn", "frames": "last"}, "model.branches.audio.frames must be one of mean, max, meanstd"),
    ({"arch": "mobilenet", "size": "tiny"}, "size must be large or small"),
    ({"arch": "r3d_18", "pool": "max"}, "(r3d_18) has no setting pool"),
])
def test_bad_settings_name_the_key(params, words):
    with pytest.raises(MkeError, match=None) as err:
        build_branch(1, params, "model.branches.audio")
    assert words in str(err.value)


def test_a_volume_branch_wants_clips():
    with pytest.raises(MkeError, match="takes clips"):
        build_branch(3, {"arch": "r3d_18"})(torch.randn(1, 3, 16, 16))
