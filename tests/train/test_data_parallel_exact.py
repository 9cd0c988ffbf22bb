"""Data-parallel training is the one-process training, draws and averages included: per-sample
augmentation drawn for the global batch (mke.train.data.Share), losses averaged over the global batch
(mke.train.losses.over_global_batch) even where the ranks' shares count differently (ignored pixels,
class weights, confidence weights)."""
import json
import os
import socket
from pathlib import Path

import pytest
import torch

from mke.train import distributed, losses
from mke.train.augment import augment_batch
from mke.train.data import Share, Split, batch_indices
from mke.train.losses import IGNORE_INDEX

KINDS = {"rgb": "rgb", "depth": "depth"}
T = {"flip": True, "scale": (0.75, 1.25), "color": 0.4}


def _segmentation_split(n: int = 24) -> Split:
    """Images, depth and per-pixel class ids with void pixels unevenly spread (most in the first
    samples) and confidence weights: the ranks' halves count different numbers of pixels."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (n, 8, 8), generator=g)
    for i in range(n // 3):
        labels[i, : 1 + i % 6] = IGNORE_INDEX
    return Split({"rgb": torch.randn(n, 3, 8, 8, generator=g), "depth": torch.rand(n, 1, 8, 8, generator=g)},
                 labels, torch.rand(n, 8, 8, generator=g))


def test_a_share_of_a_padded_global_batch():
    share = Share.of_rank(5, rank=2, world=3)  # 5 samples on 3 ranks: shares of 2, the last padded
    assert share.rows.tolist() == [4, 0] and share.size == 5
    for size, world in [(8, 2), (5, 3), (7, 4), (3, 8)]:  # the rows batch_indices gives each rank
        for rank in range(world):
            index = next(iter(batch_indices(size, size, rank=rank, world=world)))
            assert index.tolist() == Share.of_rank(size, rank, world).rows.tolist()


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_augment_their_samples_as_one_process_does(world):
    """Every rank's augmented share equals the rows of the one-process augmented global batch, and every
    rank's generator ends where one process's does: the next epoch's shuffle is the same."""
    split = _segmentation_split(10)  # batches of 4: 4, 4, 2 — on 3 ranks padded
    params = T
    alone_g = torch.Generator().manual_seed(5)
    alone = [augment_batch(b, params, alone_g, KINDS) for b in split.batches(4, shuffle=True, generator=alone_g)]
    for rank in range(world):
        g = torch.Generator().manual_seed(5)
        mine = [augment_batch(b, params, g, KINDS) for b in split.batches(4, True, g, rank=rank, world=world)]
        assert len(mine) == len(alone)
        for got, want in zip(mine, alone):
            rows = got.share.rows
            for m in KINDS:
                assert torch.equal(got.inputs[m], want.inputs[m][rows]), (rank, m)
            assert torch.equal(got.targets, want.targets[rows]) and torch.equal(got.weights, want.weights[rows])
        assert torch.equal(g.get_state(), alone_g.get_state())


def test_without_a_share_the_draws_are_unchanged():
    """One process (no Share): flip / scale / crop draws 4 numbers per sample, sample by sample, and
    nothing more, as before shares existed — the figures in docs/ stay."""
    split = _segmentation_split(6)
    g, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    augment_batch(split, {"flip": True, "scale": (0.5, 1.5)}, g, KINDS)
    for _ in range(6):
        torch.rand(4, generator=g2)
    assert torch.equal(g.get_state(), g2.get_state())


def _loss_on_ranks(rank: int, size: int, port: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(size), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(size)})
    torch.set_num_threads(1)
    distributed.init("cpu")
    result = {"losses": _ranked_losses(rank, size), "weights": _fit_segmentation()}
    distributed.shutdown()
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))


def _ranked_losses(rank: int, size: int) -> list[float]:
    """Each loss of the module on this rank's half of a batch, inside over_global_batch."""
    split = _segmentation_split(8)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 3, 8, 8, generator=g)
    probs = torch.softmax(torch.randn(8, 3, 8, 8, generator=g), 1)
    class_weight = torch.tensor([0.5, 1.0, 3.0])
    half = slice(rank * 8 // size, (rank + 1) * 8 // size)
    with losses.over_global_batch(distributed.reduce_sum, size):
        return [float(f(logits[half], t[half], w, cw))
                for f, t, w, cw in _cases(split, probs, class_weight, half)]


def _cases(split, probs, class_weight, half):
    w = split.weights[half] if half is not None else split.weights
    return [(losses.hard_target_loss, split.targets, None, None), (losses.hard_target_loss, split.targets, None, class_weight),
            (losses.hard_target_loss, split.targets, w, class_weight), (losses.soft_target_loss, probs, w, class_weight),
            (losses.binary_soft_target_loss, probs, w, None), (losses.binary_hard_target_loss, (probs > 0.5).long(), None, class_weight)]


class TinySegmenter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))

    def forward(self, rgb, depth):
        return self.net(torch.cat([rgb, depth], 1))


class _Segmentation:
    """What fit asks of a task: its label kind and its augmentation (the real one)."""

    kind = "segmentation"

    @staticmethod
    def augment(batch, params, generator):
        return augment_batch(batch, params, generator, KINDS)


def _fit_segmentation() -> dict:
    from mke.train.fit import fit
    from mke.train.methods import augmentation

    model = TinySegmenter()
    optim = {"name": "sgd", "lr": 0.2, "momentum": 0.9, "epochs": 3, "batch_size": 8}
    fit(model, _segmentation_split(), optim, augmentation("test", T), seed=0, task=_Segmentation(),
        class_weight=torch.tensor([0.5, 1.0, 3.0]))
    return {k: v.flatten().tolist() for k, v in model.state_dict().items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="this PyTorch has no torch.distributed gloo backend")
def test_two_ranks_train_as_one_process_with_augmentation_void_pixels_and_weights(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(1)
    split = _segmentation_split(8)
    g = torch.Generator().manual_seed(1)
    logits, probs = torch.randn(8, 3, 8, 8, generator=g), torch.softmax(torch.randn(8, 3, 8, 8, generator=g), 1)
    alone = [float(f(logits, t, w, cw)) for f, t, w, cw in _cases(split, probs, torch.tensor([0.5, 1.0, 3.0]), None)]
    weights = _fit_segmentation()
    torch.multiprocessing.spawn(_loss_on_ranks, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # DDP averages the ranks' gradients: the mean of the ranks' losses is the one-process loss
    for k, want in enumerate(alone):
        got = (ranks[0]["losses"][k] + ranks[1]["losses"][k]) / 2
        assert got == pytest.approx(want, rel=1e-5), (k, got, want)
    assert ranks[0]["weights"] == ranks[1]["weights"]
    for key, want in weights.items():
        got = torch.tensor(ranks[0]["weights"][key])
        assert torch.allclose(got, torch.tensor(want), atol=1e-5), (key, (got - torch.tensor(want)).abs().max())
