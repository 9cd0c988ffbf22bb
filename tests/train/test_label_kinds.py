"""The label-kind table (mke.train.label_kinds): each operation of each kind against a hand computation,
and a multilabel task through every stage."""
import math

import pytest
import torch
import torch.nn.functional as F

from mke.runtime.errors import MkeError
from mke.runtime.spec import TASK_KINDS
from mke.train import losses
from mke.train.data import MKEData, Split
from mke.train.label_kinds import LABEL_KINDS, label_kind
from mke.train.soft_labels import TopKProbs

SINGLE, SEG, MULTI = label_kind("classification"), label_kind("segmentation"), label_kind("multilabel")
LN3 = math.log(3.0)


def test_every_task_kind_of_the_model_spec_has_its_operations():
    assert sorted(LABEL_KINDS) == sorted(TASK_KINDS)
    assert {k: (v.metric, v.dense) for k, v in LABEL_KINDS.items()} == {
        "classification": ("accuracy", False), "segmentation": ("miou", True), "multilabel": ("map", False)}
    with pytest.raises(MkeError, match="unknown task kind 'detection'"):
        label_kind("detection")


def test_activation_softmax_competes_sigmoid_does_not():
    logits = torch.tensor([[0.0, LN3]])
    torch.testing.assert_close(SINGLE.activate(logits), torch.tensor([[0.25, 0.75]]))
    torch.testing.assert_close(MULTI.activate(logits), torch.tensor([[0.5, 0.75]]))


def test_hard_labels_argmax_or_each_class_at_half():
    probs = torch.tensor([[0.6, 0.9, 0.1], [0.2, 0.5, 0.49]])
    assert SINGLE.hard(probs).tolist() == [1, 1] and SINGLE.hard(probs).dtype == torch.uint8
    assert MULTI.hard(probs).tolist() == [[1, 1, 0], [0, 1, 0]] and MULTI.hard(probs).dtype == torch.uint8
    labels = torch.tensor([[True, False, True]])
    assert MULTI.hard(labels).tolist() == [[1, 0, 1]]  # hard labels stay as they are


def test_multilabel_confidence_is_one_minus_the_mean_binary_entropy_over_log_2():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.9, 0.5]])
    h_09 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))  # 0.325083 nats
    expected = [1.0, 0.0, 1 - (h_09 + math.log(2)) / 2 / math.log(2)]  # 0.265502
    torch.testing.assert_close(MULTI.confidence(probs), torch.tensor(expected))
    # single-label ω, for comparison: 1 − H / log K over the softmax
    flat = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    h = -sum(p * math.log(p) for p in (0.4, 0.3, 0.2, 0.1))
    assert SINGLE.confidence(flat).item() == pytest.approx(1 - h / math.log(4), rel=1e-5)


def test_multilabel_hard_loss_is_binary_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, LN3]])
    labels = torch.tensor([[1, 0]], dtype=torch.uint8)
    per_class = [math.log(2), -math.log(0.25)]  # −log σ(0), −log(1 − σ(ln 3))
    assert MULTI.loss(logits, labels).item() == pytest.approx(sum(per_class) / 2, rel=1e-6)
    assert MULTI.loss(logits, labels, class_weight=torch.tensor([1.0, 3.0])).item() == pytest.approx(
        (per_class[0] + 3 * per_class[1]) / 2, rel=1e-6)
    assert MULTI.loss(logits, labels.bool()).item() == pytest.approx(sum(per_class) / 2, rel=1e-6)


def test_multilabel_soft_loss_is_the_per_class_binary_kl_by_hand():
    logits = torch.zeros(1, 2)  # σ = 0.5 for both classes
    probs = torch.tensor([[0.8, 0.5]])
    kl_08 = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)  # 0.192745
    assert MULTI.loss(logits, probs).item() == pytest.approx(kl_08 / 2, rel=1e-5)
    assert MULTI.loss(torch.tensor([[0.0, LN3]]), torch.tensor([[0.5, 0.75]])).abs().item() < 1e-6  # matches
    # with 0/1 labels it is binary cross entropy, as KL to one-hot is cross entropy for a softmax
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.randint(0, 2, (6, 4))
    torch.testing.assert_close(MULTI.loss(logits, labels.float()), F.binary_cross_entropy_with_logits(logits, labels.float()))
    torch.testing.assert_close(MULTI.loss(logits, labels), F.binary_cross_entropy_with_logits(logits, labels.float()))


def test_multilabel_loss_weighs_each_sample_by_its_confidence():
    logits = torch.tensor([[0.0, LN3], [2.0, -1.0]])
    labels = torch.tensor([[1, 0], [0, 1]])
    per_sample = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").mean(1)
    weight = torch.tensor([1.0, 0.25])
    torch.testing.assert_close(MULTI.loss(logits, labels, weight), (per_sample * weight).mean())


def test_single_label_loss_is_the_loss_it_always_was():
    torch.manual_seed(0)
    logits, ids = torch.randn(5, 3), torch.randint(0, 3, (5,))
    probs = torch.softmax(torch.randn(5, 3), 1)
    assert torch.equal(SINGLE.loss(logits, ids), losses.target_loss(logits, ids))
    assert torch.equal(SEG.loss(logits, probs), losses.soft_target_loss(logits, probs))
    assert SINGLE.loss(logits, ids).item() == pytest.approx(F.cross_entropy(logits, ids).item())


def test_mean_average_precision_by_hand_without_classes_the_test_lacks():
    # class 0 ranked 0.9 ✓, 0.8 ✗, 0.7 ✓, 0.6 ✗: AP = (1/1 + 2/3) / 2; class 1: its one positive ranked first: 1;
    # class 2 has no positive: its AP is undefined and left out
    probs = torch.tensor([[0.9, 0.1, 0.3], [0.8, 0.2, 0.2], [0.7, 0.3, 0.1], [0.6, 0.4, 0.4]])
    truth = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])
    expected = ((1 + 2 / 3) / 2 + 1) / 2
    assert MULTI.score_probs(probs, truth) == pytest.approx(expected, abs=1e-6)
    assert MULTI.score(torch.logit(probs), truth.bool()) == pytest.approx(expected, abs=1e-6)  # logits: sigmoid first
    assert MULTI.evaluate(torch.logit(probs), truth.float(), 3) == {"value": pytest.approx(expected, abs=1e-6)}
    with pytest.raises(MkeError, match="0 or 1"):
        MULTI.score_probs(probs, truth * 2)
    with pytest.raises(MkeError, match="not on class ids"):
        MULTI.score_ids(torch.zeros(4), truth, 3)


def test_single_label_metrics_are_accuracy_and_miou_of_the_argmax():
    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]])
    assert SINGLE.score(logits, torch.tensor([0, 1, 1])) == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert SINGLE.score_probs(torch.softmax(logits, 1), torch.tensor([0, 1, 1])) == pytest.approx(100 * 2 / 3, abs=1e-3)
    pixels = logits.T.reshape(1, 2, 1, 3)
    # class 0: TP 1 FP 1 → 1/2; class 1: TP 1 FN 1 → 1/2
    result = SEG.evaluate(pixels, torch.tensor([[[0, 1, 1]]]), 2)
    assert result["value"] == pytest.approx(50.0) and result["per_class"] == pytest.approx([50.0, 50.0])


def test_pseudo_label_scores_on_d_u():
    probs = torch.tensor([[0.9, 0.2], [0.3, 0.6], [0.6, 0.7]])
    assert SINGLE.score_labels(probs, torch.tensor([0, 1, 0]), 2) == pytest.approx(100 * 2 / 3, abs=1e-3)  # argmax 0, 1, 1
    truth = torch.tensor([[1, 0], [0, 1], [1, 1]])
    assert MULTI.score_labels(probs.half(), truth, 2) == pytest.approx(1.0)  # ranked right: AP 1 for both classes


def test_stored_forms_top_k_for_a_softmax_dense_fp16_for_multilabel():
    probs = torch.softmax(torch.randn(4, 5), 1)
    packed = SINGLE.unpack(SINGLE.cat([SINGLE.pack(probs[:2], 2), SINGLE.pack(probs[2:], 2)]))
    assert isinstance(packed, TopKProbs) and SINGLE.nbytes(packed) == 4 * 2 * 3
    torch.testing.assert_close(packed[torch.arange(4)].sum(1), torch.ones(4), atol=1e-3, rtol=0)  # renormalised
    independent = torch.tensor([[0.9, 0.8, 0.05], [0.1, 0.0, 0.7]])
    kept = MULTI.unpack(MULTI.cat([MULTI.pack(independent, 0)]))
    assert kept.dtype == torch.float16 and MULTI.nbytes(kept) == 2 * 3 * 2
    torch.testing.assert_close(kept.float(), independent, atol=1e-3, rtol=0)  # not renormalised
    with pytest.raises(MkeError, match="pseudo_labels.top_k=0"):
        MULTI.pack(independent, 2)
    with pytest.raises(MkeError, match="pseudo_labels.top_k=0"):
        MULTI.check({"top_k": 2})
    SINGLE.check({"top_k": 2})


def test_true_labels_take_the_form_of_the_pseudo_labels_beside_them():
    ids = torch.tensor([2, 0])
    assert SINGLE.true_as(ids, torch.zeros(1, 3)).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert SINGLE.true_as(ids, torch.zeros(1, dtype=torch.uint8)) is ids
    assert isinstance(SINGLE.true_as(ids, TopKProbs.from_probs(torch.full((1, 3), 1 / 3), 2)), TopKProbs)
    on_off = torch.tensor([[True, False], [True, True]])
    assert MULTI.true_as(on_off, torch.zeros(1, 2, dtype=torch.float16)).dtype == torch.float16
    assert MULTI.true_as(on_off, torch.zeros(1, 2, dtype=torch.uint8)).tolist() == [[1, 0], [1, 1]]


def test_multilabel_pseudo_labels_are_cached_with_their_kind(tmp_path):
    from mke.train.checkpoint import save_checkpoint
    from mke.train.pseudo import PseudoLabelCache, pseudo_targets

    save_checkpoint(tmp_path / "teacher.pt", torch.nn.Linear(2, 3), {})
    probs = torch.tensor([[0.9, 0.8, 0.05], [0.5, 0.0, 0.3]])
    labels, computed = PseudoLabelCache(tmp_path / "pl.pt").load_or_compute(
        tmp_path / "teacher.pt", lambda: iter([probs[:1], probs[1:]]), kind="multilabel")
    again = PseudoLabelCache(tmp_path / "pl.pt").load(tmp_path / "teacher.pt")
    for got in (labels, again):
        assert got.kind is MULTI and got.nbytes_per_sample == 3 * 2 + 2
        hard, weight = pseudo_targets(got, "hard", weighted=True)
        assert hard.tolist() == [[1, 1, 0], [1, 0, 0]]
        assert weight.dtype == torch.float16  # as the cache stores it; batches get it in fp32 (Split.take)
        torch.testing.assert_close(weight.float(), MULTI.confidence(probs), atol=1e-3, rtol=0)  # exact, then fp16
        soft, _ = pseudo_targets(got, "soft", weighted=False)
        torch.testing.assert_close(soft.float(), probs, atol=1e-3, rtol=0)
    with pytest.raises(MkeError, match="top_k"):
        PseudoLabelCache(tmp_path / "other.pt").load_or_compute(tmp_path / "teacher.pt", lambda: probs,
                                                                kind="multilabel", top_k=2)


def test_a_cache_written_before_label_kinds_reads_as_softmax_labels(tmp_path):
    from mke.train.checkpoint import save_checkpoint
    from mke.runtime.fileio import file_sha256
    from mke.train.pseudo import FORMAT, PseudoLabelCache

    save_checkpoint(tmp_path / "teacher.pt", torch.nn.Linear(2, 3), {})
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    torch.save({"format": FORMAT, "teacher_sha256": file_sha256(tmp_path / "teacher.pt"), "probs": probs,
                "confidence": SINGLE.confidence(probs).half()}, tmp_path / "pl.pt")
    labels = PseudoLabelCache(tmp_path / "pl.pt").load(tmp_path / "teacher.pt")
    assert labels.kind is SINGLE and torch.equal(labels.probs, probs)


class PooledNet(torch.nn.Module):
    """Images (N, 3, H, W) → one score per class per sample, from a left-to-right ramp that flipping changes."""

    def forward(self, rgb):
        w = rgb.shape[-1]
        ramp = torch.linspace(-1, 1, w)
        left_right = (rgb.mean(dim=(1, 2)) * ramp).mean(-1, keepdim=True)  # (N, 1)
        return torch.cat([4 * left_right, -4 * left_right, rgb.mean(dim=(1, 2, 3))[:, None]], dim=1)


def test_tta_of_a_multilabel_model_averages_its_sigmoids_over_views_of_the_input():
    from mke.train.tta import tta_probs

    x = torch.randn(3, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    net = PooledNet()
    plain, flipped = torch.sigmoid(net(x)), torch.sigmoid(net(x.flip(-1)))
    assert not torch.allclose(plain, flipped)
    torch.testing.assert_close(tta_probs(net, Split({"rgb": x}), {}, kind="multilabel"), plain)
    torch.testing.assert_close(tta_probs(net, Split({"rgb": x}), {"flip": True}, kind="multilabel"),
                               (plain + flipped) / 2)  # the classes stay in place: no map-back of (N, K)
    half = torch.sigmoid(net(F.interpolate(x, size=(4, 6), mode="bilinear", align_corners=False)))
    torch.testing.assert_close(tta_probs(net, Split({"rgb": x}), {"scales": [0.5]}, kind="multilabel"),
                               (plain + half) / 2)
    # a single-label classifier alike: softmax of each view, classes in place
    soft = (torch.softmax(net(x), 1) + torch.softmax(net(x.flip(-1)), 1)) / 2
    torch.testing.assert_close(tta_probs(net, Split({"rgb": x}), {"flip": True}, kind="classification"), soft)


def test_augmentation_leaves_multilabel_targets_of_a_sample_alone():
    from mke.train.augment import augment_batch

    x = torch.randn(4, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.uint8)
    out = augment_batch(Split({"rgb": x}, labels), {"flip": True, "scale": [0.8, 1.2], "shift": 1},
                        torch.Generator().manual_seed(1), {"rgb": "rgb"})
    assert torch.equal(out.targets, labels) and not torch.equal(out.inputs["rgb"], x)


# ------------------------------------------------------------------ a multilabel task through the stages

def _multilabel_task():
    from mke.train.methods import Regularization
    from mke.train.models.mlp import ModalityMLP
    from mke.train.tasks import register_task
    from mke.train.tasks.base import Task

    @register_task
    class EventBlobs(Task):
        """Three independent events; event k sounds when coordinate a (k = 0), b (k = 1) or a + b (k = 2) is high."""

        name = "event_blobs_in_a_test"
        kind = "multilabel"
        title = "event blobs (a, b)"

        def build_data(self, cfg):
            g = torch.Generator().manual_seed(0)

            def split(n, both=True):
                points = torch.randn(n, 2, generator=g)
                labels = torch.stack([points[:, 0] > 0.3, points[:, 1] > -0.2, points.sum(1) > 0.5], dim=1)
                inputs = {"a": points[:, :1], "b": points[:, 1:]} if both else {"a": points[:, :1]}
                return Split(inputs, labels.float() if both else labels)  # bool on D_l, float 0/1 elsewhere

            return MKEData(alpha="a", beta="b", labeled=split(40, both=False), unlabeled=split(120),
                           test=split(200), class_names=["a event", "b event", "sum event"])

        def build_model(self, cfg, role, modalities, reg: Regularization):
            return ModalityMLP({m: 1 for m in modalities}, 16, 3, dropout=reg.dropout, hidden_noise=reg.hidden_noise)

    return EventBlobs


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_a_multilabel_task_trains_through_every_stage_on_its_own_mathematics(tmp_path, kind):
    from mke.train.config import with_defaults
    from mke.train.pipeline import run_mke

    _multilabel_task()
    cfg = with_defaults({
        "task": "event_blobs_in_a_test", "seeds": 1, "workers": 1, "device": "cpu", "precision": "fp32",
        "teacher": {"optim": {"name": "adam", "lr": 0.02, "epochs": 150}},
        "student": {"optim": {"name": "adam", "lr": 0.02, "epochs": 150}},
        "pseudo_labels": {"kind": kind, "confidence_weight": True},
        "methods": ["UM teacher", "UM student", "NOISY student", "MM student", "MM student (sup)"],
        "regularization": {"settings": {"input_noise": {"strong": 0.5}}},
        "report": {"headline": {"regularization": "input_noise", "strength": "strong"}}})
    metrics = run_mke(cfg, tmp_path / "run", progress=False)
    assert metrics["metric"] == "map"
    value = {r["method"]: r["mean"] for r in metrics["results"]}
    assert all(0.0 < v <= 1.0 for v in value.values()), value
    # the teacher sees a only: event a it ranks well, event b barely; the MM students hear b too
    assert value["MM student (sup)"] > value["UM teacher"] + 0.1, value
    assert value["MM student"] > value["UM teacher"] + 0.02, value
    pl = metrics["pseudo_labels"]
    assert 0.5 < pl["score_on_unlabeled"] <= 1.0 and pl["bytes_per_sample"] == 3 * 2 + 2  # fp16 per class, ω


def test_true_targets_are_class_ids_or_0_1_per_class():
    import numpy as np

    assert SINGLE.true_targets(np.array([2, 0])).dtype == torch.int64
    on = MULTI.true_targets(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    assert on.dtype == torch.uint8 and on.tolist() == [[1, 0], [0, 1]]
    with pytest.raises(MkeError, match="0/1 per class"):
        MULTI.true_targets(np.array([[0.5, 0.0]]))
    with pytest.raises(MkeError, match=r"\(N, K\)"):
        MULTI.true_targets(np.array([1, 0]))


def test_classes_shown_per_sample_for_the_calibration_draw():
    # classification: the one class; segmentation: classes on at least the share of pixels (void aside)
    assert SINGLE.classes_shown(torch.tensor([2, 0]), 3, 0.005).tolist() == [[False, False, True], [True, False, False]]
    pixels = torch.tensor([[[0, 0], [0, 255]], [[1, 1], [1, 2]]])
    assert SEG.classes_shown(pixels, 3, 0.3).tolist() == [[True, False, False], [False, True, False]]
    # multilabel: the hard labels themselves
    assert MULTI.classes_shown(torch.tensor([[1, 0, 1]], dtype=torch.uint8), 3, 0.005).tolist() == [[True, False, True]]
