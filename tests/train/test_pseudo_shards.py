"""The sharded pseudo-label pass: shards on batch boundaries, merged into today's cache, the same
labels as one pass to the last bit (one process in chunks, and two real processes over gloo), and a
killed pass resumed with the shards it wrote."""
import os
import socket

import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.checkpoint import load_checkpoint, save_checkpoint
from mke.train.data import Split
from mke.train.pseudo import FORMAT, PseudoLabelCache, shard_ranges
from mke.train.tta import tta_batches

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, BATCH, TTA = 11, 2, {"flip": True, "scales": [0.75]}


class Segmenter(torch.nn.Module):
    """A tiny dense teacher: class scores per pixel of its `rgb` input."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, classes, 1))

    def forward(self, rgb):
        return self.net(rgb)


class Classifier(torch.nn.Linear):
    def forward(self, rgb):
        return super().forward(rgb)


def _teacher(path, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = Segmenter()
    save_checkpoint(path, model, {})
    return model


def _unlabeled() -> Split:
    return Split({"rgb": torch.randn(N, 3, 12, 16, generator=torch.Generator().manual_seed(5))})


def _compute(model, split, kind):
    def compute(start, stop):
        return tta_batches(model, split.part(start, stop), TTA, kind=kind, batch_size=BATCH)
    return compute


def _assert_same(a, b):
    if isinstance(a.probs, torch.Tensor):
        assert torch.equal(a.probs, b.probs)
    else:
        assert torch.equal(a.probs.values, b.probs.values) and torch.equal(a.probs.indices, b.probs.indices)
    assert torch.equal(a.confidence, b.confidence)


@pytest.mark.parametrize("n,batch,shard,world", [(11, 2, 3, 1), (11, 2, 3, 2), (11, 2, 0, 3), (100, 32, 64, 4),
                                                 (7, 0, 3, 2), (5, 4, 0, 4), (3, 2, 2, 5)])
def test_shards_tile_the_split_on_batch_boundaries(n, batch, shard, world):
    every = shard_ranges(n, batch, shard, 0, world, every_rank=True)
    assert every == [s for r in range(world) for s in shard_ranges(n, batch, shard, r, world)]
    assert [a for a, _ in every] == [0] + [b for _, b in every[:-1]] and every[-1][1] == n  # contiguous, all of it
    if batch > 0:
        assert all(a % batch == 0 for a, _ in every)
    if batch > 0 and 0 < shard <= n // world:  # the same grid on fewer ranks: a resumed pass keeps its shards
        assert every == shard_ranges(n, batch, shard, 0, 1, every_rank=True)
    if batch > 0 and n >= world * max(batch, shard):  # every rank has work
        assert all(shard_ranges(n, batch, shard, r, world) for r in range(world))


def test_the_default_shards_keep_every_rank_busy():
    assert shard_ranges(2000, 32, 1024, 0, 1, every_rank=True) == [(0, 1024), (1024, 2000)]
    assert [shard_ranges(2000, 32, 1024, r, 4) for r in range(4)] == [[(0, 512)], [(512, 1024)], [(1024, 1536)],
                                                                       [(1536, 2000)]]


@pytest.mark.parametrize("kind,top_k", [("segmentation", 2), ("segmentation", 0), ("classification", 0)])
def test_one_process_in_shards_labels_exactly_as_one_pass(tmp_path, kind, top_k):
    teacher = _teacher(tmp_path / "teacher.pt")
    split = _unlabeled()
    if kind == "classification":
        split = Split({"rgb": split.inputs["rgb"].mean((2, 3))})
        teacher = Classifier(3, 5)
        save_checkpoint(tmp_path / "teacher.pt", teacher, {})
    tta = TTA if kind == "segmentation" else {}
    one, _ = PseudoLabelCache(tmp_path / "one.pt").load_or_compute(
        tmp_path / "teacher.pt", lambda: tta_batches(teacher, split, tta, kind=kind, batch_size=BATCH), kind=kind,
        top_k=top_k)
    cache = PseudoLabelCache(tmp_path / "pl.pt")
    merged, labelled = cache.load_or_compute_sharded(
        tmp_path / "teacher.pt", lambda a, b: tta_batches(teacher, split.part(a, b), tta, kind=kind, batch_size=BATCH),
        N, kind=kind, top_k=top_k, batch_size=BATCH, shard_samples=3)
    assert labelled == N
    _assert_same(merged, one)
    assert cache.shard_files() == []  # merged and removed
    payload = torch.load(tmp_path / "pl.pt", weights_only=True)
    assert payload["format"] == FORMAT and list(payload) == ["format", "teacher_sha256", "kind", "probs", "confidence"]
    _assert_same(PseudoLabelCache(tmp_path / "pl.pt").load(tmp_path / "teacher.pt"), one)  # read as any cache is


def test_a_killed_pass_resumes_with_its_shards_and_ignores_another_teachers(tmp_path):
    teacher = _teacher(tmp_path / "teacher.pt")
    split, kind = _unlabeled(), "segmentation"
    cache = PseudoLabelCache(tmp_path / "pl.pt")
    compute = _compute(teacher, split, kind)
    asked = []

    def dies_at_the_third_shard(a, b):
        if len(asked) == 2:
            raise KeyboardInterrupt  # killed mid-pass
        asked.append((a, b))
        return compute(a, b)

    # a shard of the same range written by another teacher: stale, recomputed
    other = _teacher(tmp_path / "other.pt", seed=1)
    PseudoLabelCache(tmp_path / "pl.pt").load_or_compute_sharded(
        tmp_path / "other.pt", _compute(other, split, kind), N, kind=kind, top_k=2, batch_size=BATCH, shard_samples=4)
    torch.save({**torch.load(tmp_path / "pl.pt", weights_only=True), "format": "mke-pseudo-label-shard/1",
                "top_k": 2, "start": 8, "stop": 11}, cache.shard_path(8, 11))
    (tmp_path / "pl.pt").unlink()

    with pytest.raises(KeyboardInterrupt):
        cache.load_or_compute_sharded(tmp_path / "teacher.pt", dies_at_the_third_shard, N, kind=kind, top_k=2,
                                      batch_size=BATCH, shard_samples=4)
    assert asked == [(0, 4), (4, 8)]
    assert [p.name for p in cache.shard_files()] == ["pl.shard-0-4.pt", "pl.shard-4-8.pt", "pl.shard-8-11.pt"]
    assert not (tmp_path / "pl.pt").exists()

    again = []
    labels, labelled = cache.load_or_compute_sharded(
        tmp_path / "teacher.pt", lambda a, b: again.append((a, b)) or compute(a, b), N, kind=kind, top_k=2,
        batch_size=BATCH, shard_samples=4)
    assert again == [(8, 11)] and labelled == 3  # only the shard not written by this teacher
    one, _ = PseudoLabelCache(tmp_path / "one.pt").load_or_compute(
        tmp_path / "teacher.pt", lambda: tta_batches(teacher, split, TTA, kind=kind, batch_size=BATCH), kind=kind,
        top_k=2)
    _assert_same(labels, one)
    assert cache.shard_files() == []
    cached, labelled = cache.load_or_compute_sharded(tmp_path / "teacher.pt", None, N, kind=kind, top_k=2,
                                                     batch_size=BATCH, shard_samples=4)
    assert labelled == 0  # the cache of this teacher: nothing computed


def test_a_shard_missing_at_the_merge_is_named(tmp_path):
    teacher = _teacher(tmp_path / "teacher.pt")
    cache = PseudoLabelCache(tmp_path / "pl.pt")

    def vanishing(a, b):  # another process deletes a finished shard before the merge
        for path in cache.shard_files():
            path.unlink()
        return _compute(teacher, _unlabeled(), "segmentation")(a, b)

    with pytest.raises(MkeError, match=r"shard .*pl.shard-0-4.pt .* is missing or unreadable after the pass"):
        cache.load_or_compute_sharded(tmp_path / "teacher.pt", vanishing, N, kind="segmentation", batch_size=BATCH,
                                      shard_samples=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, folder: str, shard_samples: int) -> None:
    """One torchrun-like process: its rank in the environment, the process group over gloo."""
    from pathlib import Path

    from mke.train import distributed

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.init("cpu")
    try:
        folder = Path(folder)
        state, _ = load_checkpoint(folder / "teacher.pt")
        teacher = Segmenter()
        teacher.load_state_dict(state)
        labels, labelled = PseudoLabelCache(folder / "pl.pt").load_or_compute_sharded(
            folder / "teacher.pt", _compute(teacher, _unlabeled(), "segmentation"), N, kind="segmentation", top_k=2,
            batch_size=BATCH, shard_samples=shard_samples)
        torch.save({"labelled": labelled, "values": labels.probs.values, "indices": labels.probs.indices,
                    "confidence": labels.confidence}, folder / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


@pytest.mark.parametrize("shard_samples", [3])
def test_two_processes_over_gloo_label_exactly_as_one_pass(tmp_path, shard_samples):
    teacher = _teacher(tmp_path / "teacher.pt")
    one, _ = PseudoLabelCache(tmp_path / "one.pt").load_or_compute(
        tmp_path / "teacher.pt", lambda: tta_batches(teacher, _unlabeled(), TTA, kind="segmentation", batch_size=BATCH),
        kind="segmentation", top_k=2)
    torch.multiprocessing.spawn(_rank_main, args=(2, _free_port(), str(tmp_path), shard_samples), nprocs=2)
    got = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert sum(g["labelled"] for g in got) == N and all(g["labelled"] > 0 for g in got)  # both ranks labelled a part
    for g in got:  # every rank holds the merged labels, the one pass's to the last bit
        assert torch.equal(g["values"], one.probs.values) and torch.equal(g["indices"], one.probs.indices)
        assert torch.equal(g["confidence"], one.confidence)
    _assert_same(PseudoLabelCache(tmp_path / "pl.pt").load(tmp_path / "teacher.pt"), one)
    assert PseudoLabelCache(tmp_path / "pl.pt").shard_files() == []


def _mapped_file(address: int) -> str | None:
    """The file whose mapping holds `address` in this process (/proc/self/maps), None if anonymous."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                return fields[5].strip() if len(fields) > 5 and fields[5].startswith("/") else None
    return None


def test_the_cache_is_read_memory_mapped_and_batches_get_fp32_weights(tmp_path):
    """Pseudo labels and ω stay in the cache file until a batch indexes them (a D_u larger than
    memory); each batch's ω is fp32, equal to the stored fp16 values."""
    from mke.train.pseudo import pseudo_targets

    teacher = _teacher(tmp_path / "teacher.pt")
    split = _unlabeled()
    cache = PseudoLabelCache(tmp_path / "pl.pt")
    cache.load_or_compute(tmp_path / "teacher.pt", lambda: tta_batches(teacher, split, TTA, kind="segmentation",
                                                                       batch_size=BATCH), kind="segmentation", top_k=2)
    labels = cache.load(tmp_path / "teacher.pt")
    targets, weights = pseudo_targets(labels, "soft", weighted=True)
    if os.path.exists("/proc/self/maps"):  # Linux: the tensors' memory is a mapping of the cache file
        for t in (targets.values, targets.indices, weights):
            assert _mapped_file(t.data_ptr()) == str(tmp_path / "pl.pt")
    assert weights.dtype == torch.float16
    trained = split.with_targets(targets, weights)
    for batch in trained.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert batch.weights.dtype == torch.float32
    whole = next(iter(trained.batches(0)))
    assert whole.weights.dtype == torch.float32 and torch.equal(whole.weights, weights.float())
