"""Feeds a calibration set to onnxruntime's calibrators, one model-sized batch at a time."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from mke.calib.samples import check_calibration, load_calibration, model_inputs, sample_count
from mke.runtime.errors import MkeError


def as_samples(samples: Mapping[str, np.ndarray] | str | os.PathLike, model=None) -> dict[str, np.ndarray]:
    """A calibration set given as arrays or as an `.npz` path, checked against `model` when given."""
    if isinstance(samples, (str, os.PathLike)):
        return load_calibration(Path(samples), model)
    if model is not None:
        check_calibration(samples, model)
    return dict(samples)


class NpzCalibrationReader(CalibrationDataReader):
    """`get_next()` → {input name: (B, ...) float32}, B the model's fixed batch size (or `batch_size`
    where the batch axis is dynamic); None when the samples run out. `rewind()` starts over.

    Samples that do not fill a last batch are left out. `set_range` serves onnxruntime's strided
    MinMax calibration (`CalibStridedMinMax`), which calibrates on slices of batches.
    """

    def __init__(self, samples: Mapping[str, np.ndarray] | str | os.PathLike, model, batch_size: int = 1,
                 limit: int | None = None):
        self.samples = as_samples(samples, model)
        fixed = {spec.batch for spec in model_inputs(model).values() if spec.batch}
        if len(fixed) > 1:
            raise MkeError(f"the model's inputs have different fixed batch sizes {sorted(fixed)}")
        self.batch_size = fixed.pop() if fixed else int(batch_size)
        if self.batch_size < 1:
            raise MkeError(f"batch_size must be at least 1, got {batch_size}")
        total = sample_count(self.samples)
        if limit is not None:
            total = min(total, int(limit))
        self._batches = total // self.batch_size
        if self._batches == 0:
            raise MkeError(f"{total} calibration samples do not fill one batch of {self.batch_size}")
        self._start, self._end = 0, self._batches
        self._next = 0

    def __len__(self) -> int:
        return self._batches

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end = max(0, start_index), min(self._batches, end_index)
        self._next = self._start

    def rewind(self) -> None:
        self._start, self._end, self._next = 0, self._batches, 0

    def batch(self, index: int) -> dict[str, np.ndarray]:
        lo = index * self.batch_size
        return {name: a[lo:lo + self.batch_size] for name, a in self.samples.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return self.batch(self._next - 1)

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        """Every batch once, independent of get_next's position."""
        for i in range(self._batches):
            yield self.batch(i)
