"""The task metrics against hand-computed values, and their checks of the class ids."""
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.losses import IGNORE_INDEX
from mke.train.metrics import class_ids, per_class_iou, score, score_predictions


def test_class_ids_are_argmax_first_on_ties():
    scores = torch.tensor([[[1.0, 2.0, 0.5]], [[1.0, 0.0, 0.5]], [[0.0, 2.0, 0.5]]]).permute(1, 0, 2)  # (1, K=3, 3)
    scores = torch.cat([scores, torch.zeros(1, 3, 3)])  # all-equal scores: class 0, as argmax
    torch.testing.assert_close(class_ids(scores), scores.argmax(1))
    logits = torch.randn(4, 5, 6, 7)
    torch.testing.assert_close(class_ids(logits), logits.argmax(1))


def test_miou_by_hand_with_void_pixels():
    preds = torch.tensor([[0, 0, 1, 1, 2, 2]])
    truth = torch.tensor([[0, 1, 1, 1, 2, IGNORE_INDEX]], dtype=torch.uint8)
    # class 0: TP 1, FP 1, FN 0 -> 1/2; class 1: TP 2, FP 0, FN 1 -> 2/3; class 2: TP 1 (void pixel not counted) -> 1
    assert score_predictions("segmentation", preds, truth, 3) == pytest.approx(100 * (1 / 2 + 2 / 3 + 1) / 3, abs=1e-3)
    assert per_class_iou(preds, truth, 4)[:3] == pytest.approx([50.0, 66.6667, 100.0], abs=1e-3)
    assert per_class_iou(preds, truth, 4)[3] != per_class_iou(preds, truth, 4)[3]  # absent everywhere: NaN
    logits = torch.nn.functional.one_hot(preds, 3).movedim(-1, 1).float()
    assert score("segmentation", logits, truth) == score_predictions("segmentation", preds, truth, 3)


def test_accuracy_by_hand():
    assert score_predictions("classification", torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3) == 75.0


@pytest.mark.parametrize("preds, truth, message", [
    ([[0, 1]], [[0, 7]], "target class id 7 is outside 0..2 (and 255 = void)"),
    ([[0, 3]], [[0, 1]], "predicted class ids must lie in 0..2"),
    ([[0, 1, 1]], [[0, 1]], "differ in shape"),
])
def test_class_ids_out_of_range_are_named(preds, truth, message):
    with pytest.raises(MkeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score_predictions("segmentation", torch.tensor(preds), torch.tensor(truth), 3)
    with pytest.raises(MkeError):
        per_class_iou(torch.tensor(preds), torch.tensor(truth), 3)


def test_void_is_no_class_in_classification():
    with pytest.raises(MkeError, match="target class id 255 is outside 0..2$"):
        score_predictions("classification", torch.tensor([0, 1]), torch.tensor([0, IGNORE_INDEX]), 3)
