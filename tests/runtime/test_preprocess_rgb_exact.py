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


def test_shrinking_by_powers_of_two_halves_step_by_step():
    import cv2

    rgb = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    params = {"kind": "rgb", "size": [120, 160], "mean": [0.0] * 3, "std": [1.0] * 3}
    half = cv2.resize(rgb, (320, 240), interpolation=cv2.INTER_AREA)
    quarter = cv2.resize(half, (160, 120), interpolation=cv2.INTER_AREA)
    got = preprocess_rgb(rgb, params)
    np.testing.assert_array_equal(got, quarter.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255))
    one_step = cv2.resize(rgb, (160, 120), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(quarter.astype(int) - one_step).max() <= 1  # the same 4×4 box average, rounded twice


def test_other_factors_take_one_area_step_after_the_halvings():
    import cv2

    from mke.runtime.preprocess import resize_image

    img = np.random.default_rng(2).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    # 72×96 → 12×16 is 6×: one halving (to 36×48), then one 3× area step
    expected = cv2.resize(cv2.resize(img, (48, 36), interpolation=cv2.INTER_AREA), (16, 12), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(resize_image(img, [12, 16], nearest=False), expected)
    # 70×90 → 20×30: no exact halving, one area step
    img = img[:70, :90]
    np.testing.assert_array_equal(resize_image(img, [20, 30], nearest=False),
                                  cv2.resize(img, (30, 20), interpolation=cv2.INTER_AREA))
