import math

import pytest
import torch
import torch.nn.functional as F

from mke.train.losses import IGNORE_INDEX, confidence_weight, hard_target_loss, soft_target_loss, target_loss


def test_kl_to_one_hot_equals_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(16, 5)
    labels = torch.randint(0, 5, (16,))
    one_hot = F.one_hot(labels, 5).float()
    assert torch.allclose(soft_target_loss(logits, one_hot), hard_target_loss(logits, labels), atol=1e-6)


def test_soft_loss_is_zero_when_student_matches_teacher_and_positive_otherwise():
    logits = torch.randn(8, 3)
    assert soft_target_loss(logits, torch.softmax(logits, 1)).abs() < 1e-6
    assert soft_target_loss(logits, torch.softmax(-logits, 1)) > 0.1


def test_target_loss_dispatches_on_dtype():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 1])
    assert torch.allclose(target_loss(logits, labels), F.cross_entropy(logits, labels))
    probs = torch.softmax(torch.randn(4, 3), 1)
    assert torch.allclose(target_loss(logits, probs), soft_target_loss(logits, probs))


def test_confidence_weight_is_one_for_certain_and_zero_for_uniform_labels():
    k = 4
    certain = F.one_hot(torch.tensor([2]), k).float()
    uniform = torch.full((1, k), 1.0 / k)
    assert confidence_weight(certain).item() == pytest.approx(1.0)
    assert confidence_weight(uniform).item() == pytest.approx(0.0, abs=1e-6)
    # low-confidence pixels get small weight: the weight falls as entropy rises
    sharp = torch.tensor([[0.9, 0.05, 0.03, 0.02]])
    flat = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    assert confidence_weight(sharp) > confidence_weight(flat)
    entropy = -(flat * flat.log()).sum()
    assert confidence_weight(flat).item() == pytest.approx(1 - entropy.item() / math.log(k), rel=1e-5)


def test_confidence_weight_works_per_pixel():
    probs = torch.softmax(torch.randn(2, 5, 3, 4), dim=1)
    w = confidence_weight(probs)
    assert w.shape == (2, 3, 4)
    assert ((w >= 0) & (w <= 1)).all()


def test_weighted_soft_loss_ignores_zero_weight_pixels():
    logits = torch.randn(1, 3, 2, 2)
    probs = torch.softmax(torch.randn(1, 3, 2, 2), 1)
    weight = torch.zeros(1, 2, 2)
    weight[0, 0, 0] = 1.0
    full = soft_target_loss(logits, probs, torch.ones(1, 2, 2))
    single = soft_target_loss(logits[..., :1, :1], probs[..., :1, :1])
    assert torch.allclose(soft_target_loss(logits, probs, weight) * 4, single)
    assert not torch.allclose(full, single)


def test_ignored_pixels_do_not_count_in_cross_entropy():
    logits = torch.randn(1, 3, 2, 2)
    labels = torch.tensor([[[0, 1], [IGNORE_INDEX, IGNORE_INDEX]]])
    expected = F.cross_entropy(logits[:, :, 0, :], labels[:, 0, :])
    assert torch.allclose(hard_target_loss(logits, labels), expected)
    assert torch.allclose(hard_target_loss(logits, labels, torch.ones(1, 2, 2)), expected)


def test_class_weight_applies_by_the_label_argmax_per_pixel():
    probs = torch.tensor([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8]]).T.reshape(1, 2, 1, 3)  # ties go to the first class
    logits = torch.zeros(1, 2, 1, 3)
    kl = (probs * (probs.log() - torch.log_softmax(logits, 1))).sum(1)
    weighted = soft_target_loss(logits, probs, class_weight=torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(weighted, (kl * torch.tensor([1.0, 1.0, 3.0])).mean())


def test_median_frequency_weights_skip_void_and_absent_classes():
    from mke.train.tasks.segmentation import median_frequency_weights

    labels = torch.tensor([[0, 0, 0, 0, 1, 1, 2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]], dtype=torch.uint8)
    # frequencies 4/7, 2/7, 1/7 (void not counted, class 3 absent): median 2/7
    torch.testing.assert_close(median_frequency_weights(labels, 4), torch.tensor([0.5, 1.0, 2.0, 1.0]))
    assert median_frequency_weights(labels, 4, cap=1.5)[2] == 1.5


def test_class_weights_come_from_the_targets_a_model_trains_on():
    """Ids, dense probabilities and top-k pseudo labels of the same map give the same weights; void
    pixels (IGNORE_INDEX, or no probability mass as in NOISY student's D_l part) are not counted."""
    from mke.train.soft_labels import TopKProbs, target_class_ids
    from mke.train.tasks.rgbd import RGBDTask

    ids = torch.tensor([[[0, 0, 0, 0, 1], [1, 2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]], dtype=torch.uint8)
    valid = ids != IGNORE_INDEX
    dense = F.one_hot(torch.where(valid, ids, 0).long(), 4).movedim(-1, 1).float() * 0.7 * valid.unsqueeze(1)
    dense[:, 3] += 0.3 * valid  # a runner-up class that must not count
    topk = TopKProbs.from_probs(dense, 2)
    for targets in (ids, dense, topk, TopKProbs.from_labels(ids, 2, 4)):
        torch.testing.assert_close(target_class_ids(targets).long(), ids.long())
    cfg = {"loss": {"class_weighting": "median_frequency"}}
    task = RGBDTask()
    expected = torch.tensor([0.5, 1.0, 2.0, 1.0])  # frequencies 4/7, 2/7, 1/7; class 3 absent
    for targets in (ids, dense, topk):
        torch.testing.assert_close(task.class_weight(cfg, targets, 4), expected)
    assert task.class_weight({"loss": {"class_weighting": "none"}}, ids, 4) is None
