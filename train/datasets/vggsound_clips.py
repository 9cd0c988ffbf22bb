"""The `vggsound` task's clips: AudioSet and VGGSound decoded once into a cache, split as the paper does.

The paper's event setting (audio → audio + video, multilabel): labeled AudioSet *audio* is D_l (the
audio teacher's), VGGSound's train clips — sound and pictures — are D_u (their labels kept only for
MM student (sup)), and VGGSound's test clips, with their labels, are the test split; every target is a
0/1 vector over the shared classes of the class map (`audioset_vggsound.load_class_map`).
`audioset_vggsound.load_indices` finds the clips; `clip_reader.load_clip` decodes each.

A clip is the whole file. The default patterns name a file by its segment's start in the YouTube
video (`{ytid}_{start}.wav`, VGGSound's `{ytid}_{start:06d}.mp4`): the datasets' downloads are the
10-second segments themselves, trimmed, so the segment starts at 0 s of its file and is decoded from
there (`load_clip`'s start_s = 0; the list's start only names the file). A file holding a whole
YouTube video would need trimming first. Each clip gives `clip_seconds` (10) of sound, channels
averaged and resampled to `sample_rate` (16 kHz), padded with silence where a segment is shorter
(some AudioSet ones are; counted); a VGGSound clip also gives F = clip_seconds / frame_period_s
pictures (4, at 2.5, 5.0, 7.5 and 10.0 s: the last at the clip's end, as `mke-live` assembles an
`rgb_clip`; a video that ends earlier holds its last picture), resized whole to `image_size`² (64).
AudioSet clips are decoded for their sound only: the teacher hears them.

The decoded clips are cached once per decoding config in `<cache_dir>/vggsound-<hash>/`:
`labeled.npz` (audio int16, targets, files), `unlabeled.npz` and `test.npz` (audio int16, frames
uint8, targets, files) and `data.json` (the key, settings, counts per split and class, every skipped
file with its reason), written last into a temporary folder that is renamed into place when whole.
The hash covers data.root (resolved), the settings that change the clips, both indices' fingerprints
(every used clip's name, size and time), the class names and a digest of the rows' files and targets
(so an edited list or class map gets a new folder). A folder whose data.json does not hold this key is
decoded again; an unreadable npz is an error naming it, with advice to delete the folder. The npz
files are read memory-mapped (`npz_memmaps`), the int16 sound as float32 clip by clip when used.

What is skipped, each counted and listed in data.json and the report: rows whose clip is missing or
empty (the indices' one warning per dataset), and clips that cannot be decoded — a broken file, a
video without a sound track (one warning per split); both warnings go to the readers' logger,
`mke.train.datasets.audioset_vggsound`.
Torch-free: numpy, OpenCV and the clip reader's FFmpeg.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mke.runtime.errors import MkeError
from mke.runtime.fileio import building_cache, cache_complete, cache_folder
from mke.train.datasets import audioset_vggsound as readers
from mke.train.datasets.audioset_vggsound import SharedIndices, load_class_map, load_indices, warn_skipped
from mke.train.datasets.clip_reader import load_clip
from mke.train.datasets.frame_arrays import rows_of
from mke.train.datasets.frame_cache import npz_memmaps
from mke.train.datasets.ravdess import Unusable
from mke.train.datasets.settings import typed

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # part of the cache key: a change to what is decoded gets a new folder
SPLITS = ("labeled", "unlabeled", "test")
CLIP_DEFAULTS: dict = {
    "clip_seconds": 10.0,    # seconds of each file decoded: the datasets' 10 s segments
    "frame_period_s": 2.5,   # seconds between VGGSound pictures, the last at the clip's end: 4 pictures
    "image_size": 64,        # pixels, square
    "sample_rate": 16000,    # Hz of the decoded sound
}
DEFAULT_CACHE_DIR = "data/cache"
SOURCES = ("files",)


@dataclass
class EventSplit:
    """One split of decoded clips: what `AudioVisualTask` turns into samples."""

    name: str
    frames: np.ndarray | None    # uint8 (N, F, S, S, 3) RGB, memory-mapped; None for the labeled split (audio only)
    audio: np.ndarray            # float32 (N, T) mono in −1..1 at sample_rate (a FrameArray: int16 read per clip)
    labels: np.ndarray           # uint8 (N, K): 0/1 per shared class
    sample_rate: int             # Hz
    frame_times_s: np.ndarray    # float64 (F,), seconds from the clip's start
    class_names: tuple[str, ...]
    files: np.ndarray = field(default_factory=lambda: np.array([], str))  # (N,) relative to data.root

    def __len__(self) -> int:
        return len(self.labels)


# --- settings ------------------------------------------------------------------------------------------

def data_settings(data_cfg: dict) -> dict:
    """The readers' settings (`audioset_vggsound.data_settings`: class_map, audioset, vggsound) and
    CLIP_DEFAULTS overlaid with `data_cfg`, each checked: MkeError names a wrong `data.` key."""
    source = data_cfg.get("source", SOURCES[0])
    if source not in SOURCES:
        raise MkeError(f"data.source must be files for task vggsound (your AudioSet and VGGSound copies under "
                       f"data.root), got {source!r}; built-in event clips are --task events")
    s = readers.data_settings(data_cfg)
    for key, default in CLIP_DEFAULTS.items():
        s[key] = typed(key, data_cfg.get(key, default), default)
    if not s["clip_seconds"] > 0:
        raise MkeError(f"data.clip_seconds must be > 0 seconds, got {s['clip_seconds']}")
    if not 0 < s["frame_period_s"] <= s["clip_seconds"]:
        raise MkeError(f"data.frame_period_s must lie in (0, data.clip_seconds={s['clip_seconds']:g}], got "
                       f"{s['frame_period_s']}")
    if s["image_size"] < 8:
        raise MkeError(f"data.image_size must be >= 8 pixels, got {s['image_size']}")
    if s["sample_rate"] < 8000:
        raise MkeError(f"data.sample_rate must be >= 8000 Hz, got {s['sample_rate']}")
    return s


def frame_times(s: dict) -> np.ndarray:
    """Seconds from the clip's start of each picture: floor(clip_seconds / frame_period_s) of them,
    frame_period_s apart, the last at the clip's end (10 s, 2.5 s: 2.5, 5.0, 7.5, 10.0)."""
    period, length = float(s["frame_period_s"]), float(s["clip_seconds"])
    count = int(np.floor(length / period + 1e-9))
    return length - period * np.arange(count - 1, -1, -1, dtype=np.float64)


def class_names(data_cfg: dict) -> tuple[str, ...]:
    """The shared classes of data.class_map (or the packaged default), read without data.root."""
    return load_class_map(data_settings(data_cfg)["class_map"] or None).names


# --- the cache key -------------------------------------------------------------------------------------

@contextmanager
def _quiet_readers():
    """Leave out the readers' warnings (skipped clips, empty classes): shown once, when the data is prepared."""
    logger = logging.getLogger(readers.__name__)

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _indices(data_cfg: dict, quiet: bool) -> SharedIndices:
    if not quiet:
        return load_indices(data_cfg)
    with _quiet_readers():
        return load_indices(data_cfg)


def _rows_digest(idx: SharedIndices) -> str:
    """sha256 of what the lists and the class map decide: each clip's file, split and targets."""
    h = hashlib.sha256()
    for part in (idx.audioset.files, idx.audioset.targets, idx.vggsound.files, idx.vggsound.splits,
                 idx.vggsound.labels):
        h.update(json.dumps(np.asarray(part).tolist()).encode())
    return h.hexdigest()


def cache_key(data_cfg: dict, idx: SharedIndices) -> dict:
    """What names the cache folder (and is kept in its data.json): anything that changes the clips."""
    s = data_settings(data_cfg)
    return {"version": CACHE_VERSION, "root": str(idx.audioset.root.resolve()),
            "settings": {k: s[k] for k in ("audioset", "vggsound", *CLIP_DEFAULTS)},
            "audioset": idx.audioset.fingerprint, "vggsound": idx.vggsound.fingerprint,
            "class_names": list(idx.class_map.names), "rows": _rows_digest(idx)}


def cache_dir(data_cfg: dict, idx: SharedIndices | None = None) -> Path:
    """`<data.cache_dir>/vggsound-<hash of cache_key>`."""
    idx = idx or _indices(data_cfg, quiet=True)
    return cache_folder(data_cfg.get("cache_dir") or DEFAULT_CACHE_DIR, "vggsound", cache_key(data_cfg, idx))


def read_cache_meta(folder: Path) -> dict:
    """The cache's data.json: key, settings, counts, skipped files."""
    path = Path(folder) / "data.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MkeError(f"cached data {path} is unreadable ({exc}); delete {folder} to decode it again") from None


def _matches(folder: Path, key: dict) -> bool:
    """Whether `folder` is a whole cache (cache_complete) whose data.json holds `key`."""
    if not cache_complete(folder):
        return False
    try:
        return json.loads((folder / "data.json").read_text()).get("key") == json.loads(json.dumps(key))
    except (OSError, ValueError, AttributeError):
        return False


# --- decoding ------------------------------------------------------------------------------------------

def _decode_one(path: Path, args: dict):
    try:
        return load_clip(path, **args), None
    except Unusable as exc:
        return None, str(exc)


def decode_split(what: str, root: Path, files, s: dict, video: bool, progress: bool = False,
                 workers: int = 1) -> dict:
    """Every clip of `files` (relative to `root`): audio int16 (N, n), frames uint8 (N, F, S, S, 3) when
    `video`, `kept` (positions in `files`), `padded_s`, and `skipped` ({"file", "reason"}), with one
    warning for the skipped. Filled in place, so a split takes its own size once. `workers` threads
    decode at once (FFmpeg and OpenCV work outside Python's lock)."""
    n = int(round(s["clip_seconds"] * s["sample_rate"]))
    times = frame_times(s) if video else None
    args = {"sample_rate": s["sample_rate"], "seconds": s["clip_seconds"], "start_s": 0.0,
            "frame_times_s": times, "image_size": s["image_size"]}
    audio = np.zeros((len(files), n), np.int16)
    frames = np.zeros((len(files), len(times), s["image_size"], s["image_size"], 3), np.uint8) if video else None
    kept, padded, skipped = [], [], []
    paths = [root / f for f in files]
    pool = ThreadPoolExecutor(workers) if workers > 1 and len(paths) > 1 else None
    try:
        results = map(_decode_one, paths, [args] * len(paths)) if pool is None else \
            pool.map(_decode_one, paths, [args] * len(paths))
        for i, (clip, reason) in enumerate(tqdm(results, total=len(paths), desc=f"{what}: decoding", unit="clip",
                                                disable=not progress, leave=False)):
            if clip is None:
                skipped.append({"file": str(files[i]), "reason": reason})
                continue
            j = len(kept)
            audio[j] = np.clip(np.round(clip.audio * 32768.0), -32768, 32767).astype(np.int16)
            if video:
                frames[j] = clip.frames
            kept.append(i)
            padded.append(clip.padded_s)
    finally:
        if pool is not None:
            pool.shutdown()
    warn_skipped(what, skipped, len(files), root)
    if not kept:
        first = f" (first: {skipped[0]['file']}: {skipped[0]['reason']})" if skipped else ""
        raise MkeError(f"no {what} clip under {root} could be decoded: {len(skipped)} of {len(files)} skipped{first}")
    m = len(kept)
    return {"audio": audio[:m], "frames": None if frames is None else frames[:m], "kept": np.array(kept, np.int64),
            "padded_s": np.array(padded, np.float64), "skipped": skipped}


def _split_rows(idx: SharedIndices) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str, bool]]:
    """split → (files, targets, YouTube ids, what, video) before decoding."""
    a, v = idx.audioset, idx.vggsound
    targets = v.targets()
    out = {"labeled": (a.files, a.targets, a.ytids, "AudioSet", False)}
    for name, split in (("unlabeled", "train"), ("test", "test")):
        rows = v.split(split)
        if len(rows) == 0:
            raise MkeError(f"VGGSound has no {split} clip of the shared classes on disk under {v.root} "
                           f"({v.summary.get('clips_per_split')}); the {name} split needs some")
        out[name] = (v.files[rows], targets[rows], v.ytids[rows], f"VGGSound {split}", True)
    return out


def decode(idx: SharedIndices, s: dict, progress: bool = False, workers: int = 1) -> tuple[dict, dict]:
    """split → arrays to cache (audio, frames, targets, files, padded_s), and what data.json tells."""
    arrays, report = {}, {"clips": {}, "per_class": {}, "padded": {}, "undecodable": {}}
    ytids = {}
    for name, (files, targets, ids, what, video) in _split_rows(idx).items():
        got = decode_split(what, idx.audioset.root, files, s, video, progress, workers)
        keep = got["kept"]
        arrays[name] = {"audio": got["audio"], "targets": targets[keep].astype(np.uint8), "files": files[keep],
                        "padded_s": got["padded_s"]}
        if video:
            arrays[name]["frames"] = got["frames"]
        report["clips"][name] = len(keep)
        report["per_class"][name] = dict(zip(idx.class_map.names, targets[keep].sum(0).astype(int).tolist()))
        report["padded"][name] = int((got["padded_s"] > 0).sum())
        report["undecodable"][name] = got["skipped"]
        ytids[name] = ids[keep]
    # D_l clips cut from a video that a test clip comes from too (the datasets overlap on YouTube): reported
    report["labeled_in_test_videos"] = int(np.isin(ytids["labeled"], ytids["test"]).sum())
    return arrays, report


def _build(folder: Path, idx: SharedIndices, s: dict, key: dict, progress: bool, workers: int) -> None:
    """Decode into a temporary folder beside `folder`, then rename it into place (replacing a stale one)."""
    started = time.perf_counter()
    arrays, report = decode(idx, s, progress, workers)
    with building_cache(folder, lambda f: _matches(f, key)) as tmp:
        for name, split in arrays.items():
            with open(tmp / f"{name}.npz", "wb") as f:
                np.savez(f, **split)
        a, v = idx.audioset.summary, idx.vggsound.summary
        meta = {"key": key, "cache_version": CACHE_VERSION, "root": key["root"],
                "settings": key["settings"], "class_map": idx.class_map.source,
                "class_names": list(idx.class_map.names), "frame_times_s": frame_times(s).tolist(),
                "sample_rate": s["sample_rate"], **report,
                "index": {"audioset": {k: a[k] for k in ("segments", "duplicates", "outside_classes",
                                                         "with_shared_class")},
                          "vggsound": {k: v[k] for k in ("rows", "duplicates", "outside_classes",
                                                         "with_shared_class")}},
                "skipped": {"audioset": a["skipped"], "vggsound": v["skipped"]},
                "decode_seconds": round(time.perf_counter() - started, 1),
                "files": {f"{name}.npz": (tmp / f"{name}.npz").stat().st_size for name in arrays}}
        (tmp / "data.json").write_text(json.dumps(meta, indent=2) + "\n")


def ensure_cache(data_cfg: dict, progress: bool = False, workers: int = 1, quiet: bool = False) -> tuple[Path, bool]:
    """The cache folder of `data_cfg`, decoded now if it is missing, incomplete or holds another key; and
    whether it was. `quiet` leaves out the readers' warnings (shown when the run prepares its data)."""
    s = data_settings(data_cfg)
    idx = _indices(data_cfg, quiet)
    key = cache_key(data_cfg, idx)
    folder = cache_folder(data_cfg.get("cache_dir") or DEFAULT_CACHE_DIR, "vggsound", key)
    if _matches(folder, key):
        return folder, False
    if (folder / "data.json").is_file():
        log.warning("VGGSound: the cache %s does not match this data (its data.json holds another key, or a file "
                    "is missing or cut short): decoding it again", folder)
    _build(folder, idx, s, key, progress, max(1, workers or os.cpu_count() or 1))
    return folder, True


def skipped_files(meta: dict) -> list[dict]:
    """Every skipped clip of a cache's data.json: missing or empty ones, then undecodable ones by split."""
    out = list(meta["skipped"]["audioset"]) + list(meta["skipped"]["vggsound"])
    for items in meta["undecodable"].values():
        out += items
    return out


def _read_split(folder: Path, name: str) -> dict[str, np.ndarray]:
    path = folder / f"{name}.npz"
    try:
        return npz_memmaps(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise MkeError(f"cached data {path} is unreadable ({exc}); delete {folder} to decode it again") from None


def load_vggsound(data_cfg: dict, progress: bool = False, workers: int = 1) -> dict[str, EventSplit]:
    """The splits "labeled" (AudioSet audio: D_l), "unlabeled" (VGGSound train: D_u, labels kept for
    MM student (sup)) and "test" (VGGSound test) as EventSplits; decoded and cached on first use."""
    folder, _ = ensure_cache(data_cfg, progress, workers, quiet=True)
    meta = read_cache_meta(folder)
    names, times = tuple(meta["class_names"]), np.asarray(meta["frame_times_s"], np.float64)
    out = {}
    for name in SPLITS:
        z = _read_split(folder, name)
        out[name] = EventSplit(name=name, frames=z.get("frames"),
                               audio=rows_of(z["audio"], pcm=True, name=f"{name} audio"), labels=z["targets"],
                               sample_rate=int(meta["sample_rate"]), frame_times_s=times, class_names=names,
                               files=z["files"])
    return out


def data_summary(data_cfg: dict) -> dict:
    """What a report says about the data: the split protocol, clips per split, the class map, the window,
    what was left out, and every skipped clip with its reason (`skipped_count` is their number)."""
    s = data_settings(data_cfg)
    folder, _ = ensure_cache(data_cfg, quiet=True)
    meta = read_cache_meta(folder)
    lists = ", ".join(Path(p).name for p in s["audioset"]["segments"])
    out = {"root": meta["root"],
           "split_protocol": (f"the paper's: D_l = AudioSet segments of {lists} with a shared class, audio only, "
                              "labeled; D_u = VGGSound train clips, audio + video (their labels used only by "
                              "MM student (sup)); test = VGGSound test clips, audio + video + labels"),
           "clips": dict(meta["clips"]),
           "classes": f"{len(meta['class_names'])} shared classes of the class map {meta['class_map']}",
           "window": (f"0–{s['clip_seconds']:g} s of each file (the segment itself), "
                      f"{len(meta['frame_times_s'])} pictures at "
                      f"{', '.join(f'{t:g}' for t in meta['frame_times_s'])} s ({s['image_size']} px), "
                      f"sound at {meta['sample_rate']} Hz mono")}
    empty = {name: [c for c, n in counts.items() if n == 0] for name, counts in meta["per_class"].items()}
    empty = {name: names for name, names in empty.items() if names}
    if empty:
        out["classes_without_clips"] = empty
    out["left_out"] = (f"AudioSet: {meta['index']['audioset']['outside_classes']} segments without a shared class, "
                       f"{meta['index']['audioset']['duplicates']} duplicates; VGGSound: "
                       f"{meta['index']['vggsound']['outside_classes']} rows outside the shared classes, "
                       f"{meta['index']['vggsound']['duplicates']} duplicates")
    if any(meta["padded"].values()):
        out["clips_padded_with_silence"] = {name: n for name, n in meta["padded"].items() if n}
    if meta.get("labeled_in_test_videos"):
        out["labeled_clips_from_test_videos"] = meta["labeled_in_test_videos"]
    skipped = skipped_files(meta)
    found = meta["skipped"]["audioset"] + meta["skipped"]["vggsound"]   # by the indices, before decoding
    missing = sum(x["reason"] == "missing" for x in found)
    out["skipped_by_reason"] = {"missing": missing, "empty or unreadable": len(found) - missing,
                                "undecodable": len(skipped) - len(found)}
    out["skipped_count"] = len(skipped)
    out["skipped"] = skipped
    return out
