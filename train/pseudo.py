"""Pseudo labels ỹ on D_u — the teacher's probabilities (softmax, or a sigmoid per class for multilabel
tasks: the task's label kind, `mke.train.label_kinds`) — cached on disk under the teacher's checksum.

The cache stores the teacher's soft predictions once, in the form the label kind keeps them (top-k
of a softmax, dense per-class probabilities); hard labels are derived from them (argmax, or each
class's probability ≥ 0.5), so switching `pseudo_labels.kind` never recomputes. A cache made by
another teacher (different checkpoint bytes) is stale and is recomputed. The file names its label
kind; files written before there were several hold softmax labels, which every single-label kind
reads alike. The cache is read memory-mapped (`torch.load(mmap=True)`): the labels of a D_u larger
than memory stay on disk until a batch indexes them.

The pass over D_u is sharded (`load_or_compute_sharded`): each torchrun rank labels its contiguous
part of D_u, in shards of `loader.pseudo_shard_samples` samples (rounded up to whole batches of
`pseudo_labels.batch_size`), and writes each shard atomically beside the cache as
`pseudo_labels.shard-<start>-<stop>.pt` (same format, keyed by the teacher's checksum); rank 0 merges
them into the one cache file, in today's format, and removes them. Shards start on batch boundaries,
so every batch the teacher sees is the one a single pass sees: the merged labels are the single
pass's, exactly (with `batch_size` 0 — all at once — several ranks each take a part, and the float
rounding of their smaller batches may differ). A pass killed midway resumes with the shards written.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path, file_sha256
from mke.train import distributed
from mke.train.label_kinds import LabelKind, label_kind

FORMAT = "mke-pseudo-labels/1"
SHARD_FORMAT = "mke-pseudo-label-shard/1"  # never read as a cache, nor a cache as a shard
UNNAMED_KIND = "classification"  # files without a "kind" predate multilabel: softmax labels


class PseudoLabelCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _read(self, path: Path | None = None, fmt: str = FORMAT) -> dict | None:
        path = self.path if path is None else path
        if not path.is_file():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # on disk until used
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError):
            return None  # unreadable: treat as absent and recompute
        return payload if isinstance(payload, dict) and payload.get("format") == fmt else None

    def shard_path(self, start: int, stop: int) -> Path:
        """Where the labels of samples `start` … `stop`-1 wait to be merged into the cache."""
        return self.path.with_name(f"{self.path.stem}.shard-{start}-{stop}{self.path.suffix}")

    def shard_files(self) -> list[Path]:
        """Every shard file beside the cache, of any teacher or range."""
        return sorted(self.path.parent.glob(f"{self.path.stem}.shard-*{self.path.suffix}"))

    @staticmethod
    def _unpack(payload: dict) -> "PseudoLabels":
        kind = label_kind(payload.get("kind", UNNAMED_KIND))
        return PseudoLabels(kind.unpack(payload["probs"]), kind, payload.get("confidence"))

    def load(self, teacher_checkpoint: str | Path) -> "PseudoLabels":
        """The cached labels; an error if they are missing or were made by another teacher."""
        cached = self._read()
        if cached is None or cached["teacher_sha256"] != file_sha256(teacher_checkpoint):
            raise MkeError(f"pseudo labels {self.path} are missing or stale for teacher {teacher_checkpoint}")
        return self._unpack(cached)

    def load_or_compute(self, teacher_checkpoint: str | Path,
                        compute: Callable[[], "torch.Tensor | Iterable[torch.Tensor]"],
                        *, kind: "str | LabelKind", top_k: int = 0) -> tuple["PseudoLabels", bool]:
        """Return `(labels, computed)`: the cached labels if made by this teacher, else fresh ones.

        `compute` returns dense probabilities of the task kind `kind` (classes in dim 1), whole or as
        consecutive batches (e.g. `mke.train.tta.tta_batches`); each batch is stored in the kind's form
        as it comes (`LabelKind.pack`: with `top_k` > 0 a softmax's k most likely classes, `TopKProbs`),
        with the exact confidence weight ω kept beside it (fp16), so the dense probabilities of D_u
        (1.1 GB for the built-in 2,000 RGB-D frames) are never held at once.
        """
        kind = label_kind(kind)
        teacher_sha = file_sha256(teacher_checkpoint)
        cached = self._read()
        if cached is not None and cached["teacher_sha256"] == teacher_sha:
            return self._unpack(cached), False
        payload = {"format": FORMAT, "teacher_sha256": teacher_sha,
                   **_packed(compute(), kind, top_k, teacher_checkpoint)}
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)
        return self._unpack(payload), True

    def load_or_compute_sharded(self, teacher_checkpoint: str | Path,
                                compute: Callable[[int, int], "torch.Tensor | Iterable[torch.Tensor]"], n: int,
                                *, kind: "str | LabelKind", top_k: int = 0, batch_size: int = 0,
                                shard_samples: int = 0) -> tuple["PseudoLabels", int]:
        """`load_or_compute` for a pass over `n` samples in shards: returns `(labels, samples labelled
        here)`. `compute(start, stop)` gives the probabilities of samples `start` … `stop`-1 as
        `load_or_compute`'s `compute` does, in batches of `batch_size`. Called by every torchrun rank
        (mke.train.distributed), each labels its shards (`shard_ranges`), those of this teacher already
        written are kept; rank 0 merges them into the cache while the others wait, then all read it."""
        kind = label_kind(kind)
        me = distributed.joined()
        rank, world = me.rank, me.size
        teacher_sha = file_sha256(teacher_checkpoint)
        cached = self._read() if rank == 0 else None
        if distributed.broadcast_object(cached is not None and cached["teacher_sha256"] == teacher_sha):
            return self._unpack(cached if cached is not None else self._read()), 0
        labelled = 0
        for start, stop in shard_ranges(n, batch_size, shard_samples, rank, world):
            if self._shard(start, stop, teacher_sha, kind, top_k) is not None:
                continue  # written before a crash, by this teacher
            payload = {"format": SHARD_FORMAT, "teacher_sha256": teacher_sha, "top_k": top_k, "start": start,
                       "stop": stop, **_packed(compute(start, stop), kind, top_k, teacher_checkpoint)}
            if len(kind.unpack(payload["probs"])) != stop - start:
                raise MkeError(f"teacher {teacher_checkpoint} labelled {len(kind.unpack(payload['probs']))} samples "
                               f"for the {stop - start} of shard {start}-{stop}")
            with atomic_path(self.shard_path(start, stop)) as tmp:
                torch.save(payload, tmp)
            labelled += stop - start
        distributed.barrier()  # every rank's shards are written
        if rank == 0:
            self._merge(shard_ranges(n, batch_size, shard_samples, 0, world, every_rank=True), teacher_checkpoint,
                        teacher_sha, kind, top_k)
        distributed.barrier()  # the cache is in place
        return self.load(teacher_checkpoint), labelled

    def _shard(self, start: int, stop: int, teacher_sha: str, kind: LabelKind, top_k: int) -> dict | None:
        shard = self._read(self.shard_path(start, stop), SHARD_FORMAT)
        same = shard is not None and (shard["teacher_sha256"], shard["kind"], shard["top_k"], shard["start"],
                                      shard["stop"]) == (teacher_sha, kind.name, top_k, start, stop)
        return shard if same else None

    def _merge(self, ranges: list[tuple[int, int]], teacher_checkpoint, teacher_sha: str, kind: LabelKind,
               top_k: int) -> None:
        """The shards of `ranges`, in order, as the one cache file; then every shard file is removed."""
        shards = []
        for start, stop in ranges:
            shard = self._shard(start, stop, teacher_sha, kind, top_k)
            if shard is None:
                raise MkeError(f"pseudo-label shard {self.shard_path(start, stop)} of teacher {teacher_checkpoint} "
                               "is missing or unreadable after the pass: run the same command again to redo it")
            shards.append(shard)
        payload = {"format": FORMAT, "teacher_sha256": teacher_sha, "kind": kind.name,
                   "probs": kind.cat([kind.unpack(s["probs"]) for s in shards]),
                   "confidence": torch.cat([s["confidence"] for s in shards])}
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)
        for path in self.shard_files():
            path.unlink(missing_ok=True)


def shard_ranges(n: int, batch_size: int, shard_samples: int, rank: int = 0, world: int = 1, *,
                 every_rank: bool = False) -> list[tuple[int, int]]:
    """(start, stop) of the shards of `n` samples rank `rank` of `world` labels, in order (all ranks'
    with `every_rank`). With `batch_size` > 0: shards of `shard_samples` (≤ 0: no limit), at most a
    rank's share, rounded up to whole batches, dealt to the ranks in contiguous runs — the same grid on
    any number of ranks whose share is at least `shard_samples`, so a pass resumed on another number
    of ranks keeps its shards. With `batch_size` 0 (all at once): one part a rank."""
    ranks = range(world) if every_rank else [rank]
    if batch_size <= 0:
        cuts = [r * n // world for r in range(world + 1)]
        return [(cuts[r], cuts[r + 1]) for r in ranks if cuts[r + 1] > cuts[r]]
    share = -(-n // world)
    size = -(-min(shard_samples if shard_samples > 0 else share, share) // batch_size) * batch_size
    grid = [(a, min(a + size, n)) for a in range(0, n, size)]
    return [s for r in ranks for s in grid[r * len(grid) // world:(r + 1) * len(grid) // world]]


def _packed(batches: "torch.Tensor | Iterable[torch.Tensor]", kind: LabelKind, top_k: int, teacher_checkpoint) -> dict:
    """The teacher's probabilities, batch by batch, in the form the cache keeps them (`LabelKind.pack`),
    with the confidence weight ω of each element (fp16)."""
    stored, confidence = [], []
    for probs in [batches] if isinstance(batches, torch.Tensor) else batches:
        if probs.ndim < 2 or not torch.isfinite(probs).all():
            raise MkeError(f"teacher {teacher_checkpoint} produced invalid pseudo labels (shape {tuple(probs.shape)})")
        confidence.append(kind.confidence(probs).half())
        stored.append(kind.pack(probs, top_k))
    if not stored:
        raise MkeError(f"teacher {teacher_checkpoint} produced no pseudo labels: the unlabeled split is empty")
    return {"kind": kind.name, "probs": kind.cat(stored), "confidence": torch.cat(confidence)}


class PseudoLabels:
    """The teacher's soft labels on D_u in their label kind's stored form (dense or top-k probabilities),
    the kind's operations, and the confidence weight ω per element."""

    def __init__(self, probs, kind: "str | LabelKind", confidence: torch.Tensor | None = None):
        self.probs = probs
        self.kind = label_kind(kind)
        self.confidence = confidence

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def nbytes_per_sample(self) -> int:
        probs = self.kind.nbytes(self.probs)
        conf = 0 if self.confidence is None else self.confidence.numel() * 2
        return (probs + conf) // max(1, len(self))


def pseudo_targets(labels: PseudoLabels, kind: str, weighted: bool):
    """Targets and optional confidence weights ω for training: `kind` is "soft" (the probabilities) or
    "hard" (the labels' kind's hard labels: class ids, or 0/1 per class)."""
    if kind not in ("soft", "hard"):
        raise MkeError(f"pseudo_labels.kind must be 'soft' or 'hard', got {kind!r}")
    probs = labels.probs
    weights = None
    if weighted:  # ω as the cache stores it (fp16, memory-mapped); each batch gets it in fp32 (`Split.take`)
        weights = labels.confidence if labels.confidence is not None else labels.kind.confidence(probs[:])
    if kind == "soft":
        return probs, weights
    return labels.kind.hard(probs), weights
