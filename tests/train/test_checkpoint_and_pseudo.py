import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.checkpoint import load_checkpoint, save_checkpoint, warm_start
from mke.train.pseudo import PseudoLabelCache, PseudoLabels, pseudo_targets
from mke.train.soft_labels import TopKProbs


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(2, 3)


def test_checkpoint_round_trip(tmp_path):
    model = _model(0)
    save_checkpoint(tmp_path / "m.pt", model, {"task": "twomoon", "modalities": ["x"]})
    state, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta == {"task": "twomoon", "modalities": ["x"]}
    assert torch.equal(state["weight"], model.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_truncated_and_foreign_checkpoints_give_clear_errors(tmp_path):
    save_checkpoint(tmp_path / "m.pt", _model(0), {})
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(MkeError, match=r"cut.pt cannot be read"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(MkeError, match=r"tensor.pt is not an MKE Edge checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")
    with pytest.raises(MkeError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failed_save_leaves_no_file(tmp_path):
    class Broken(torch.nn.Module):
        def state_dict(self, *a, **k):
            return {"x": (i for i in ())}  # a generator cannot be pickled

    with pytest.raises(TypeError, match="pickle"):
        save_checkpoint(tmp_path / "b.pt", Broken(), {})
    assert list(tmp_path.iterdir()) == []


def test_pseudo_labels_are_cached_and_invalidated_by_a_new_teacher(tmp_path):
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, _model(0), {})
    cache = PseudoLabelCache(tmp_path / "pl.pt")
    calls = []

    def compute():
        calls.append(1)
        return torch.softmax(torch.randn(5, 3), 1)

    first, computed = cache.load_or_compute(teacher, compute, kind="classification")
    assert computed and len(calls) == 1
    again, computed = cache.load_or_compute(teacher, compute, kind="classification")
    assert not computed and len(calls) == 1 and torch.equal(first.probs, again.probs)
    assert torch.equal(cache.load(teacher).probs, first.probs)

    save_checkpoint(teacher, _model(1), {})  # retrained teacher: other bytes
    with pytest.raises(MkeError, match="stale"):
        cache.load(teacher)
    _, computed = cache.load_or_compute(teacher, compute, kind="classification")
    assert computed and len(calls) == 2


def test_corrupt_pseudo_label_file_is_recomputed(tmp_path):
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, _model(0), {})
    (tmp_path / "pl.pt").write_bytes(b"garbage")
    labels, computed = PseudoLabelCache(tmp_path / "pl.pt").load_or_compute(teacher, lambda: torch.full((2, 2), 0.5),
                                                                              kind="classification")
    assert computed and labels.probs.shape == (2, 2)


def test_pseudo_targets_soft_hard_and_weights():
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    labels = PseudoLabels(probs, "classification")
    hard, none = pseudo_targets(labels, "hard", weighted=False)
    assert hard.tolist() == [0, 0] and none is None
    soft, w = pseudo_targets(labels, "soft", weighted=True)
    assert torch.equal(soft, probs) and w[0] > 0.5 and w[1] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(MkeError, match="'soft' or 'hard'"):
        pseudo_targets(labels, "medium", weighted=False)


def test_top_k_storage_is_compact_and_keeps_the_labels_and_exact_confidence(tmp_path):
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, _model(0), {})
    torch.manual_seed(0)
    probs = torch.softmax(3 * torch.randn(6, 8, 12, 16), dim=1)  # 6 frames, 8 classes, 12×16 pixels
    dense, _ = PseudoLabelCache(tmp_path / "dense.pt").load_or_compute(teacher, lambda: probs, kind="segmentation")
    compact, _ = PseudoLabelCache(tmp_path / "topk.pt").load_or_compute(teacher, lambda: probs, kind="segmentation",
                                                                                 top_k=2)
    assert isinstance(compact.probs, TopKProbs)
    assert compact.nbytes_per_sample * 3 < dense.nbytes_per_sample
    # the same hard labels, the exact confidence weights, and soft labels close to the teacher's
    assert torch.equal(pseudo_targets(compact, "hard", False)[0], pseudo_targets(dense, "hard", False)[0])
    assert torch.allclose(pseudo_targets(compact, "soft", True)[1], pseudo_targets(dense, "soft", True)[1], atol=2e-3)
    soft = compact.probs[torch.arange(6)]
    assert soft.shape == probs.shape and torch.allclose(soft.sum(1), torch.ones(6, 12, 16), atol=1e-3)
    assert (soft.argmax(1) == probs.argmax(1)).all()
    # survives a reload from disk
    reloaded = PseudoLabelCache(tmp_path / "topk.pt").load(teacher)
    assert torch.equal(reloaded.probs.indices, compact.probs.indices)


def test_one_hot_top_k_labels_give_no_mass_to_ignored_pixels():
    labels = torch.tensor([[[0, 3], [255, 1]]])
    dense = TopKProbs.from_labels(labels, 2, 4)[torch.arange(1)]
    assert dense[0, :, 0, 0].tolist() == [1, 0, 0, 0]
    assert dense[0, :, 1, 0].sum() == 0


def test_warm_start_copies_the_teachers_branch_into_the_student(tmp_path):
    from mke.train.models.segmentation import SegmentationNet

    torch.manual_seed(0)
    teacher = SegmentationNet({"rgb": 3}, 4, encoder="tiny", decoder_width=8)
    save_checkpoint(tmp_path / "teacher.pt", teacher, {})
    torch.manual_seed(1)
    student = SegmentationNet({"rgb": 3, "depth": 1}, 4, encoder="tiny", decoder_width=8)
    fresh = {k: v.clone() for k, v in student.state_dict().items()}
    copied = warm_start(student, tmp_path / "teacher.pt")
    assert copied == sorted(teacher.state_dict())  # every teacher tensor has its place in the student
    after = student.state_dict()
    for key, value in teacher.state_dict().items():
        assert torch.equal(after[key], value), key
    untouched = [k for k in after if k.startswith(("encoders.depth.", "fusions."))]
    assert untouched and all(torch.equal(after[k], fresh[k]) for k in untouched)


def test_warm_start_from_an_unrelated_model_is_refused(tmp_path):
    save_checkpoint(tmp_path / "m.pt", _model(0), {})
    with pytest.raises(MkeError, match="student.init: scratch"):
        warm_start(torch.nn.Conv2d(3, 5, 1), tmp_path / "m.pt")
