"""Training states: the per-epoch resume points of `mke.train.fit`.

A training state (`*.state.pt`) is `{"format": "mke-train-state/1", "fingerprint": ..., "epoch": ...,
...}`: model, optimizer, learning-rate schedule, GradScaler, epochs and steps done, the shuffle
generator and every rank's RNG states (uint8 tensors), so it loads with `weights_only=True`. Rank 0
writes it atomically (a kill mid-write leaves the previous one); it is resumed only by a training
with the same fingerprint (`fingerprint`: the model's tensors, optimizer settings, T, seed, split
size, precision and the caller's tag), on any number of ranks.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path
from mke.train import distributed
from mke.train.checkpoint import read_torch_file

FORMAT = "mke-train-state/1"


def rank_seed(seed: int, rank: int) -> int:
    """Rank r's seed for noise and dropout (rank 0's is `seed`, as in one process): the ranks' shares
    of a batch draw different noise."""
    return seed + 1_000_003 * rank


def fingerprint(model: torch.nn.Module, optim, reg, seed: int, samples: int, precision: str, tag: str = "") -> str:
    """What a training-state file must match to be resumed: the model's tensors (names, shapes), the
    optimizer settings (a dataclass), T, the seed, the split's size, the precision and the caller's
    `tag` (e.g. the teacher whose pseudo labels the split holds) — not the number of ranks."""
    what = {"tensors": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "optim": dataclasses.asdict(optim), "reg": repr(reg), "seed": seed, "samples": samples,
            "precision": precision, "tag": tag}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def write(path: str | Path, state: dict) -> None:
    """Write a training state atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def read(path: str | Path, fingerprint: str, quiet: bool = False) -> dict | None:
    """The training state at `path` if there is one made for `fingerprint` (the same model and
    settings); None if there is none. One that is unreadable or made for other settings is ignored
    with a notice (unless `quiet`: the ranks other than 0): training starts over and overwrites it at
    its first epoch's end."""
    path = Path(path)
    if not path.is_file():
        return None
    why = None
    try:
        state = read_torch_file(path)
    except MkeError as exc:
        state, why = None, str(exc)
    if why is None and (not isinstance(state, dict) or state.get("format") != FORMAT):
        why = "not an MKE Edge training state"
    if why is None and state["fingerprint"] != fingerprint:
        why = "it was made for another model or other settings"
    if why is None:
        return state
    if not quiet:
        print(f"mke-train: notice: not resuming from {path}: {why}", file=sys.stderr, flush=True)
    return None


@dataclasses.dataclass
class Trainer:
    """What a training state saves and restores: the model and the objects that step it."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object          # an LR scheduler, or None (constant learning rate)
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # the shuffle and augmentation generator, the same on every rank
    device: str


def _rng_states(device: str) -> dict:
    """This rank's global RNG states (CPU, and CUDA's on a GPU) as uint8 tensors."""
    states = {"cpu": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def save(path: Path, fingerprint: str, epoch: int, step: int, t: Trainer) -> None:
    """Every rank's RNG states gathered to rank 0, which writes the file (atomically). Every rank calls it."""
    rng = distributed.all_gather_object(_rng_states(t.device))
    me = distributed.world()
    if me.main:
        write(path, {"fingerprint": fingerprint, "epoch": epoch, "step": step, "world": me.size,
                     "model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
                     "schedule": None if t.schedule is None else t.schedule.state_dict(),
                     "scaler": t.scaler.state_dict(), "generator": t.generator.get_state(), "rng": rng})


def resume(path: Path, fingerprint: str, t: Trainer, seed: int) -> tuple[int, int]:
    """(epochs done, steps done) from the training-state file at `path` if it matches, else (0, 0);
    every rank calls it. Ranks that did not exist when it was written (resumed on more ranks) seed
    their RNG from the seed, rank and epoch: their noise and dropout then differ from an
    uninterrupted run's."""
    me = distributed.world()
    state = read(path, fingerprint, quiet=not me.main)
    epochs = distributed.all_gather_object(None if state is None else state["epoch"])
    if len(set(epochs)) > 1:
        raise MkeError(f"the ranks read different training states at {path} (epochs {epochs}): the run folder "
                       "must be on a filesystem every rank sees")
    if state is None:
        return 0, 0
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    if t.schedule is not None:
        t.schedule.load_state_dict(state["schedule"])
    t.scaler.load_state_dict(state["scaler"])
    t.generator.set_state(state["generator"])
    if me.rank < len(state["rng"]):
        mine = state["rng"][me.rank]
        torch.set_rng_state(mine["cpu"])
        if "cuda" in mine and torch.device(t.device).type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"])
    else:
        torch.manual_seed(rank_seed(seed, me.rank) + state["epoch"])
    if me.main:
        print(f"mke-train: resuming {path.name} after epoch {state['epoch']} (step {state['step']}, written by "
              f"{state['world']} rank{'s' if state['world'] > 1 else ''})", file=sys.stderr, flush=True)
    return state["epoch"], state["step"]
