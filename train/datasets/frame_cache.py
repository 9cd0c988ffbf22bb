"""Frame caches larger than memory: written frame by frame into memory-mapped files, read back mapped.

A split's cache is one uncompressed `.npz` (as np.savez writes it), made in two steps so that no
split ever sits in memory whole: `allocate_parts` lays out one empty `.npy` per field at its full
size (sparse until written) under `<folder>/parts/`; the writer fills frames in place, in any order
(`open_parts` maps them; several processes may `pwrite` into them at `part_offset`); `pack_parts`
then copies the parts into the `.npz` in 1 MiB pieces and removes them. `npz_memmaps` reads each
member of such an `.npz` memory-mapped where it lies in the file: a frame comes from disk when used.
Used by the built-in RGB-D rooms (`builtin_rgbd`) and the NYU Depth V2 cache (`tasks/nyuv2`).
"""
from __future__ import annotations

import shutil
import struct
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

Layout = dict[str, tuple[tuple[int, ...], np.dtype]]  # field → (shape, frames first; dtype)


def part_path(folder: Path, split: str, field: str) -> Path:
    return Path(folder) / "parts" / f"{split}.{field}.npy"


def allocate_parts(folder: Path, split: str, layout: Layout) -> None:
    """One empty `.npy` file per field of `split`, at its full size (zeros, sparse on disk until written)."""
    for field, (shape, dtype) in layout.items():
        path = part_path(folder, split, field)
        path.parent.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        del array


def open_parts(folder: Path, split: str, fields: Sequence[str]) -> dict[str, np.memmap]:
    """The part files of `split` mapped for writing in place (`array[i] = frame`; flushed when dropped)."""
    return {field: np.load(part_path(folder, split, field), mmap_mode="r+") for field in fields}


def part_offset(folder: Path, split: str, field: str) -> int:
    """Where a part file's data start: frame i of size b bytes lies at `part_offset + i * b`."""
    return np.load(part_path(folder, split, field), mmap_mode="r").offset


def pack_parts(folder: Path, split: str, order: Sequence[str], target: Path | None = None) -> Path:
    """The part files of `split` into `target` (default `<folder>/<split>.npz`), uncompressed as np.savez
    writes it — the same arrays, byte for byte — members in `order` (fields it does not name last, by
    name), copied in 1 MiB pieces; the parts are removed, and the parts folder once empty."""
    target = Path(target) if target is not None else Path(folder) / f"{split}.npz"
    rank = {field: i for i, field in enumerate(order)}
    parts = sorted(part_path(folder, split, "x").parent.glob(f"{split}.*.npy"))
    parts.sort(key=lambda p: rank.get(p.name[len(split) + 1:-4], len(rank)))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in parts:
            with open(path, "rb") as src, zf.open(path.name.split(".", 1)[1], "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            path.unlink()
    parts_dir = part_path(folder, split, "x").parent
    if parts_dir.is_dir() and not any(parts_dir.iterdir()):
        shutil.rmtree(parts_dir, ignore_errors=True)
    return target


def npz_memmaps(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed .npz (np.savez), each memory-mapped where it lies in the file
    (`MappedArray`): a frame is read from disk when used, and pages the OS may drop again; pickled (to
    a DataLoader worker) it travels as its place in the file. Copy-on-write: an array may be changed
    in memory, the file never is. Members that are compressed,
    empty or in a .npy version other than 1 and 2 are read into memory."""
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type == zipfile.ZIP_STORED:
                f.seek(info.header_offset)
                local = f.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise ValueError(f"member {info.filename} has no local header")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                f.seek(info.header_offset + 30 + name_len + extra_len)
                version = np.lib.format.read_magic(f)
                read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                if version in read:
                    shape, fortran, dtype = read[version](f)
                    if int(np.prod(shape)) > 0 and not dtype.hasobject:
                        out[key] = _mapped(str(path), dtype, tuple(shape), f.tell(), "F" if fortran else "C")
                        continue
            with zf.open(info) as member:
                out[key] = np.lib.format.read_array(member, allow_pickle=False)
    return out


class MappedArray(np.memmap):
    """A memory-mapped `.npz` member that pickles as where it lies in its file (path, dtype, shape,
    offset, order), not as its bytes: a DataLoader worker started by spawn or forkserver (macOS; Linux
    from Python 3.14) maps the same file instead of receiving a copy of the whole split. A view of
    part of it pickles as its bytes, as any array does."""

    _where: tuple | None = None  # (path, dtype, shape, offset, order, address of the first byte)

    def __reduce__(self):
        where = self._where
        if where is not None and (self.__array_interface__["data"][0], self.shape) == (where[5], where[2]):
            return _mapped, where[:5]
        return np.ndarray.__reduce__(np.asarray(self))


def _mapped(path: str, dtype, shape: tuple, offset: int, order: str) -> MappedArray:
    out = MappedArray(path, dtype=dtype, mode="c", shape=shape, offset=offset, order=order)
    out._where = (path, dtype, shape, offset, order, out.__array_interface__["data"][0])
    return out
