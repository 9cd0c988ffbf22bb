"""The calibration set: a seeded choice of preprocessed samples, kept as an `.npz` keyed by input name.

The file is the one NVIDIA Model Optimizer reads (`--calibration_data`): one float32 array per model
input, samples along axis 0, each sample shaped like the model input without its batch axis. It is
written once on the workstation and read by every quantizer, so it is checked against the model's
inputs on the way in and out: a calibration set for another model, resolution or depth encoding
must fail loudly, not calibrate garbage.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.fileio import atomic_path

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 500  # NVIDIA advises 500+ calibration samples for INT8
Samples = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ModelInput:
    """One graph input: `shape` holds ints for fixed axes and None for dynamic ones (batch first)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    @property
    def sample_shape(self) -> tuple[int | None, ...]:
        return self.shape[1:]

    @property
    def batch(self) -> int | None:
        return self.shape[0] if self.shape else None

    @property
    def shape_text(self) -> str:
        """"(?, 3, 48, 64)": the shape as messages print it (the runners' way), "?" for a dynamic dimension."""
        from mke.runtime.live.backends.base import format_shape

        return format_shape(self.shape)


def model_inputs(model) -> dict[str, ModelInput]:
    """The real inputs of an ONNX model (a path or a ModelProto), initializers left out."""
    import onnx
    from onnx import helper

    proto = model if isinstance(model, onnx.ModelProto) else load_onnx(model, load_external_data=False)
    initializers = {t.name for t in proto.graph.initializer}
    out = {}
    for vi in proto.graph.input:
        if vi.name in initializers:
            continue
        tensor = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        out[vi.name] = ModelInput(vi.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    return out


def load_onnx(path, load_external_data: bool = True):
    """An ONNX model from `path`, or an MkeError saying why not (the wording of every ONNX reader here)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except FileNotFoundError:
        raise MkeError(f"ONNX model file {path} does not exist") from None
    except Exception as exc:  # protobuf's DecodeError and friends for files that are not ONNX
        raise MkeError(f"{path} is not a readable ONNX model ({exc.__class__.__name__}: {str(exc)[:200]})") from None


def sample_count(samples: Samples, source: str = "calibration data") -> int:
    """The number of samples (axis 0), the same for every input, or an MkeError saying which differ."""
    if not samples:
        raise MkeError(f"{source}: holds no arrays; expected one (N, ...) array per model input")
    counts = {name: (np.shape(a)[0] if len(np.shape(a)) else 0) for name, a in samples.items()}
    if len(set(counts.values())) != 1:
        raise MkeError(f"{source}: inputs hold different sample counts {counts}; every input needs one entry per sample")
    return next(iter(counts.values()))


def select_samples(arrays: Samples, n: int = DEFAULT_SAMPLES, seed: int = 0,
                   classes: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """`n` samples (the same rows of every input) drawn without replacement, seeded, in source order.

    `classes`: optional (N, K) booleans, which classes each sample shows (for MKE, the teacher's pseudo
    labels of D_u). The draw is then stratified: first, rarest class first, up to `n // (2K)` samples
    (at least one) that show each class — so every class the teacher predicts is represented, however
    rare — then the rest at random. Without it, all `n` are drawn at random.
    With fewer than `n` samples available all are used, with a warning: NVIDIA advises 500+.
    """
    total = sample_count(arrays, "samples to calibrate on")
    if n < 1:
        raise MkeError(f"the calibration set needs at least one sample, got n={n}")
    if total == 0:
        raise MkeError("samples to calibrate on: the arrays hold no samples")
    if total < n:
        log.warning("only %d samples to calibrate on (asked for %d; NVIDIA advises 500+)", total, n)
    rng = np.random.default_rng(seed)
    if classes is None:
        rows = rng.choice(total, size=min(n, total), replace=False)
    else:
        rows = _stratified_rows(np.asarray(classes, bool), min(n, total), rng)
    rows = np.sort(rows)
    # only the drawn rows are read: an input may be larger than memory (memory-mapped, or a lazy split's
    # inputs, mke.train.data.LazyInputs, which make a sample when it is indexed)
    return {name: np.ascontiguousarray(np.asarray(a[rows]), dtype=np.float32) for name, a in arrays.items()}


def _stratified_rows(classes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if classes.ndim != 2:
        raise MkeError(f"classes must be (samples, classes) booleans, got shape {classes.shape}")
    total, k = classes.shape
    chosen = np.zeros(total, bool)
    per_class = max(1, n // (2 * k))
    for c in np.argsort(classes.sum(axis=0), kind="stable"):  # rarest first: they have the fewest to pick from
        have = int((chosen & classes[:, c]).sum())
        candidates = np.flatnonzero(classes[:, c] & ~chosen)
        take = min(per_class - have, len(candidates), n - int(chosen.sum()))
        if take > 0:
            chosen[rng.choice(candidates, size=take, replace=False)] = True
    rest = np.flatnonzero(~chosen)
    chosen[rng.choice(rest, size=n - int(chosen.sum()), replace=False)] = True
    return np.flatnonzero(chosen)


def save_calibration(path: str | os.PathLike, samples: Samples) -> Path:
    """Write `samples` as an uncompressed `.npz` keyed by input name, atomically (no half-written file)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise MkeError(f"{path}: a calibration set is an .npz file (NVIDIA Model Optimizer's format); name it *.npz")
    sample_count(samples, str(path))
    arrays = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in samples.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, **arrays)
    return path


def load_calibration(path: str | os.PathLike, model=None) -> dict[str, np.ndarray]:
    """Read a calibration `.npz`; with `model` (an ONNX path or ModelProto), check it fits the model's inputs."""
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"{path}: no such calibration set; make one with mke.calib.samples.save_calibration")
    try:
        with np.load(path, allow_pickle=False) as z:
            samples = {name: z[name] for name in z.files}
    except Exception as exc:
        raise MkeError(f"{path}: not a readable .npz calibration set ({exc.__class__.__name__}: {exc})") from None
    if model is not None:
        check_calibration(samples, model, source=str(path))
    return samples


def check_calibration(samples: Samples, model, source: str = "calibration data") -> int:
    """Check samples against the model's inputs (names, per-sample shapes, dtype); return the sample count.

    Dynamic axes of the model (None) accept any size. The batch axis of the model is not compared:
    samples are batched to the model's batch size when read (a last partial batch is left out).
    """
    inputs = model_inputs(model)
    missing = sorted(set(inputs) - set(samples))
    unknown = sorted(set(samples) - set(inputs))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown input(s) {', '.join(unknown)}")
        raise MkeError(f"{source}: {'; '.join(parts)}; the model's inputs are {', '.join(inputs)}")
    count = sample_count(samples, source)
    if count == 0:
        raise MkeError(f"{source}: holds no samples")
    for name, spec in inputs.items():
        array = samples[name]
        got = tuple(array.shape[1:])
        want = spec.sample_shape
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
            shown = tuple("?" if w is None else w for w in want)
            raise MkeError(f"{source}: input '{name}' has samples of shape {got}, the model wants {shown} per sample "
                           f"(model input {tuple('?' if d is None else d for d in spec.shape)}); "
                           f"recalibrate with data preprocessed for this model")
        if array.dtype != spec.dtype:
            raise MkeError(f"{source}: input '{name}' is {array.dtype}, the model wants {spec.dtype}")
    return count


def ensure_calibration(path: str | os.PathLike, model, arrays: Samples | None = None, n: int = DEFAULT_SAMPLES,
                       seed: int = 0, classes: np.ndarray | None = None) -> Path:
    """Reuse the calibration set at `path` when it fits `model` (and, given `arrays`, holds exactly the
    seeded selection from them, stratified by `classes` when given: `select_samples`); otherwise select
    from `arrays` and write it anew.

    Without `arrays`, an unusable file is an MkeError: there is nothing to remake it from.
    """
    path = Path(path)
    wanted = select_samples(arrays, n, seed, classes) if arrays is not None else None
    if path.is_file():
        try:
            existing = load_calibration(path, model)
        except MkeError as exc:
            if wanted is None:
                raise
            log.info("remaking the calibration set: %s", exc)
        else:
            if wanted is None or (existing.keys() == wanted.keys()
                                  and all(np.array_equal(existing[k], wanted[k]) for k in wanted)):
                log.info("reusing the calibration set %s (%d samples)", path, sample_count(existing))
                return path
            log.info("remaking the calibration set %s: its samples differ from the requested selection", path)
    elif wanted is None:
        raise MkeError(f"{path}: no such calibration set, and no samples given to make one")
    check_calibration(wanted, model, source=f"samples for {path}")
    return save_calibration(path, wanted)
