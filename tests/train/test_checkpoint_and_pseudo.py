import pickle

import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.checkpoint import load_checkpoint, save_checkpoint
from mke.train.pseudo import PseudoLabelCache, pseudo_targets


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
            return {"x": lambda: 0}  # a lambda cannot be pickled

    with pytest.raises(pickle.PicklingError):
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

    first, computed = cache.load_or_compute(teacher, compute)
    assert computed and len(calls) == 1
    again, computed = cache.load_or_compute(teacher, compute)
    assert not computed and len(calls) == 1 and torch.equal(first, again)
    assert torch.equal(cache.load(teacher), first)

    save_checkpoint(teacher, _model(1), {})  # retrained teacher: other bytes
    with pytest.raises(MkeError, match="stale"):
        cache.load(teacher)
    _, computed = cache.load_or_compute(teacher, compute)
    assert computed and len(calls) == 2


def test_corrupt_pseudo_label_file_is_recomputed(tmp_path):
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, _model(0), {})
    (tmp_path / "pl.pt").write_bytes(b"garbage")
    probs, computed = PseudoLabelCache(tmp_path / "pl.pt").load_or_compute(teacher, lambda: torch.full((2, 2), 0.5))
    assert computed and probs.shape == (2, 2)


def test_pseudo_targets_soft_hard_and_weights():
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    hard, none = pseudo_targets(probs, "hard", weighted=False)
    assert hard.tolist() == [0, 0] and none is None
    soft, w = pseudo_targets(probs, "soft", weighted=True)
    assert torch.equal(soft, probs) and w[0] > 0.5 and w[1] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(MkeError, match="'soft' or 'hard'"):
        pseudo_targets(probs, "medium", weighted=False)
