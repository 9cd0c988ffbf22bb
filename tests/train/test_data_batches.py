"""The data-parallel batch contract of `Split.batches`: one process gets exactly the batches it always
got; N ranks split each global batch into equal shares whose union is that batch."""
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.data import Split, batch_indices
from mke.train.soft_labels import TopKProbs


def _split(n: int = 10) -> Split:
    return Split({"x": torch.arange(n, dtype=torch.float32)[:, None] * torch.ones(1, 3)}, torch.arange(n) % 3)


def _reference_batches(split: Split, batch_size: int, generator: torch.Generator):
    """What `Split.batches(batch_size, shuffle=True)` has always yielded, spelt out."""
    order = torch.randperm(len(split), generator=generator)
    return [split.take(order[s:s + batch_size]) for s in range(0, len(split), batch_size)]


@pytest.mark.parametrize("batch_size", [1, 3, 4, 9])
def test_one_process_gets_todays_batches_and_draws(batch_size):
    split = _split(10)
    mine, ref = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(3):  # three epochs: the generator's state moves on alike
        got = list(split.batches(batch_size, shuffle=True, generator=mine))
        want = _reference_batches(split, batch_size, ref)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert torch.equal(g.inputs["x"], w.inputs["x"]) and torch.equal(g.targets, w.targets)
    assert torch.equal(mine.get_state(), ref.get_state())


def test_one_process_full_batch_is_the_split_itself_without_a_draw():
    split, gen = _split(6), torch.Generator().manual_seed(3)
    state = gen.get_state()
    assert list(split.batches(0, shuffle=True, generator=gen)) == [split]
    assert torch.equal(gen.get_state(), state)


@pytest.mark.parametrize("n,batch_size,world", [(12, 4, 2), (10, 4, 2), (11, 5, 3), (7, 0, 2), (5, 16, 4), (9, 2, 4)])
def test_ranks_share_each_global_batch_equally(n, batch_size, world):
    split = _split(n)
    per_rank = []
    for rank in range(world):
        gen = torch.Generator().manual_seed(11)  # every rank seeds alike, so draws the same permutation
        per_rank.append([b.inputs["x"][:, 0].long() for b in split.batches(batch_size, True, gen, rank=rank, world=world)])
    global_batches = [list(idx) for idx in batch_indices(n, batch_size, True, torch.Generator().manual_seed(11))]
    assert all(len(steps) == len(global_batches) for steps in per_rank)  # the same number of steps on every rank
    for step, want in enumerate(global_batches):
        shares = [per_rank[r][step] for r in range(world)]
        assert len({len(s) for s in shares}) == 1  # equal shares
        union = torch.cat(shares).tolist()
        assert sorted(set(union)) == sorted(int(i) for i in want)
        padding = len(union) - len(want)
        assert 0 <= padding < world  # padded only up to the next multiple of the world size
        assert union[:len(want)] == [int(i) for i in want] and union[len(want):] == [int(i) for i in (want * world)[:padding]]


def test_dividing_batches_average_to_the_one_process_gradient():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    split = Split({"x": torch.randn(8, 3)}, torch.randint(0, 3, (8,)))

    def grad(batch):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(batch.inputs["x"]), batch.targets).backward()
        return model.weight.grad.clone()

    one = [grad(b) for b in split.batches(4, True, torch.Generator().manual_seed(1))]
    ranks = [[grad(b) for b in split.batches(4, True, torch.Generator().manual_seed(1), rank=r, world=2)]
             for r in range(2)]
    for step, g in enumerate(one):
        assert torch.allclose((ranks[0][step] + ranks[1][step]) / 2, g, atol=1e-6)


def test_compact_targets_are_shared_too():
    probs = torch.softmax(torch.randn(6, 4, 2, 2), 1)
    split = Split({"x": torch.randn(6, 1, 2, 2)}, TopKProbs.from_probs(probs, 2))
    shares = [next(iter(split.batches(0, rank=r, world=2))) for r in range(2)]
    assert [len(s) for s in shares] == [3, 3]
    assert torch.allclose(torch.cat([s.targets for s in shares]), split.targets[torch.arange(6)])


def test_bad_rank_is_an_error():
    with pytest.raises(MkeError, match="rank 2 of world 2"):
        list(_split().batches(2, rank=2, world=2))


def test_a_dropped_lazy_split_frees_its_loader_at_once():
    """The DataLoader a lazy split keeps for its next pass is freed with the split by reference count —
    no cycle through its dataset — so its persistent workers shut down then (a cycle left them to the
    garbage collector, which could close their queues first: each worker then took 5 s to give up)."""
    import gc
    import weakref

    from mke.train.data import LazyInputs, LoaderSettings, TensorRows

    loader = LoaderSettings(num_workers=1, persistent_workers=True, prefetch_factor=2)
    split = Split({"x": LazyInputs([TensorRows(torch.arange(32.0).view(32, 1))], loader=loader)},
                  torch.zeros(32, dtype=torch.long))
    seen = torch.cat([b.inputs["x"] for b in split.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.flatten().tolist()) == list(range(32))
    kept = weakref.ref(split.__dict__["_loader"][0])
    gc.disable()
    try:
        del split
        assert kept() is None
    finally:
        gc.enable()
