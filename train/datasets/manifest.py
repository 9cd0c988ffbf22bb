"""A manifest of a user's own RGB-D data: one sample per row, in CSV or JSON Lines.

CSV (header required, ``depth`` and ``mask`` optional or empty)::

    rgb,depth,mask
    frames/0001.jpg,frames/0001_depth.png,labels/0001.png

JSONL, one object per line; a row may instead name a RealSense recording, of which every N-th frame
becomes a sample::

    {"rgb": "frames/0001.jpg", "depth": "frames/0001_depth.npy", "mask": "labels/0001.png"}
    {"recording": "robot.db3", "every": 10}

Paths are relative to the manifest's folder (absolute paths work too). File conventions:

- rgb: any 8-bit image OpenCV reads (colour, grey or with alpha); returned as RGB uint8 (H, W, 3).
- depth: a 16-bit single-channel PNG (or TIFF) in **millimetres**, 0 = invalid (the RealSense
  convention), or a 2-D ``.npy`` in **metres** (NaN, inf and values <= 0 are invalid). Either way it
  is returned as float32 metres with 0 = invalid, the size of the rgb image.
- mask: an 8-bit single-channel PNG of class ids, 255 = void / ignore (not a palette or colour PNG).
- recording: a RealSense ``.db3`` / ``.bag``; its frames are read once, depth aligned to colour, and
  kept as PNG files in a cache folder (``<manifest folder>/.mke_cache`` unless told otherwise), so
  the manifest can be indexed at random like any other.

Every problem is an MkeError that names the manifest line and the file and says what was expected.
"""
from __future__ import annotations

import csv
import difflib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from mke.runtime.depth_units import millimetres_to_metres
from mke.runtime.errors import MkeError
from mke.runtime.fileio import cache_folder, write_json
from mke.runtime.spec import VOID

SAMPLE_COLUMNS = ("rgb", "depth", "mask")
RECORDING_COLUMNS = ("recording", "every")
COLUMNS = SAMPLE_COLUMNS + RECORDING_COLUMNS
DEPTH_MM_SUFFIXES = (".png", ".tif", ".tiff")
DEPTH_M_SUFFIXES = (".npy",)


class Sample(NamedTuple):
    """One RGB-D sample; `depth_m` or `labels` is None where the source has none."""

    rgb: np.ndarray                 # uint8 (H, W, 3), RGB order
    depth_m: np.ndarray | None      # float32 (H, W), metres, 0 = invalid
    labels: np.ndarray | None       # uint8 (H, W), class ids, 255 = void


@dataclass(frozen=True)
class Entry:
    """Where one sample's files are, and where it was declared (for error messages)."""

    rgb: Path
    depth: Path | None
    mask: Path | None
    origin: str                     # e.g. "data/train.csv line 3"


# ---------------------------------------------------------------------------------------------
# image readers shared by the dataset readers


def cv2_module():
    """OpenCV, imported where it is needed (it comes with the `runtime` extra)."""
    try:
        import cv2
    except ImportError as e:
        raise MkeError("reading images needs OpenCV: pip install 'mke-edge[runtime]' "
                       f"(opencv-python) ({e})") from e
    return cv2


def _imread(path: Path, what: str):
    cv2 = cv2_module()
    if not Path(path).is_file():
        raise MkeError(f"{what} file {path} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MkeError(f"{what} file {path} could not be read as an image")
    return img


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit image as RGB uint8 (H, W, 3); grey is replicated, alpha dropped."""
    cv2 = cv2_module()
    img = _imread(Path(path), "rgb")
    if img.dtype != np.uint8:
        raise MkeError(f"rgb file {path} is {img.dtype}; expected an 8-bit colour image")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise MkeError(f"rgb file {path} has shape {img.shape}; expected (H, W, 3)")


def read_depth_mm_image(path: str | os.PathLike) -> np.ndarray:
    """A 16-bit single-channel depth image in millimetres → float32 metres, 0 = invalid."""
    img = _imread(Path(path), "depth")
    if img.dtype != np.uint16 or img.ndim != 2:
        kind = f"{img.dtype} with {1 if img.ndim == 2 else img.shape[2]} channel(s)"
        raise MkeError(f"depth file {path} is {kind}; expected a 16-bit single-channel image "
                       "in millimetres (0 = invalid), e.g. cv2.imwrite(path, depth_mm.astype(np.uint16))")
    return millimetres_to_metres(img)


def read_depth_npy(path: str | os.PathLike) -> np.ndarray:
    """A 2-D .npy in metres → float32 metres; NaN, inf and values <= 0 become 0 (invalid)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise MkeError(f"depth file {path} could not be read as a .npy array ({e})") from e
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise MkeError(f"depth file {path} holds {arr.dtype} {arr.shape}; expected a 2-D float array "
                       "of depth in metres (millimetres belong in a 16-bit PNG)")
    depth = arr.astype(np.float32)
    depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
    return depth


def read_depth(path: str | os.PathLike) -> np.ndarray:
    """Depth in metres from a 16-bit PNG/TIFF (millimetres) or a .npy (metres)."""
    suffix = Path(path).suffix.lower()
    if suffix in DEPTH_MM_SUFFIXES:
        return read_depth_mm_image(path)
    if suffix in DEPTH_M_SUFFIXES:
        return read_depth_npy(path)
    raise MkeError(f"depth file {path}: expected a 16-bit .png/.tif in millimetres or a .npy in metres")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit single-channel image of class ids (255 = void) as uint8 (H, W)."""
    img = _imread(Path(path), "mask")
    if img.dtype != np.uint8 or img.ndim != 2:
        kind = f"{img.dtype} with {1 if img.ndim == 2 else img.shape[2]} channel(s)"
        raise MkeError(f"mask file {path} is {kind}; expected an 8-bit single-channel PNG of class ids "
                       "(255 = void); palette or colour PNGs are not class ids")
    return img


READERS = {"rgb": read_rgb, "depth": read_depth, "mask": read_mask}  # column → its file's reader


def check_same_size(rgb: np.ndarray, other: np.ndarray, path: Path, what: str) -> None:
    _check_size(rgb.shape[:2], other.shape[:2], path, what)


def _check_size(rgb_hw: tuple[int, int], hw: tuple[int, int], path: Path, what: str) -> None:
    if tuple(hw) != tuple(rgb_hw):
        raise MkeError(f"{what} file {path} is {hw[1]}x{hw[0]} (WxH); expected the "
                       f"size of its rgb image, {rgb_hw[1]}x{rgb_hw[0]}")


def load_entry(entry: Entry) -> Sample:
    """Read one entry's files into a Sample, checking types and sizes."""
    try:
        rgb = read_rgb(entry.rgb)
        depth = labels = None
        if entry.depth is not None:
            depth = read_depth(entry.depth)
            check_same_size(rgb, depth, entry.depth, "depth")
        if entry.mask is not None:
            labels = read_mask(entry.mask)
            check_same_size(rgb, labels, entry.mask, "mask")
    except MkeError as e:
        raise MkeError(f"{entry.origin}: {e}") from None
    return Sample(rgb, depth, labels)


def read_column(entry: Entry, column: str) -> np.ndarray:
    """One file of an entry (`column`: rgb, depth or mask), read as `load_entry` reads it; an error
    names the entry's line. Sizes are not compared here: `entry_size` does that from the headers."""
    try:
        return READERS[column](getattr(entry, column))
    except MkeError as e:
        raise MkeError(f"{entry.origin}: {e}") from None


def entry_size(entry: Entry, columns: tuple[str, ...] = ("depth", "mask")) -> tuple[int, int]:
    """(height, width) of an entry's rgb image, its `columns` files checked to be that size too, as
    `load_entry` checks them but from the files' headers (`image_size`): a whole manifest is checked
    in the time of opening its files, before any pixel is decoded."""
    try:
        hw = image_size(entry.rgb, "rgb")
        for column in columns:
            path = getattr(entry, column)
            if path is not None:
                _check_size(hw, image_size(path, column), path, column)
    except MkeError as e:
        raise MkeError(f"{entry.origin}: {e}") from None
    return hw


def image_size(path: str | os.PathLike, column: str = "rgb") -> tuple[int, int]:
    """(height, width) of a column's file from its header: PNG, JPEG and .npy; other formats (TIFF,
    BMP, ...) and files whose header this does not understand are decoded by the column's reader,
    which also names what is wrong with a bad file."""
    try:
        if Path(path).suffix.lower() in DEPTH_M_SUFFIXES:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            hw = shape if len(shape) == 2 else None
        else:
            with open(path, "rb") as f:
                hw = _png_size(f) or _jpeg_size(f)
    except (OSError, ValueError, struct.error):
        hw = None
    return (int(hw[0]), int(hw[1])) if hw else READERS[column](path).shape[:2]


def _png_size(f) -> tuple[int, int] | None:
    f.seek(0)
    head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return height, width


_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # SOFn markers


def _jpeg_size(f) -> tuple[int, int] | None:
    """The frame header's size: markers walked from the start of the file to the first SOFn."""
    f.seek(0)
    if f.read(2) != b"\xff\xd8":
        return None
    while True:
        byte = f.read(1)
        while byte == b"\xff":          # fill bytes before a marker
            marker = f.read(1)
            if marker != b"\xff":
                break
        else:
            return None
        if not marker:
            return None
        code = marker[0]
        if code == 0xD8 or code == 0x01 or 0xD0 <= code <= 0xD7:
            continue                     # markers without a segment
        length = struct.unpack(">H", f.read(2))[0]
        if code in _JPEG_FRAMES:
            height, width = struct.unpack(">xHH", f.read(5))
            return (height, width) if height and width else None
        if code == 0xD9 or length < 2:
            return None
        f.seek(length - 2, os.SEEK_CUR)


# ---------------------------------------------------------------------------------------------
# the manifest


class Manifest:
    """The samples a manifest file lists, read on demand: `len(m)`, `m[i]`, `for s in m`."""

    def __init__(self, path: Path, entries: list[Entry]):
        self.path = path
        self.entries = entries

    @classmethod
    def read(cls, path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> "Manifest":
        """Parse and check a .csv or .jsonl manifest; every named file must exist.

        `cache_dir` holds the frames extracted from recording rows (default: a `.mke_cache` folder
        beside the manifest); extraction happens once per recording and `every`.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise MkeError(f"manifest {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            rows = _csv_rows(path)
        elif suffix in (".jsonl", ".ndjson"):
            rows = _jsonl_rows(path)
        else:
            raise MkeError(f"manifest {path}: expected a .csv (header rgb,depth,mask) or a .jsonl file")
        cache = Path(cache_dir).expanduser() if cache_dir is not None else path.parent / ".mke_cache"
        entries: list[Entry] = []
        for line, row in rows:
            entries += _row_entries(path, line, row, cache)
        if not entries:
            raise MkeError(f"manifest {path} lists no samples")
        return cls(path, entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        return load_entry(self.entries[index])

    def __iter__(self) -> Iterator[Sample]:
        for entry in self.entries:
            yield load_entry(entry)

    @property
    def has_masks(self) -> bool:
        """True when every sample has a mask (a labeled set)."""
        return all(e.mask is not None for e in self.entries)

    @property
    def has_depth(self) -> bool:
        """True when every sample has depth (a multimodal set)."""
        return all(e.depth is not None for e in self.entries)

    def __repr__(self) -> str:
        return f"Manifest({str(self.path)!r}, {len(self)} samples)"


def _unknown_column(manifest: Path, line: int, name: str) -> MkeError:
    close = difflib.get_close_matches(name, COLUMNS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return MkeError(f"manifest {manifest} line {line}: unknown column {name!r}{hint}; "
                    f"expected some of {', '.join(COLUMNS)}")


def _csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = None
        rows = []
        for fields in reader:
            if not any(x.strip() for x in fields):
                continue
            if header is None:
                header = [x.strip() for x in fields]
                for name in header:
                    if name not in COLUMNS:
                        raise _unknown_column(path, reader.line_num, name)
                if "rgb" not in header and "recording" not in header:
                    raise MkeError(f"manifest {path} line {reader.line_num}: the header has no 'rgb' "
                                   "column; expected a header such as rgb,depth,mask")
                continue
            if len(fields) > len(header):
                raise MkeError(f"manifest {path} line {reader.line_num}: {len(fields)} fields but the "
                               f"header names {len(header)} ({','.join(header)})")
            rows.append((reader.line_num, dict(zip(header, (x.strip() for x in fields)))))
    if header is None:
        raise MkeError(f"manifest {path} is empty; expected a header such as rgb,depth,mask")
    return rows


def _jsonl_rows(path: Path) -> list[tuple[int, dict]]:
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise MkeError(f"manifest {path} line {line}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise MkeError(f"manifest {path} line {line}: expected a JSON object such as "
                               '{"rgb": ..., "depth": ..., "mask": ...}')
            for name in row:
                if name not in COLUMNS:
                    raise _unknown_column(path, line, name)
            rows.append((line, row))
    return rows


def _resolve(manifest: Path, line: int, column: str, value) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MkeError(f"manifest {manifest} line {line}: {column} must be a path string, got {value!r}")
    p = Path(value).expanduser()
    p = p if p.is_absolute() else manifest.parent / p
    if not p.is_file():
        raise MkeError(f"manifest {manifest} line {line}: {column} file {p} does not exist")
    return p


def _row_entries(manifest: Path, line: int, row: dict, cache: Path) -> list[Entry]:
    origin = f"manifest {manifest} line {line}"
    present = {k for k, v in row.items() if v not in (None, "")}
    if "recording" in present:
        clash = present & set(SAMPLE_COLUMNS)
        if clash:
            raise MkeError(f"{origin}: a recording row takes no {', '.join(sorted(clash))}; "
                           "put files and recordings on separate rows")
        every = row.get("every", 1)
        try:
            every = int(every) if every not in (None, "") else 1
            if every < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise MkeError(f"{origin}: every must be a whole number >= 1, got {row.get('every')!r}") from None
        recording = _resolve(manifest, line, "recording", row["recording"])
        return _recording_entries(recording, every, origin, cache)
    if "every" in present:
        raise MkeError(f"{origin}: 'every' applies to recording rows only")
    if "rgb" not in present:
        raise MkeError(f"{origin}: no rgb path; every row needs rgb (depth and mask optional) "
                       "or a recording")
    depth = _resolve(manifest, line, "depth", row.get("depth"))
    if depth is not None and depth.suffix.lower() not in DEPTH_MM_SUFFIXES + DEPTH_M_SUFFIXES:
        raise MkeError(f"{origin}: depth file {depth}: expected a 16-bit .png/.tif in millimetres "
                       "or a .npy in metres")
    return [Entry(rgb=_resolve(manifest, line, "rgb", row["rgb"]), depth=depth,
                  mask=_resolve(manifest, line, "mask", row.get("mask")), origin=origin)]


# ---------------------------------------------------------------------------------------------
# recording rows


def _recording_entries(recording: Path, every: int, origin: str, cache: Path) -> list[Entry]:
    """Extract a recording's frames (once) to PNG files and list them as entries."""
    stat = recording.stat()
    key = f"{recording.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{every}"
    folder = cache_folder(cache, f"{recording.stem}-every{every}", key)
    index_path = folder / "frames.json"
    count = None
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            if index.get("key") == key:
                count = int(index["frames"])
        except (OSError, ValueError, KeyError, TypeError):
            count = None
    if count is None:
        count = _extract_recording(recording, every, origin, folder)
        write_json(index_path, {"recording": str(recording), "every": every, "key": key, "frames": count})
    return [Entry(rgb=folder / f"{i:06d}_rgb.png", depth=folder / f"{i:06d}_depth.png", mask=None,
                  origin=f"{origin} (recording {recording} frame {i * every})") for i in range(count)]


def _extract_recording(recording: Path, every: int, origin: str, folder: Path) -> int:
    try:
        from mke.runtime.sensors.realsense_recording import read_recording
    except ImportError as e:
        raise MkeError(f"{origin}: reading the RealSense recording {recording} needs "
                       "mke.runtime.sensors.realsense_recording and pyrealsense2 "
                       f"(pip install 'mke-edge[sensors]'): {e}") from e
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MkeError(f"{origin}: cannot create the frame cache {folder} for recording {recording} "
                       f"({e}); pass cache_dir= a writable folder") from e
    try:
        return _write_frames(read_recording(recording, every=every, align_to_color=True, real_time=False),
                             recording, every, origin, folder)
    except MkeError as e:
        if str(e).startswith(origin):
            raise
        raise MkeError(f"{origin}: recording {recording}: {e}") from e


def _write_frames(frames, recording: Path, every: int, origin: str, folder: Path) -> int:
    cv2 = cv2_module()
    count = 0
    for frame in frames:
        rgb, depth_mm = np.asarray(frame.rgb), np.asarray(frame.depth_mm)
        where = f"{origin}: recording {recording} frame {count * every}"
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise MkeError(f"{where}: colour is {rgb.dtype} {rgb.shape}; expected uint8 (H, W, 3)")
        if depth_mm.dtype != np.uint16 or depth_mm.shape != rgb.shape[:2]:
            raise MkeError(f"{where}: depth is {depth_mm.dtype} {depth_mm.shape}; expected uint16 "
                           f"millimetres aligned to colour, {rgb.shape[:2]}")
        for name, img in ((f"{count:06d}_rgb.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)),
                          (f"{count:06d}_depth.png", depth_mm)):
            if not cv2.imwrite(str(folder / name), img):
                raise MkeError(f"{where}: could not write {folder / name}")
        count += 1
    if count == 0:
        raise MkeError(f"{origin}: recording {recording} yielded no frames")
    return count
