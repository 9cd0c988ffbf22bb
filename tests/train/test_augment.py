"""The augmentation T: for segmentation, geometry moves inputs, labels and weights together; for
recognition (one label per clip) it moves the images and leaves the label; colour jitter touches the
colour input only; each input's treatment comes from its modality kind."""
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.augment import augment_batch, color_jitter, flip_scale_crop, nearest_inputs, shift_images
from mke.train.data import Split
from mke.train.fit import autocast, resolve_precision
from mke.train.losses import IGNORE_INDEX

KINDS = {"rgb": "rgb", "depth": "depth"}


def _batch(n=6, h=12, w=16):
    # the label of a pixel is its column // 4, the depth its column, so every transform is checkable
    cols = torch.arange(w).view(1, 1, 1, w).expand(n, 1, h, w).float()
    rgb = torch.randn(n, 3, h, w)
    return Split({"rgb": rgb, "depth": cols.clone()}, (cols[:, 0] // 4).to(torch.uint8), torch.ones(n, h, w))


def test_flip_and_scale_keep_labels_on_their_pixels():
    batch = _batch()
    out = flip_scale_crop(batch, {"flip": True, "scale": (0.5, 1.75)}, torch.Generator().manual_seed(1), ("depth",))
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
    out = flip_scale_crop(batch, {"flip": True}, torch.Generator().manual_seed(0), ("depth",))
    flipped = [i for i in range(32) if torch.equal(out.inputs["depth"][i], batch.inputs["depth"][i].flip(-1))]
    assert 5 < len(flipped) < 27  # about half
    for i in flipped:
        assert torch.equal(out.inputs["rgb"][i], batch.inputs["rgb"][i].flip(-1))
        assert torch.equal(out.targets[i], batch.targets[i].flip(-1))


def test_color_jitter_changes_colour_only_and_is_reproducible():
    batch = _batch()
    a = augment_batch(batch, {"color": 0.4}, torch.Generator().manual_seed(3), KINDS)
    b = augment_batch(batch, {"color": 0.4}, torch.Generator().manual_seed(3), KINDS)
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
        augment_batch(_batch(), {"colour": 0.3}, torch.Generator(), KINDS)


def test_the_modality_kind_decides_nearest_resizing_and_colour_jitter():
    """The same tensors named the other way round: the input of kind depth is resized with nearest
    neighbours (its values stay columns: no blend), the one of kind rgb gets the jitter."""
    assert nearest_inputs(KINDS) == ("depth",) and nearest_inputs({"a": "rgb", "b": "depth"}) == ("b",)
    batch = _batch()
    swapped = Split({"a": batch.inputs["depth"], "b": batch.inputs["rgb"]}, batch.targets, batch.weights)
    params = {"scale": (1.3, 1.7), "color": 0.4}
    out = augment_batch(swapped, params, torch.Generator().manual_seed(2), {"a": "depth", "b": "rgb"})
    a = out.inputs["a"]
    assert torch.equal(a, a.round()) and set(a.unique().tolist()) <= set(range(16))
    blended = augment_batch(swapped, params, torch.Generator().manual_seed(2), {"a": "rgb", "b": "depth"})
    assert not torch.equal(blended.inputs["a"], blended.inputs["a"].round())  # bilinear and jittered
    with pytest.raises(MkeError, match=r"no modality kind for the inputs \['b'\]"):
        augment_batch(swapped, params, torch.Generator(), {"a": "depth"})
    with pytest.raises(MkeError, match="'no_such_kind' is not one of the registered modalities"):
        augment_batch(swapped, params, torch.Generator(), {"a": "depth", "b": "no_such_kind"})


AV_KINDS = {"rgb": "rgb_clip", "audio": "log_mel"}


def _clips(n=16, frames=4, h=9, w=11):
    # every image of a clip is the same ramp (column index + 1), the audio a random "spectrogram"
    ramp = (torch.arange(w).float() + 1).view(1, 1, 1, 1, w).expand(n, frames, 3, h, w).contiguous()
    return Split({"rgb": ramp, "audio": torch.randn(n, 1, 6, 10)}, torch.arange(n) % 8)


def test_shift_moves_each_clip_by_whole_pixels_alike_for_its_images_and_keeps_labels():
    batch = _clips()
    out = augment_batch(batch, {"shift": 2}, torch.Generator().manual_seed(0), AV_KINDS)
    assert torch.equal(out.targets, batch.targets) and torch.equal(out.inputs["audio"], batch.inputs["audio"])
    rgb = out.inputs["rgb"]
    assert rgb.shape == batch.inputs["rgb"].shape
    moved = 0
    for i in range(len(batch)):
        assert all(torch.equal(rgb[i, t], rgb[i, 0]) for t in range(4))  # one offset for the clip's images
        row = rgb[i, 0, 0, 4]  # a row from the middle: the ramp shifted by dx, zeros where uncovered
        inside = row[row > 0]
        dx = int(inside[0]) - 1 if row[0] > 0 else -int((row == 0).sum())
        assert abs(dx) <= 2 and torch.equal(inside, torch.arange(len(inside)).float() + 1 + max(dx, 0))
        moved += dx != 0
    assert moved >= 8  # most clips moved sideways (5 offsets, 4 of them nonzero)
    again = augment_batch(batch, {"shift": 2}, torch.Generator().manual_seed(0), AV_KINDS)
    assert torch.equal(again.inputs["rgb"], rgb)


def test_shift_is_refused_for_per_pixel_labels():
    with pytest.raises(MkeError, match="shift.*dense prediction uses 'scale'"):
        augment_batch(_batch(), {"shift": 1}, torch.Generator(), KINDS)


def test_colour_jitter_and_scale_treat_an_image_sequence_alike_across_its_images():
    batch = _clips()
    out = augment_batch(batch, {"color": 0.5, "scale": (1.2, 1.5), "flip": True}, torch.Generator().manual_seed(4),
                        AV_KINDS)
    rgb = out.inputs["rgb"]
    assert rgb.shape == batch.inputs["rgb"].shape and torch.equal(out.targets, batch.targets)
    assert not torch.allclose(rgb, batch.inputs["rgb"])
    for i in range(len(batch)):
        assert all(torch.allclose(rgb[i, t], rgb[i, 0]) for t in range(4))
    assert torch.equal(shift_images(batch.inputs["rgb"], 0, torch.Generator()), batch.inputs["rgb"])


def test_precision_choices():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    with pytest.raises(MkeError, match="precision 'half'"):
        resolve_precision("half", "cpu")
    with pytest.raises(MkeError, match="needs a GPU"):
        autocast("cpu", "fp16")


def test_mute_silences_the_sound_of_a_share_of_the_samples_that_also_have_pictures():
    from mke.train.augment import augment_batch

    g = torch.Generator().manual_seed(0)
    kinds = {"audio": "log_mel", "rgb": "rgb_clip"}
    batch = Split({"audio": torch.ones(400, 1, 4, 5), "rgb": torch.ones(400, 2, 3, 4, 4)}, torch.ones(400, 3))
    out = augment_batch(batch, {"mute": 0.25}, g, kinds)
    silent = (out.inputs["audio"] == 0).flatten(1).all(1)
    assert ((out.inputs["audio"] == 0) | (out.inputs["audio"] == 1)).all()   # whole samples, nothing in between
    assert 70 < int(silent.sum()) < 130                                        # about a quarter of 400
    assert torch.equal(out.inputs["rgb"], batch.inputs["rgb"]) and torch.equal(out.targets, batch.targets)
    hearing_only = Split({"audio": torch.ones(8, 1, 4, 5)}, torch.ones(8, 3))  # nothing else to go on: unmuted
    assert torch.equal(augment_batch(hearing_only, {"mute": 0.9}, g, kinds).inputs["audio"], hearing_only.inputs["audio"])
    with pytest.raises(MkeError, match="probability"):
        augment_batch(batch, {"mute": 1.0}, g, kinds)
