"""Frames made when they are indexed: data larger than memory, one frame at a time.

A `FrameArray` stands where an (N, ...) numpy array of frames would (a `FrameSet` field): it knows
its shape and dtype up front, and indexing it — an int, a slice, an index or boolean array, a
tuple whose first item is one of those — calls `read(i)` for just the frames asked and returns
numpy, so `PreprocessedFrames.load(rows)` in a DataLoader worker reads only that batch's files.
`read` is any picklable function of the frame index (a manifest's per-sample files, NYU's raw
pairs): the array pickles as that function — paths, not pixels — and holds no frame itself.
`rows_of` makes one of rows of another array — a split's clips picked from a memory-mapped cache
without copying them, int16 PCM read as float32 clip by clip.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from mke.runtime.errors import MkeError


class FrameArray:
    """N frames of `frame_shape` and `dtype`, frame i made by `read(i)` each time it is indexed."""

    def __init__(self, read: Callable[[int], np.ndarray], length: int, frame_shape: tuple[int, ...],
                 dtype, name: str = "frames"):
        self.read, self.length, self.frame_shape = read, int(length), tuple(int(x) for x in frame_shape)
        self.dtype, self.name = np.dtype(dtype), name

    def __len__(self) -> int:
        return self.length

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.length,) + self.frame_shape

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    def frame(self, i: int) -> np.ndarray:
        """Frame `i` (negative counts from the end), checked to have the array's shape and dtype."""
        if not -self.length <= i < self.length:
            raise IndexError(f"frame {i} of {self.name}, which has {self.length}")
        out = np.asarray(self.read(i % self.length))
        if out.shape != self.frame_shape or out.dtype != self.dtype:
            raise MkeError(f"{self.name}: frame {i % self.length} was read as {out.dtype} {out.shape}, but the "
                           f"split's frames are {self.dtype} {self.frame_shape}")
        return out

    def rows(self, index) -> np.ndarray:
        """The frame indices `index` (a slice, index or boolean array, list or tensor) selects."""
        if isinstance(index, slice):
            return np.arange(*index.indices(self.length))
        rows = np.asarray(index.numpy() if hasattr(index, "numpy") else index)
        if rows.dtype == bool:
            if rows.shape != (self.length,):
                raise IndexError(f"a boolean index of shape {rows.shape} on {self.length} frames")
            return np.flatnonzero(rows)
        if rows.size and not np.issubdtype(rows.dtype, np.integer):
            raise IndexError(f"frames are indexed by integers, slices or booleans, not {rows.dtype}")
        return rows.astype(np.int64).reshape(-1)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, tuple):
            first, rest = (index[0] if index else slice(None)), index[1:]
            picked = self[first]
            return picked[rest] if isinstance(first, (int, np.integer)) else picked[(slice(None),) + rest]
        if isinstance(index, (int, np.integer)):
            return self.frame(int(index))
        rows = self.rows(index)
        out = np.empty((len(rows),) + self.frame_shape, self.dtype)
        for k, i in enumerate(rows):
            out[k] = self.frame(int(i))
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.frame(i) for i in range(self.length))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every frame, read now and held in memory (what np.asarray gives): for small fields only."""
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"FrameArray({self.name!r}, shape={self.shape}, dtype={self.dtype})"


class ArrayRows:
    """Frame i of a `rows_of` array: row `rows[i]` of `array` (row i when `rows` is None), as float32 in
    −1..1 when `pcm` (int16 samples / 32768). Pickles with its array: a memory-mapped cache member
    as its place in the file (`frame_cache.MappedArray`), an array in memory as its bytes."""

    def __init__(self, array: np.ndarray, rows: np.ndarray | None = None, pcm: bool = False):
        self.array, self.rows, self.pcm = array, rows, pcm

    def __call__(self, i: int) -> np.ndarray:
        x = self.array[i if self.rows is None else self.rows[i]]
        return x.astype(np.float32) / np.float32(32768.0) if self.pcm else x


def rows_of(array: np.ndarray, rows: np.ndarray | None = None, pcm: bool = False, name: str = "frames") -> FrameArray:
    """Rows `rows` of `array` (all, in order, when None), read from it when indexed: a subset of a
    memory-mapped cache that stays on disk. `pcm`: int16 PCM (N, T) read as float32 in −1..1, each clip
    as `x.astype(np.float32) / np.float32(32768.0)` — the values of converting the whole array at once."""
    if pcm and array.dtype != np.int16:
        raise MkeError(f"{name}: PCM audio must be int16, got {array.dtype}")
    rows = None if rows is None else np.asarray(rows, np.int64)
    return FrameArray(ArrayRows(array, rows, pcm), len(array) if rows is None else len(rows), array.shape[1:],
                      np.float32 if pcm else array.dtype, name=name)
