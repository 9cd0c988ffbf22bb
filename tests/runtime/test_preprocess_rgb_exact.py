"""preprocess_rgb works channels-first and in place for speed; it must stay bit for bit the formula training used."""
import numpy as np
import pytest

from mke.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_rgb


@pytest.mark.parametrize("params", [{"kind": "rgb"}, {"kind": "rgb", "size": [24, 32]},
                                    {"kind": "rgb", "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 0.3]}])
def test_rgb_preprocessing_is_exactly_x_over_255_minus_mean_over_std(params):
    import cv2

    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    img = rgb if "size" not in params else cv2.resize(rgb, (32, 24), interpolation=cv2.INTER_AREA)
    mean = np.asarray(params.get("mean", IMAGENET_MEAN), np.float32)
    std = np.asarray(params.get("std", IMAGENET_STD), np.float32)
    expected = np.ascontiguousarray(((img.astype(np.float32) * (1.0 / 255.0) - mean) / std).transpose(2, 0, 1))
    got = preprocess_rgb(rgb, params)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
