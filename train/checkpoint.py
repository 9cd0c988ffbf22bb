"""Model checkpoints: written atomically, read back with `weights_only=True`.

A checkpoint is `{"format": "mke-checkpoint/1", "state_dict": ..., "meta": {...}}` where `meta` holds
only plain types (what `weights_only` loading allows): task, method, modalities, model settings.

Training states (per-epoch resume points) are mke.train.train_state's; they load through
`read_torch_file` too.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path

FORMAT = "mke-checkpoint/1"


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict) -> None:
    payload = {"format": FORMAT, "state_dict": model.state_dict(), "meta": meta}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_torch_file(path: Path) -> object:
    """A file torch.save wrote, loaded with `weights_only=True` onto the CPU; unreadable is an MkeError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise MkeError(f"checkpoint {path} cannot be read (truncated or not a PyTorch file): {exc}") from None


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Return `(state_dict, meta)`; a missing, truncated or foreign file is an `MkeError`."""
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"checkpoint {path} does not exist")
    payload = read_torch_file(path)
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
