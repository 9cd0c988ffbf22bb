"""AudioSet and VGGSound, read from the files a user has: the paper's event task (audio → audio + video).

The teacher learns from labeled AudioSet *audio* (D_l, multilabel); the student adds the *video* of
unlabeled VGGSound clips (D_u); both speak the vocabulary of a class map (`load_class_map`). This
module reads the datasets' own lists, finds the clips on disk and indexes them over the shared
classes; `clip_reader` decodes the clips. Torch-free: numpy and PyYAML.

AudioSet segment lists (`balanced_train_segments.csv`, `eval_segments.csv`,
`unbalanced_train_segments.csv`): three `#` header lines, then one 10-second segment a line,

    # Segments csv created Sun Mar  5 10:54:31 2017
    # num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52882
    # YTID, start_seconds, end_seconds, positive_labels
    --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"

— a space after each comma, the labels one quoted, comma-separated field of MIDs (`/m/…`, `/t/…`,
`/g/…`). A few segments start at fractions of a second (239.800) or last less than 10 s.

AudioSet classes, `class_labels_indices.csv`: a header `index,mid,display_name`, then
`1,/m/05zppz,"Male speech, man speaking"` — the display name quoted where it holds a comma.

VGGSound, `vggsound.csv`: no header; `YouTube id,start second,label,train|test`, e.g.
`---g-f_I2yQ,1,people marching,test` and `-0jeONf82dE,21,"female speech, woman speaking",train`
(the label quoted where it holds a comma; ids may begin with "-").

Clips are files under a folder, named by a pattern (`str.format`) over the row's fields: `ytid`,
`start` (whole seconds, rounded down), `start_ms`, and for AudioSet `end`, `end_ms`, for VGGSound
`label` and `split`. Patterns may hold subfolders; several are tried in order. Defaults: AudioSet
`{ytid}_{start}.wav` (then `{ytid}_{start:06d}.wav`), VGGSound `{ytid}_{start:06d}.mp4` (its own
naming, then `{ytid}_{start}.mp4`). A row whose file is missing, or empty, is skipped; one warning
per dataset gives the count and names a few (logger `mke.train.datasets.audioset_vggsound`), and the
index's `summary["skipped"]` lists them all.
"""
from __future__ import annotations

import csv
import difflib
import hashlib
import logging
import math
import os
import re
import string
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import yaml

from mke.runtime.errors import MkeError
from mke.train import datasets

log = logging.getLogger(__name__)

DEFAULT_CLASS_MAP = Path(__file__).with_name("audioset_vggsound_classes.yaml")
VGGSOUND_SPLITS = ("train", "test")
MID = re.compile(r"^/[a-z]/[0-9a-z_]+$")
WARN_NAMES = 5  # skipped clips a warning names; the summary keeps them all

AUDIOSET_FIELDS = ("ytid", "start", "start_ms", "end", "end_ms")
VGGSOUND_FIELDS = ("ytid", "start", "start_ms", "label", "split")

DATA_DEFAULTS: dict = {
    "class_map": "",  # a YAML file like audioset_vggsound_classes.yaml; empty: that packaged default
    "audioset": {
        "segments": ["audioset/balanced_train_segments.csv"],  # one or more segment lists (D_l)
        "class_labels": "audioset/class_labels_indices.csv",   # checks the map's MIDs; empty: no check
        "clips": "audioset/audio",                             # folder of the clips
        "pattern": ["{ytid}_{start}.wav", "{ytid}_{start:06d}.wav"],
    },
    "vggsound": {
        "csv": "vggsound/vggsound.csv",
        "clips": "vggsound/video",
        "pattern": ["{ytid}_{start:06d}.mp4", "{ytid}_{start}.mp4"],
    },
}


# --- settings ------------------------------------------------------------------------------------------

def data_settings(data_cfg: dict) -> dict:
    """DATA_DEFAULTS overlaid with `data_cfg` (only these keys), each checked; MkeError names a wrong key.
    Patterns and segment lists come out as lists."""
    s = {"class_map": _text(data_cfg.get("class_map", DATA_DEFAULTS["class_map"]) or "", "data.class_map")}
    for side in ("audioset", "vggsound"):
        given = data_cfg.get(side) or {}
        if not isinstance(given, dict):
            raise MkeError(f"data.{side} must be a mapping of {', '.join(DATA_DEFAULTS[side])}, got {given!r}")
        unknown = sorted(set(given) - set(DATA_DEFAULTS[side]))
        if unknown:
            hint = difflib.get_close_matches(unknown[0], list(DATA_DEFAULTS[side]), n=1)
            raise MkeError(f"data.{side}.{unknown[0]} is not a setting"
                           + (f" (did you mean data.{side}.{hint[0]}?)" if hint else "")
                           + f"; the settings are {', '.join(DATA_DEFAULTS[side])}")
        s[side] = {key: given.get(key, default) for key, default in DATA_DEFAULTS[side].items()}
    a, v = s["audioset"], s["vggsound"]
    a["segments"] = _texts(a["segments"], "data.audioset.segments")
    a["class_labels"] = _text(a["class_labels"] or "", "data.audioset.class_labels")
    for side, names in (("audioset", AUDIOSET_FIELDS), ("vggsound", VGGSOUND_FIELDS)):
        s[side]["clips"] = _text(s[side]["clips"], f"data.{side}.clips")
        s[side]["pattern"] = [check_pattern(p, f"data.{side}.pattern", names)
                              for p in _texts(s[side]["pattern"], f"data.{side}.pattern")]
    v["csv"] = _text(v["csv"], "data.vggsound.csv")
    return s


def _text(value, key: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise MkeError(f"{key} must be a path or text, got {value!r}")
    return str(value)


def _texts(value, key: str) -> list[str]:
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(x, (str, os.PathLike)) and str(x)
                                                                  for x in items):
        raise MkeError(f"{key} must be a path or a list of them, got {value!r}")
    return [str(x) for x in items]


def check_pattern(pattern: str, key: str, names: Sequence[str]) -> str:
    """`pattern` if it names only `names` and formats a sample row to a relative path; MkeError otherwise."""
    try:
        used = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as exc:
        raise MkeError(f"{key} {pattern!r} is not a valid pattern ({exc}); e.g. {{ytid}}_{{start:06d}}.mp4") from None
    for name in used:
        if name not in names:
            raise MkeError(f"{key} {pattern!r} names {{{name}}}; a pattern may use "
                           + ", ".join(f"{{{n}}}" for n in names))
    if "ytid" not in used:
        raise MkeError(f"{key} {pattern!r} does not name {{ytid}}, so every clip would be the same file")
    sample = {"ytid": "abc", "start": 30, "start_ms": 30000, "end": 40, "end_ms": 40000, "label": "x",
              "split": "train"}
    try:
        path = pattern.format(**sample)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise MkeError(f"{key} {pattern!r} cannot be formatted ({exc}); numbers take e.g. {{start:06d}}") from None
    if Path(path).is_absolute() or ".." in Path(path).parts:
        raise MkeError(f"{key} {pattern!r} must be a path inside the clips folder (relative, no ..)")
    return pattern


def data_root(data_cfg: dict) -> Path:
    """data.root, checked to be a folder; MkeError says what it must hold."""
    return datasets.data_root(data_cfg, "AudioSet and VGGSound", "vggsound", "/data/av", _expected())


def _expected() -> str:
    return ("audioset/balanced_train_segments.csv, audioset/class_labels_indices.csv, "
            "audioset/audio/<ytid>_<start>.wav, vggsound/vggsound.csv and vggsound/video/<ytid>_<start:06d>.mp4 "
            "(other places: data.audioset.*, data.vggsound.*)")


def _file(root: Path, rel: str, key: str, what: str) -> Path:
    path = root / Path(rel).expanduser()
    if not path.is_file():
        hint = " (empty: no check)" if key == "data.audioset.class_labels" else ""
        raise MkeError(f"{what} {path} does not exist (data.root {root}, {key}={rel}); download it or set "
                       f"{key}{hint}")
    return path


# --- reading the lists ---------------------------------------------------------------------------------

def _rows(path: Path, what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields stripped) of each non-empty line not starting with '#'."""
    line_no = 0

    def lines(f):
        nonlocal line_no
        for line_no, line in enumerate(f, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                yield line

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for fields in csv.reader(lines(f), skipinitialspace=True):
                yield line_no, [x.strip() for x in fields]
    except UnicodeDecodeError:
        raise MkeError(f"{what} {path} is not a text file (line {line_no + 1} is not UTF-8)") from None
    except csv.Error as exc:
        raise MkeError(f"{what} {path} line {line_no}: {exc}") from None
    except OSError as exc:
        raise MkeError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Segment:
    """One row of an AudioSet segment list: a YouTube video's [start_s, end_s] and its labels (MIDs)."""

    ytid: str
    start_s: float
    end_s: float
    mids: tuple[str, ...]
    line: int = 0


SEGMENTS_FORMAT = ('AudioSet\'s segment lists: "#" header lines, then YTID, start_seconds, end_seconds, '
                   '"/m/…,/m/…" (e.g. --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088")')


def read_segments(path: str | os.PathLike) -> list[Segment]:
    """Every segment of an AudioSet `*_segments.csv`; MkeError names the file, the line and what is wrong."""
    path = Path(path)
    out: list[Segment] = []
    for n, fields in _rows(path, "AudioSet segment list"):
        where = f"AudioSet segment list {path} line {n}"
        if len(fields) < 4:
            raise MkeError(f"{where} has {len(fields)} fields; expected {SEGMENTS_FORMAT}")
        start, end = _number(fields[1]), _number(fields[2])
        if start is None or end is None:
            if not out and "start" in fields[1].lower():
                continue  # a header row without its "#"
            raise MkeError(f"{where}: start {fields[1]!r} and end {fields[2]!r} must be seconds; expected "
                           f"{SEGMENTS_FORMAT}")
        if not fields[0] or start < 0 or end < start:
            raise MkeError(f"{where}: YTID {fields[0]!r}, start {fields[1]} and end {fields[2]} do not make a "
                           "segment (an id, 0 <= start <= end)")
        mids = tuple(m.strip() for m in ",".join(fields[3:]).split(",") if m.strip())  # quoted or not
        for mid in mids:
            if not MID.match(mid):
                raise MkeError(f"{where}: label {mid!r} is not an AudioSet MID (/m/…, /t/…, /g/…); expected "
                               f"{SEGMENTS_FORMAT}")
        out.append(Segment(fields[0], start, end, mids, n))
    return out


def read_class_labels(path: str | os.PathLike) -> dict[str, str]:
    """MID → display name of AudioSet's `class_labels_indices.csv`, in index order."""
    path = Path(path)
    out: dict[str, str] = {}
    for n, fields in _rows(path, "AudioSet class list"):
        if not out and fields and fields[0].lower() == "index":
            continue
        if len(fields) < 3 or not fields[0].isdigit() or not MID.match(fields[1]):
            raise MkeError(f"AudioSet class list {path} line {n}: expected index,mid,display_name "
                           f"(e.g. 1,/m/05zppz,\"Male speech, man speaking\"), got {','.join(fields)!r}")
        out[fields[1]] = ", ".join(fields[2:])
    if not out:
        raise MkeError(f"AudioSet class list {path} holds no class; expected class_labels_indices.csv")
    return out


@dataclass(frozen=True)
class VGGSoundRow:
    """One row of vggsound.csv: a YouTube video's 10 s from `start_s`, its label and its split."""

    ytid: str
    start_s: int
    label: str
    split: str
    line: int = 0


VGGSOUND_FORMAT = ("VGGSound's vggsound.csv: no header, then YouTube id,start second,label,train|test "
                   "(e.g. ---g-f_I2yQ,1,people marching,test)")


def read_vggsound(path: str | os.PathLike) -> list[VGGSoundRow]:
    """Every row of `vggsound.csv`; MkeError names the file, the line and what is wrong."""
    path = Path(path)
    out: list[VGGSoundRow] = []
    for n, fields in _rows(path, "VGGSound list"):
        where = f"VGGSound list {path} line {n}"
        if len(fields) < 4:
            raise MkeError(f"{where} has {len(fields)} fields; expected {VGGSOUND_FORMAT}")
        start = _number(fields[1])
        if start is None and not out and re.search("[a-z]", fields[1], re.IGNORECASE):
            continue  # a header row
        if start is None or start < 0 or not float(start).is_integer():
            raise MkeError(f"{where}: start {fields[1]!r} must be whole seconds; expected {VGGSOUND_FORMAT}")
        label, split = ", ".join(fields[2:-1]).strip(), fields[-1].lower()  # an unquoted label: its ", " back
        if split not in VGGSOUND_SPLITS:
            raise MkeError(f"{where}: split {fields[-1]!r} must be train or test; expected {VGGSOUND_FORMAT}")
        if not fields[0] or not label:
            raise MkeError(f"{where}: an empty YouTube id or label; expected {VGGSOUND_FORMAT}")
        out.append(VGGSoundRow(fields[0], int(start), label, split, n))
    return out


# --- the class map -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SharedClass:
    """One class both datasets have: its AudioSet MIDs (with display names) and its VGGSound labels."""

    name: str
    audioset: tuple[tuple[str, str], ...]  # (MID, display name)
    vggsound: tuple[str, ...]

    @property
    def mids(self) -> tuple[str, ...]:
        return tuple(mid for mid, _ in self.audioset)


@dataclass(frozen=True)
class ClassMap:
    """The shared vocabulary: K classes in order, and lookups from either dataset's labels into it."""

    classes: tuple[SharedClass, ...]
    source: str  # the file it came from

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @cached_property
    def mid_class(self) -> dict[str, int]:
        return {mid: k for k, c in enumerate(self.classes) for mid in c.mids}

    @cached_property
    def label_class(self) -> dict[str, int]:
        return {label: k for k, c in enumerate(self.classes) for label in c.vggsound}

    def audioset_target(self, mids: Iterable[str]) -> np.ndarray:
        """uint8 (K,): 1 for each shared class one of `mids` belongs to."""
        out = np.zeros(len(self), np.uint8)
        for mid in mids:
            k = self.mid_class.get(mid)
            if k is not None:
                out[k] = 1
        return out

    def vggsound_class(self, label: str) -> int | None:
        """The shared class of a VGGSound label, or None when it is outside the map."""
        return self.label_class.get(label)


ENTRY_KEYS = ("name", "audioset", "vggsound")


def load_class_map(path: str | os.PathLike | None = None) -> ClassMap:
    """The class map in `path` (YAML; None or "": the packaged default, DEFAULT_CLASS_MAP). MkeError names
    the file, the entry and the key of anything malformed or given twice."""
    path = Path(path).expanduser() if path else DEFAULT_CLASS_MAP
    what = f"class map {path}"
    if not path.is_file():
        raise MkeError(f"{what} does not exist (data.class_map); leave data.class_map empty for the default "
                       f"{DEFAULT_CLASS_MAP.name}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise MkeError(f"{what} is not valid YAML" + (f" (line {mark.line + 1})" if mark else "")
                       + f": {getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MkeError(f"{what} cannot be read ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), list) or not doc["classes"]:
        raise MkeError(f"{what} must be a mapping with a non-empty list `classes:` of entries with "
                       f"{', '.join(ENTRY_KEYS)} (see {DEFAULT_CLASS_MAP.name})")
    classes, owner_name, owner_mid, owner_label = [], {}, {}, {}
    for i, entry in enumerate(doc["classes"], 1):
        where = f"{what} entry {i}"
        if not isinstance(entry, dict):
            raise MkeError(f"{where} must be a mapping with {', '.join(ENTRY_KEYS)}, got {entry!r}")
        for key in entry:
            if key not in ENTRY_KEYS:
                hint = difflib.get_close_matches(str(key), ENTRY_KEYS, n=1)
                raise MkeError(f"{where} has key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                               + f"; an entry has {', '.join(ENTRY_KEYS)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MkeError(f"{where}: name must be a non-empty text, got {name!r}")
        name = name.strip()
        where = f"{what} entry {i} ({name!r})"
        audioset, vggsound = entry.get("audioset"), entry.get("vggsound")
        if not isinstance(audioset, dict) or not audioset:
            raise MkeError(f"{where}: audioset must map one or more MIDs to display names, e.g. "
                           f'{{"/m/0mkg": "Accordion"}}, got {audioset!r}')
        pairs = []
        for mid, display in audioset.items():
            if not isinstance(mid, str) or not MID.match(mid.strip()):
                raise MkeError(f"{where}: {mid!r} is not an AudioSet MID (/m/…, /t/…, /g/…)")
            pairs.append((mid.strip(), str(display if display is not None else "").strip()))
        vggsound = [vggsound] if isinstance(vggsound, str) else vggsound
        if (not isinstance(vggsound, list) or not vggsound
                or not all(isinstance(x, str) and x.strip() for x in vggsound)):
            raise MkeError(f"{where}: vggsound must be one or more VGGSound labels, e.g. [\"playing accordion\"], "
                           f"got {entry.get('vggsound')!r}")
        labels = [x.strip() for x in vggsound]
        for owners, keys, kind in ((owner_name, [name], "name"), (owner_mid, [m for m, _ in pairs], "MID"),
                                   (owner_label, labels, "VGGSound label")):
            for key in keys:
                if key in owners:
                    raise MkeError(f"{where}: {kind} {key!r} is already in entry {owners[key]}; each belongs to "
                                   "one class only")
                owners[key] = f"{i} ({name!r})"
        classes.append(SharedClass(name, tuple(pairs), tuple(labels)))
    return ClassMap(tuple(classes), str(path))


def check_class_map(class_map: ClassMap, class_labels: dict[str, str] | None = None,
                    vggsound_labels: Iterable[str] | None = None) -> None:
    """MkeError for a MID that `class_labels` (class_labels_indices.csv) lacks, or a label no row of
    vggsound.csv has — with the MID of a matching display name, or the nearest labels. A display name
    that differs from AudioSet's is only warned about: the MIDs decide."""
    source = Path(class_map.source).name
    if class_labels is not None:
        by_name = {n.lower(): m for m, n in class_labels.items()}
        renamed = []
        for c in class_map.classes:
            for mid, display in c.audioset:
                if mid not in class_labels:
                    hint = by_name.get(display.lower())
                    raise MkeError(f"class map {source}, class {c.name!r}: MID {mid} is not in AudioSet's "
                                   "class_labels_indices.csv"
                                   + (f" ({display!r} is {hint} there)" if hint else "") + "; correct the MID")
                if display and display != class_labels[mid]:
                    renamed.append(f"{mid} {display!r} (AudioSet: {class_labels[mid]!r})")
        if renamed:
            log.warning("class map %s: %d display names differ from AudioSet's (the MIDs decide): %s", source,
                        len(renamed), "; ".join(renamed[:WARN_NAMES]) + (" …" if len(renamed) > WARN_NAMES else ""))
    if vggsound_labels is not None:
        known = set(vggsound_labels)
        for c in class_map.classes:
            for label in c.vggsound:
                if label not in known:
                    hint = difflib.get_close_matches(label, sorted(known), n=3)
                    raise MkeError(f"class map {source}, class {c.name!r}: no row of vggsound.csv has the label "
                                   f"{label!r}" + (f" (nearest: {'; '.join(hint)})" if hint else "")
                                   + "; spell it as vggsound.csv does")


# --- finding the clips ---------------------------------------------------------------------------------

def files_under(folder: Path) -> set[str]:
    """Every file under `folder` (any depth, hidden ones left out) as a path relative to it, '/'-separated."""
    out: set[str] = set()
    stack = [(folder, "")]
    while stack:
        here, prefix = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir():
                    stack.append((Path(e.path), f"{prefix}{e.name}/"))
                else:
                    out.add(prefix + e.name)
            except OSError:
                continue
    return out


def audioset_fields(seg: Segment) -> dict:
    start, end = int(math.floor(seg.start_s + 1e-6)), int(math.floor(seg.end_s + 1e-6))
    return {"ytid": seg.ytid, "start": start, "start_ms": int(round(seg.start_s * 1000)), "end": end,
            "end_ms": int(round(seg.end_s * 1000))}


def vggsound_fields(row: VGGSoundRow) -> dict:
    return {"ytid": row.ytid, "start": row.start_s, "start_ms": row.start_s * 1000, "label": row.label,
            "split": row.split}


@dataclass
class Located:
    """Where each row's clip is (relative to the clips folder; None: skipped) and what was skipped."""

    files: list[str | None]
    skipped: list[dict]        # {"file", "reason"}
    stamps: list[str]          # "file\\0size\\0mtime" of each found clip: a fingerprint for caches


def locate_clips(folder: Path, rows: Sequence[dict], patterns: Sequence[str]) -> Located:
    """The first of `patterns`, formatted with each row's fields, that names a file under `folder`. A row
    with none is missing (named by the first pattern); a 0-byte file is skipped as empty."""
    present = files_under(folder) if folder.is_dir() else set()
    files: list[str | None] = []
    skipped, stamps = [], []
    for fields in rows:
        names = [p.format(**fields) for p in patterns]
        found = next((n for n in names if n in present), None)
        if found is None:
            skipped.append({"file": names[0], "reason": "missing"})
            files.append(None)
            continue
        try:
            st = (folder / found).stat()
        except OSError as exc:
            skipped.append({"file": found, "reason": f"unreadable ({exc.strerror or exc})"})
            files.append(None)
            continue
        if st.st_size == 0:
            skipped.append({"file": found, "reason": "empty file (0 bytes)"})
            files.append(None)
            continue
        stamps.append(f"{found}\0{st.st_size}\0{st.st_mtime_ns}")
        files.append(found)
    return Located(files, skipped, stamps)


def warn_skipped(what: str, skipped: Sequence[dict], total: int, where: Path | str) -> None:
    """One warning for all the clips of `what` skipped: the count by reason and the first few names."""
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for s in skipped:
        key = "missing" if s["reason"] == "missing" else "corrupt"
        reasons[key] = reasons.get(key, 0) + 1
    named = "; ".join(f"{s['file']} ({s['reason']})" for s in skipped[:WARN_NAMES])
    more = f" … and {len(skipped) - WARN_NAMES} more" if len(skipped) > WARN_NAMES else ""
    log.warning("%s: skipped %d of %d clips under %s (%s): %s%s", what, len(skipped), total, where,
                ", ".join(f"{n} {r}" for r, n in reasons.items()), named, more)


# --- the indices ---------------------------------------------------------------------------------------

@dataclass
class AudioSetIndex:
    """Labeled AudioSet audio over the shared classes: clips with at least one shared class, found on disk.

    `files` are relative to `root`; `targets` uint8 (N, K) multilabel over `class_names`; `sources` the
    segment list each row came from. `summary` counts what was read, left out and skipped."""

    root: Path
    files: np.ndarray
    ytids: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    targets: np.ndarray
    sources: np.ndarray
    class_names: tuple[str, ...]
    summary: dict = field(default_factory=dict)
    fingerprint: str = ""  # sha256 of every used clip's name, size and time

    def __len__(self) -> int:
        return len(self.files)

    def paths(self) -> list[Path]:
        return [self.root / f for f in self.files]


@dataclass
class VGGSoundIndex:
    """VGGSound clips of the shared classes found on disk: `labels` int64 (N,) shared-class indices,
    `splits` "train" or "test", `vggsound_labels` the original labels; files relative to `root`."""

    root: Path
    files: np.ndarray
    ytids: np.ndarray
    start_s: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    vggsound_labels: np.ndarray
    class_names: tuple[str, ...]
    summary: dict = field(default_factory=dict)
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.files)

    def paths(self) -> list[Path]:
        return [self.root / f for f in self.files]

    def targets(self) -> np.ndarray:
        """uint8 (N, K): each clip's one class as a multilabel row, comparable with AudioSet's targets."""
        out = np.zeros((len(self), len(self.class_names)), np.uint8)
        out[np.arange(len(self)), self.labels] = 1
        return out

    def split(self, name: str) -> np.ndarray:
        """Row indices of the "train" or "test" split."""
        if name not in VGGSOUND_SPLITS:
            raise MkeError(f"VGGSound has the splits train and test, not {name!r}")
        return np.flatnonzero(self.splits == name)


@dataclass
class SharedIndices:
    class_map: ClassMap
    audioset: AudioSetIndex
    vggsound: VGGSoundIndex


def _digest(stamps: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def index_audioset(root: Path, s: dict, class_map: ClassMap) -> AudioSetIndex:
    """The AudioSet index of settings `s["audioset"]` (data_settings) under `root`."""
    a = s["audioset"]
    segments: list[tuple[Segment, str]] = []
    seen: set[tuple[str, float]] = set()
    rows = duplicates = outside = 0
    for rel in a["segments"]:
        path = _file(root, rel, "data.audioset.segments", "AudioSet segment list")
        for seg in read_segments(path):
            rows += 1
            key = (seg.ytid, seg.start_s)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            if any(m in class_map.mid_class for m in seg.mids):
                segments.append((seg, Path(rel).name))
            else:
                outside += 1
    folder = root / Path(a["clips"]).expanduser()
    if not folder.is_dir():
        raise MkeError(f"AudioSet clips folder {folder} does not exist (data.audioset.clips={a['clips']}); it must "
                       f"hold the clips as {a['pattern'][0]}")
    located = locate_clips(folder, [audioset_fields(seg) for seg, _ in segments], a["pattern"])
    clips = _rel(folder, root)
    for item in located.skipped:
        item["file"] = f"{clips}/{item['file']}"
    warn_skipped("AudioSet", located.skipped, len(segments), folder)
    keep = [i for i, f in enumerate(located.files) if f is not None]
    if not keep:
        raise MkeError(f"no AudioSet clip of the shared classes under {folder}: {len(segments)} segments of "
                       f"{', '.join(a['segments'])} have a shared class, and none has a file named like "
                       f"{located.skipped[0]['file'] if located.skipped else a['pattern'][0]} "
                       f"(data.audioset.pattern={a['pattern']})")
    targets = np.stack([class_map.audioset_target(segments[i][0].mids) for i in keep])
    index = AudioSetIndex(
        root=root, files=np.array([f"{clips}/{located.files[i]}" for i in keep]),
        ytids=np.array([segments[i][0].ytid for i in keep]),
        start_s=np.array([segments[i][0].start_s for i in keep], np.float64),
        end_s=np.array([segments[i][0].end_s for i in keep], np.float64), targets=targets,
        sources=np.array([segments[i][1] for i in keep]), class_names=class_map.names,
        fingerprint=_digest(located.stamps))
    per_class = dict(zip(class_map.names, targets.sum(axis=0).astype(int).tolist()))
    empty = [name for name, n in per_class.items() if n == 0]
    if empty:
        log.warning("AudioSet: no clip of %d shared classes (%s%s): they cannot be learned from D_l", len(empty),
                    "; ".join(empty[:WARN_NAMES]), " …" if len(empty) > WARN_NAMES else "")
    index.summary = {"segments": rows, "duplicates": duplicates, "outside_classes": outside,
                     "with_shared_class": len(segments), "clips": len(keep), "per_class": per_class,
                     "classes_without_clips": empty, "skipped_count": len(located.skipped),
                     "skipped": located.skipped}
    return index


def index_vggsound(root: Path, s: dict, class_map: ClassMap, rows: list[VGGSoundRow] | None = None) -> VGGSoundIndex:
    """The VGGSound index of settings `s["vggsound"]` (data_settings) under `root`."""
    v = s["vggsound"]
    if rows is None:
        rows = read_vggsound(_file(root, v["csv"], "data.vggsound.csv", "VGGSound list"))
    chosen: list[tuple[VGGSoundRow, int]] = []
    seen: set[tuple[str, int]] = set()
    duplicates = outside = 0
    for row in rows:
        key = (row.ytid, row.start_s)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        k = class_map.vggsound_class(row.label)
        if k is None:
            outside += 1
        else:
            chosen.append((row, k))
    folder = root / Path(v["clips"]).expanduser()
    if not folder.is_dir():
        raise MkeError(f"VGGSound clips folder {folder} does not exist (data.vggsound.clips={v['clips']}); it must "
                       f"hold the clips as {v['pattern'][0]}")
    located = locate_clips(folder, [vggsound_fields(row) for row, _ in chosen], v["pattern"])
    clips = _rel(folder, root)
    for item in located.skipped:
        item["file"] = f"{clips}/{item['file']}"
    warn_skipped("VGGSound", located.skipped, len(chosen), folder)
    keep = [i for i, f in enumerate(located.files) if f is not None]
    if not keep:
        raise MkeError(f"no VGGSound clip of the shared classes under {folder}: {len(chosen)} rows of {v['csv']} "
                       f"have a shared class, and none has a file named like "
                       f"{located.skipped[0]['file'] if located.skipped else v['pattern'][0]} "
                       f"(data.vggsound.pattern={v['pattern']})")
    index = VGGSoundIndex(
        root=root, files=np.array([f"{clips}/{located.files[i]}" for i in keep]),
        ytids=np.array([chosen[i][0].ytid for i in keep]),
        start_s=np.array([chosen[i][0].start_s for i in keep], np.int64),
        labels=np.array([chosen[i][1] for i in keep], np.int64),
        splits=np.array([chosen[i][0].split for i in keep]),
        vggsound_labels=np.array([chosen[i][0].label for i in keep]), class_names=class_map.names,
        fingerprint=_digest(located.stamps))
    per_split = {}
    for split in VGGSOUND_SPLITS:
        counts = np.bincount(index.labels[index.splits == split], minlength=len(class_map))
        per_split[split] = dict(zip(class_map.names, counts.astype(int).tolist()))
    for split, counts in per_split.items():
        empty = [name for name, n in counts.items() if n == 0]
        if empty:
            log.warning("VGGSound: no %s clip of %d shared classes (%s%s)", split, len(empty),
                        "; ".join(empty[:WARN_NAMES]), " …" if len(empty) > WARN_NAMES else "")
    index.summary = {"rows": len(rows), "duplicates": duplicates, "outside_classes": outside,
                     "with_shared_class": len(chosen), "clips": len(keep),
                     "clips_per_split": {sp: int((index.splits == sp).sum()) for sp in VGGSOUND_SPLITS},
                     "per_class": per_split, "skipped_count": len(located.skipped), "skipped": located.skipped}
    return index


def load_indices(data_cfg: dict) -> SharedIndices:
    """The class map (checked against class_labels_indices.csv and vggsound.csv), the labeled AudioSet
    audio index and the VGGSound index, from the `data:` settings (data.root and DATA_DEFAULTS' keys)."""
    root = data_root(data_cfg)
    s = data_settings(data_cfg)
    class_map = load_class_map(s["class_map"] or None)
    class_labels = None
    if s["audioset"]["class_labels"]:
        class_labels = read_class_labels(_file(root, s["audioset"]["class_labels"], "data.audioset.class_labels",
                                               "AudioSet class list"))
    rows = read_vggsound(_file(root, s["vggsound"]["csv"], "data.vggsound.csv", "VGGSound list"))
    check_class_map(class_map, class_labels, {r.label for r in rows})
    return SharedIndices(class_map, index_audioset(root, s, class_map), index_vggsound(root, s, class_map, rows))
