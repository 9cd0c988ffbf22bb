"""Model checkpoints: written atomically, read back with `weights_only=True`.

A checkpoint is `{"format": "mke-checkpoint/1", "state_dict": ..., "meta": {...}}` where `meta` holds
only plain types (what `weights_only` loading allows): task, method, modalities, model settings.

A training state (`*.state.pt`, mke.train.fit's per-epoch resume point) is `{"format":
"mke-train-state/1", "fingerprint": ..., "epoch": ..., ...}` with tensors, plain types and RNG states
as uint8 tensors, so it too loads with `weights_only=True`.
"""
from __future__ import annotations

import pickle
import sys
import zipfile
from pathlib import Path

import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path

FORMAT = "mke-checkpoint/1"
STATE_FORMAT = "mke-train-state/1"


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict) -> None:
    payload = {"format": FORMAT, "state_dict": model.state_dict(), "meta": meta}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise MkeError(f"checkpoint {path} cannot be read (truncated or not a PyTorch file): {exc}") from None


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Return `(state_dict, meta)`; a missing, truncated or foreign file is an `MkeError`."""
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"checkpoint {path} does not exist")
    payload = _load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MkeError(f"checkpoint {path} is not an MKE Edge checkpoint (expected format {FORMAT})")
    return payload["state_dict"], payload["meta"]


def warm_start(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Copy into `model` every tensor of the checkpoint at `path` whose name and shape match — the
    teacher's RGB encoder and decoder into a student's RGB branch — and return their names; the rest
    (a depth encoder, the fusion) keeps its fresh initialisation."""
    state, _ = load_checkpoint(path)
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not any(v.is_floating_point() for v in matched.values()):
        raise MkeError(f"no weight of checkpoint {path} fits the student (names and shapes differ); "
                       "set student.init: scratch")
    model.load_state_dict(matched, strict=False)
    return sorted(matched)


def save_train_state(path: str | Path, state: dict) -> None:
    """Write a training state (mke.train.fit) atomically: a kill mid-write leaves the previous one."""
    with atomic_path(path) as tmp:
        torch.save({"format": STATE_FORMAT, **state}, tmp)


def load_train_state(path: str | Path, fingerprint: str, quiet: bool = False) -> dict | None:
    """The training state at `path` if there is one made for `fingerprint` (the same model and
    settings); None if there is none. One that is unreadable or made for other settings is ignored
    with a notice (unless `quiet`: the ranks other than 0): training starts over and overwrites it at
    its first epoch's end."""
    path = Path(path)
    if not path.is_file():
        return None
    why = None
    try:
        state = _load(path)
    except MkeError as exc:
        state, why = None, str(exc)
    if why is None and (not isinstance(state, dict) or state.get("format") != STATE_FORMAT):
        why = "not an MKE Edge training state"
    if why is None and state["fingerprint"] != fingerprint:
        why = "it was made for another model or other settings"
    if why is None:
        return state
    if not quiet:
        print(f"mke-train: notice: not resuming from {path}: {why}", file=sys.stderr, flush=True)
    return None
