"""The data MKE works on: D_l (modality α with labels), D_u (α + β, labels optional), a test split.

A `Split` holds one split as `{modality: tensor}` with samples first; it yields batches as smaller
`Split`s, so the trainer never needs to know the task. Data larger than memory: an input may be
`LazyInputs` instead of a tensor — samples made when a batch asks for them (frames memory-mapped
on disk, preprocessed per batch) — and such a split's batches come from a torch DataLoader whose
worker processes make them while the model trains (`loader` settings, `LoaderSettings`), in the
order and with the random draws of the in-memory batches: the same batches, to the last bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import torch

from mke.runtime.errors import MkeError


class SampleSource(Protocol):
    """Where `LazyInputs` gets its samples: `load(rows)` stacks samples `rows` (int64 numpy indices)
    into one tensor, samples first. It must pickle cheaply (DataLoader workers may receive it)."""

    def __len__(self) -> int: ...

    def load(self, rows: np.ndarray) -> torch.Tensor: ...


class TensorRows:
    """A tensor as a `SampleSource` (an in-memory part beside lazy ones, after `Split.concat`)."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __len__(self) -> int:
        return len(self.tensor)

    def load(self, rows: np.ndarray) -> torch.Tensor:
        return self.tensor[torch.from_numpy(rows)]


@dataclass(frozen=True)
class LoaderSettings:
    """How the batches of a lazy split are made (config section `loader`): DataLoader worker
    processes (0: in this process), page-locked memory for GPU copies, workers kept between passes,
    batches each worker prepares ahead. `of` resolves the config's automatic values for this machine."""

    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None

    @classmethod
    def of(cls, cfg: dict) -> "LoaderSettings":
        """`loader.num_workers` 0 = auto: the threads this process trains with less one (at least one, at
        most 8: the rest preprocess), -1 = none; `pin_memory` auto = on with a CUDA device;
        `prefetch_factor` 0 = 2 a worker."""
        c = cfg["loader"]
        workers = int(c["num_workers"])
        if workers < -1:
            raise MkeError(f"loader.num_workers must be -1 (none), 0 (auto) or a count, got {workers}")
        if workers == 0:
            workers = min(8, max(1, torch.get_num_threads() - 1))
        workers = max(0, workers)
        pin = c["pin_memory"]
        if pin not in ("auto", "always", "never"):
            raise MkeError(f"loader.pin_memory must be auto, always or never, got {pin!r}")
        device = cfg["device"]
        on_gpu = torch.cuda.is_available() if device == "auto" else torch.device(device).type == "cuda"
        pin = on_gpu if pin == "auto" else pin == "always"
        prefetch = int(c["prefetch_factor"]) or 2
        return cls(workers, pin and torch.cuda.is_available(), bool(c["persistent_workers"]) and workers > 0,
                   prefetch if workers > 0 else None)


class LazyInputs:
    """One input of a split whose samples are made on demand: rows of one or more `SampleSource`s.
    Indexing (an int, a slice, an index tensor or array) returns a tensor of just those samples;
    `view` a lazy subset; `cat` lays several end to end. `loader` says how a split made of it batches."""

    def __init__(self, sources: Sequence[SampleSource], source_of: np.ndarray | None = None,
                 row: np.ndarray | None = None, loader: LoaderSettings = LoaderSettings(),
                 sample: tuple[tuple[int, ...], torch.dtype] | None = None):
        self.sources, self.loader = list(sources), loader
        if source_of is None:
            source_of = np.concatenate([np.full(len(s), k, np.int32) for k, s in enumerate(self.sources)])
            row = np.concatenate([np.arange(len(s), dtype=np.int64) for s in self.sources])
        self.source_of, self.row = source_of, row
        if sample is None:  # one sample made now tells every sample's shape and dtype
            first = self.sources[0].load(np.zeros(1, np.int64))
            sample = tuple(first.shape[1:]), first.dtype
        self.sample_shape, self.dtype = sample

    def __len__(self) -> int:
        return len(self.row)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self),) + self.sample_shape)

    def dim(self) -> int:
        return 1 + len(self.sample_shape)

    def _positions(self, index) -> np.ndarray:
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        return np.arange(len(self))[index]

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        pos = self._positions(index)
        source_of, row = self.source_of[pos], self.row[pos]
        if len(self.sources) == 1:
            return self.sources[0].load(row)
        out = torch.empty((len(pos),) + self.sample_shape, dtype=self.dtype)
        for k in np.unique(source_of):
            at = np.flatnonzero(source_of == k)
            out[torch.from_numpy(at)] = self.sources[k].load(row[at])
        return out

    def view(self, index) -> "LazyInputs":
        pos = self._positions(index)
        return LazyInputs(self.sources, self.source_of[pos], self.row[pos], self.loader,
                          (self.sample_shape, self.dtype))

    def numpy(self) -> np.ndarray:
        """Every sample, made now and held in memory: for small lazy splits only."""
        return self[:].numpy()

    @staticmethod
    def cat(parts: Sequence["LazyInputs | torch.Tensor"]) -> "LazyInputs":
        first = next(p for p in parts if isinstance(p, LazyInputs))
        lazy = [p if isinstance(p, LazyInputs) else LazyInputs([TensorRows(p)], sample=(tuple(p.shape[1:]), p.dtype))
                for p in parts]
        if any((p.sample_shape, p.dtype) != (first.sample_shape, first.dtype) for p in lazy):
            raise MkeError(f"cannot concatenate inputs of samples {[(p.sample_shape, p.dtype) for p in lazy]}")
        sources, source_of, rows = [], [], []
        for p in lazy:
            source_of.append(p.source_of + len(sources))
            sources += p.sources
            rows.append(p.row)
        return LazyInputs(sources, np.concatenate(source_of), np.concatenate(rows), first.loader,
                          (first.sample_shape, first.dtype))


def split_inputs(sources: dict[str, SampleSource], cfg: dict) -> dict[str, "torch.Tensor | LazyInputs"]:
    """A split's inputs, each made by its `SampleSource` (all of one length): in memory, every sample
    made now, or — when they would take more than `loader.in_memory_mb` MB together — `LazyInputs`
    made per batch by DataLoader workers (`LoaderSettings.of(cfg)`). One sample of each is made now to
    size them. The values are the same either way."""
    n = len(next(iter(sources.values())))
    first = {name: s.load(np.zeros(1, np.int64)) for name, s in sources.items()}
    if n * sum(t.numel() * t.element_size() for t in first.values()) > cfg["loader"]["in_memory_mb"] * 2 ** 20:
        loader = LoaderSettings.of(cfg)
        return {name: LazyInputs([s], loader=loader, sample=(tuple(first[name].shape[1:]), first[name].dtype))
                for name, s in sources.items()}
    return {name: s.load(np.arange(n)) for name, s in sources.items()}


@dataclass(frozen=True)
class Share:
    """Where a data-parallel rank's batch sits in its global batch: sample i is the global batch's
    sample `rows[i]`, of `size` (padding excluded: a padded sample repeats the one it copies).
    Random draws per sample (augmentation) are made for all `size` samples, as in one process, and
    each rank keeps its rows: the ranks' samples get the one-process draws and every rank's
    generator stays where one process's would be."""

    rows: torch.Tensor   # int64 (n,)
    size: int

    @classmethod
    def of_rank(cls, size: int, rank: int, world: int) -> "Share":
        """Rank `rank`'s share of a global batch of `size` samples, as `batch_indices` cuts it."""
        share = -(-size // world)
        return cls((torch.arange(share) + rank * share) % size, size)

    def draw(self, make):
        """`make(k)`, a draw for k samples (samples first), made for the global batch; this rank's rows."""
        return make(self.size)[self.rows]


@dataclass(frozen=True)
class Split:
    inputs: dict[str, "torch.Tensor | LazyInputs"]
    targets: Any = None  # class ids, probabilities (classes in dim 1), or indexable compact probabilities
    weights: torch.Tensor | None = None  # loss weight per sample (or per pixel); batches have it in fp32
    share: Share | None = None  # a data-parallel rank's batch: its place in the global batch (`batches`)

    def __post_init__(self):
        sizes = {name: len(t) for name, t in self.inputs.items()}
        if self.targets is not None:
            sizes["targets"] = len(self.targets)
        if self.weights is not None:
            sizes["weights"] = len(self.weights)
        if len(set(sizes.values())) > 1:
            raise MkeError(f"split tensors disagree on the number of samples: {sizes}")

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def select(self, modalities: Sequence[str]) -> "Split":
        missing = [m for m in modalities if m not in self.inputs]
        if missing:
            raise MkeError(f"split has modalities {list(self.inputs)}, not {missing}")
        return replace(self, inputs={m: self.inputs[m] for m in modalities})

    def with_targets(self, targets: torch.Tensor, weights: torch.Tensor | None = None) -> "Split":
        return replace(self, targets=targets, weights=weights)

    def take(self, index: torch.Tensor) -> "Split":
        return Split(
            {m: t[index] for m, t in self.inputs.items()},
            None if self.targets is None else self.targets[index],
            None if self.weights is None else self.weights[index].float(),  # stored fp16 (ω) or fp32
        )

    def part(self, start: int, stop: int) -> "Split":
        """Samples `start` … `stop`-1 in order (a contiguous shard): in-memory tensors as views, no copy."""
        def cut(t):
            if t is None:
                return None
            if isinstance(t, LazyInputs):
                return t.view(slice(start, stop))
            return t[start:stop] if isinstance(t, torch.Tensor) else t[torch.arange(start, min(stop, len(t)))]

        return Split({m: cut(t) for m, t in self.inputs.items()}, cut(self.targets), cut(self.weights))

    def batches(self, batch_size: int = 0, shuffle: bool = False, generator: torch.Generator | None = None,
                *, rank: int = 0, world: int = 1) -> Iterator["Split"]:
        """Batches of `batch_size` samples, optionally shuffled; 0 = the whole split as one batch.

        `batch_size` is the global batch of the config. With `world` > 1 (data-parallel ranks) this
        rank gets its equal share of each global batch (`batch_indices`), so DDP's gradient average
        over the ranks is the one-process gradient up to float rounding wherever the global batch
        divides by `world`; each such batch carries its `Share` (where its samples sit in the global
        batch, for per-sample random draws). With `world` == 1, exactly the one-process batches."""
        if world > 1:
            sizes = global_batch_sizes(len(self), batch_size)
            for batch, size in zip(self._batches(batch_size, shuffle, generator, rank, world), sizes, strict=True):
                yield replace(batch, share=Share.of_rank(size, rank, world))
            return
        yield from self._batches(batch_size, shuffle, generator, rank, world)

    def _batches(self, batch_size: int, shuffle: bool, generator: torch.Generator | None, rank: int,
                 world: int) -> Iterator["Split"]:
        n = len(self)
        lazy = self.lazy
        if world == 1 and (batch_size <= 0 or batch_size >= n):  # one full batch: order does not change the gradient
            in_memory = (isinstance(self.targets, (torch.Tensor, type(None))) and lazy is None
                         and (self.weights is None or self.weights.dtype == torch.float32))
            yield self if in_memory else self.take(torch.arange(n))
            return
        indices = batch_indices(n, batch_size, shuffle, generator, rank=rank, world=world)
        if lazy is not None and lazy.num_workers > 0:
            yield from _loaded(self, list(indices), lazy)  # the permutation drawn now, as the first batch would
            return
        for index in indices:
            yield self.take(index)

    @property
    def lazy(self) -> LoaderSettings | None:
        """How this split's batches are loaded if an input is lazy (`LazyInputs`); None if all in memory."""
        return next((t.loader for t in self.inputs.values() if isinstance(t, LazyInputs)), None)

    def pin_memory(self) -> "Split":
        """This (in-memory) batch in page-locked memory: what a DataLoader with pin_memory calls."""
        def pin(t):
            return t.pin_memory() if isinstance(t, torch.Tensor) else t
        return Split({m: pin(t) for m, t in self.inputs.items()}, pin(self.targets), pin(self.weights))

    @staticmethod
    def concat(parts: Sequence["Split"]) -> "Split":
        mods = parts[0].modalities
        if any(p.modalities != mods for p in parts):
            raise MkeError(f"cannot concatenate splits with modalities {[p.modalities for p in parts]}")

        def cat(key):
            items = [getattr(p, key) for p in parts]
            if all(t is None for t in items):
                return None
            if any(t is None for t in items):
                raise MkeError(f"cannot concatenate splits where only some have {key}")
            return torch.cat(items) if isinstance(items[0], torch.Tensor) else type(items[0]).cat(items)

        def cat_inputs(items):
            lazy = any(isinstance(t, LazyInputs) for t in items)
            return LazyInputs.cat(items) if lazy else torch.cat(items)

        return Split({m: cat_inputs([p.inputs[m] for p in parts]) for m in mods}, cat("targets"), cat("weights"))


@dataclass(frozen=True)
class MKEData:
    """Everything one MKE run reads: the modality names, the three splits, the classes."""

    alpha: str
    beta: str
    labeled: Split
    unlabeled: Split
    test: Split
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        both = (self.alpha, self.beta)
        checks = [("labeled (D_l)", self.labeled, (self.alpha,), True),
                  ("unlabeled (D_u)", self.unlabeled, both, False),
                  ("test", self.test, both, True)]
        for name, split, mods, needs_targets in checks:
            missing = [m for m in mods if m not in split.inputs]
            if missing:
                raise MkeError(f"the {name} split lacks modality {missing}; it has {list(split.inputs)}")
            if needs_targets and split.targets is None:
                raise MkeError(f"the {name} split has no labels")
            if len(split) == 0:
                raise MkeError(f"the {name} split is empty")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def batch_indices(n: int, batch_size: int = 0, shuffle: bool = False, generator: torch.Generator | None = None,
                  *, rank: int = 0, world: int = 1) -> Iterator[torch.Tensor]:
    """The sample indices of each batch `Split.batches` yields, for a split of `n` samples.

    Global batches are `batch_size` consecutive entries of one permutation (`torch.randperm(n,
    generator)` with `shuffle`, drawn when the first batch is asked for, once per pass, as in one
    process; else 0 … n-1); 0 or ≥ n is one batch of all, with no draw. Rank `rank` of `world` takes the
    `rank`-th of `world` equal contiguous parts of each global batch. A global batch that does not
    divide by `world` is padded, as `torch.utils.data.DistributedSampler` pads, by repeating its first
    samples: those few count twice in that step's gradient, and every rank takes the same number of
    steps (DDP needs it)."""
    if world < 1 or not 0 <= rank < world:
        raise MkeError(f"data-parallel rank {rank} of world {world}: need world >= 1 and 0 <= rank < world")
    if batch_size <= 0 or batch_size >= n:
        order, batch_size = torch.arange(n), max(n, 1)
    else:
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        if world > 1:
            share = -(-len(index) // world)
            if share * world > len(index):
                index = torch.cat([index, index.repeat(world)[:share * world - len(index)]])
            index = index[rank * share:(rank + 1) * share]
        yield index


def global_batch_sizes(n: int, batch_size: int) -> list[int]:
    """The number of samples in each global batch `batch_indices` makes of `n` (padding excluded)."""
    if batch_size <= 0 or batch_size >= n:
        return [n]
    return [min(batch_size, n - start) for start in range(0, n, batch_size)]


class _PassBatches(torch.utils.data.Sampler):
    """A DataLoader's batch sampler whose batches are set before each pass (a loader, and its worker
    processes, outlive one pass: `persistent_workers`)."""

    def __init__(self):
        super().__init__()
        self.batches: list[torch.Tensor] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _SplitRows(torch.utils.data.Dataset):
    """A split as a map-style dataset: `__getitems__` makes a whole batch (one `Split.take`)."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, rows) -> Split:
        return self.split.take(torch.as_tensor(rows))


def _as_is(batch: Split) -> Split:
    return batch


def _loaded(split: Split, batches: list[torch.Tensor], settings: LoaderSettings) -> Iterator[Split]:
    """`batches` of `split` (index tensors) made by a DataLoader's workers, in order; the loader is
    kept on the split for its next pass."""
    cached = split.__dict__.get("_loader")
    if cached is None or cached[2] != settings:
        sampler = _PassBatches()
        # the dataset holds a copy of the split, not the split that keeps the loader: no reference cycle,
        # so a dropped split shuts its workers down at once (in a cycle, the garbage collector may
        # finalise the workers' queues first and each worker then takes 5 s to give up)
        loader = torch.utils.data.DataLoader(_SplitRows(replace(split)), batch_sampler=sampler, collate_fn=_as_is,
                                             num_workers=settings.num_workers, pin_memory=settings.pin_memory,
                                             persistent_workers=settings.persistent_workers,
                                             prefetch_factor=settings.prefetch_factor)
        cached = (loader, sampler, settings)
        object.__setattr__(split, "_loader", cached)
    loader, sampler, _ = cached
    sampler.batches = batches
    yield from loader
