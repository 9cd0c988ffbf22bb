"""RAVDESS (Livingstone & Russo, 2018), read from the files a user has: the paper's emotion task.

Layout: folders `Actor_01` … `Actor_24` anywhere up to three levels under `data.root` (the archives
unpack the video and the audio of an actor into separate `Actor_NN` folders: both are read), each
holding files named by seven two-digit fields,

    modality-vocal channel-emotion-intensity-statement-repetition-actor.ext   e.g. 02-01-06-01-02-01-12.mp4

modality 01 audio-video (.mp4), 02 video-only (.mp4), 03 audio-only (.wav); vocal channel 01 speech,
02 song; emotion 01 neutral … 08 surprised (EMOTIONS); intensity 01 normal, 02 strong; statement and
repetition 01 or 02; actor 01 … 24 (odd male, even female; the folder's number). Video is 720p H.264
at 29.97 fps, audio 48 kHz 16-bit PCM. A file whose name breaks these rules is skipped with a warning.

A clip is one *take* — the six fields after the modality: its images come from the take's 01 or 02
mp4 (OpenCV), its sound from its 03 wav (the stdlib `wave`), or, lacking that, from the 01 mp4's own
sound track (`data.video_audio`; decoded by the FFmpeg of the optional `imageio-ffmpeg` wheel, since
OpenCV's video reader gives no audio). Each clip is the window [start_s, start_s + clip_seconds] of
its take: F = clip_seconds / frame_period_s images, the one on screen at start_s + frame_period_s,
+ 2 × frame_period_s, … (the last at the window's end; a video that ends earlier holds its last
frame), each resized whole to image_size² — as the runtime resizes a camera's frame, so a live
camera sees what training saw — or, with `face_crop`, a square around the face OpenCV's bundled
Haar cascade finds (the median box over the clip's images; a centre square where it finds none,
counted; OpenCV 4 only, as OpenCV 5 ships no cascades; the runtime does not crop faces, so a live
camera must frame the face alike), and the window's sound as 16-bit mono (channels averaged) at the
files' own rate (`audio_rate`, 48 kHz; the model's features resample it with the runtime's one
resampler). Sound shorter than the window is padded with silence.

Files that cannot be used are skipped, each with a warning (logger `mke.train.datasets.ravdess`)
naming it and the reason, and listed in `data_summary`: names that break the rules, undecodable
mp4s, empty or unreadable wavs, wavs at another rate, a take with no sound (a 02 mp4 without its 03
wav, a 01 mp4 whose track cannot be read) or no picture (a 03 wav without an mp4), and the partner
of a take whose other half failed. A missing `Actor_NN` folder (NN ≤ `actors`) is warned about
("Actor_07 missing"). Songs are not skipped but left out by choice (`vocal`: speech, song or both;
songs have no disgust or surprised, and some actors recorded none). A wav that is not 16-bit PCM is
an error naming it: convert it.

Splits (`split`): "actor" (default, the honest protocol): `test_actors` and `val_actors` are held out
whole (alternately male and female, chosen by the seed), and the other actors' clips are divided
D_l : D_u = labeled_share : 1 − labeled_share (2 : 8), D_l class-balanced. "paper" (the paper's): all
clips at random, D_l : D_u = 2 : 8, then D_u 8 : 1 : 1 into unlabeled, val and test (`val_share`,
`test_share` of D_u); the same actors appear in training and test.

The decoded clips are cached once per decoding config in `<cache_dir>/ravdess-<hash>/` (clips.npz,
then data.json, written into a temporary folder renamed into place when complete); the hash covers
data.root (resolved), every file's name, size and time under the actor folders, and the settings
that change the clips. Splits are drawn from the cache on each load, so another seed or protocol
reuses it; clips.npz is read memory-mapped, a split's frames and audio are `FrameArray`s of its rows
(a clip read from disk when used, its int16 sound as float32). Torch-free: numpy and OpenCV.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import tempfile
import time
import wave
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mke.runtime.errors import MkeError
from mke.runtime.fileio import building_cache, cache_complete, cache_folder
from mke.train import datasets
from mke.train.datasets.builtin_av import AVClips
from mke.train.datasets.frame_arrays import rows_of
from mke.train.datasets.frame_cache import npz_memmaps

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # part of the cache key: a change to what is decoded gets a new folder
SPLITS = ("labeled", "unlabeled", "val", "test")
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = {1: "audio-video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.(mp4|wav)$", re.IGNORECASE)
ACTOR_FOLDER = re.compile(r"^Actor_(\d\d)$", re.IGNORECASE)
SEARCH_DEPTH = 3          # levels under data.root searched for Actor_NN folders
FACE_CASCADE = "haarcascade_frontalface_default.xml"
FACE_MARGIN = 1.3         # the crop's side: the detected box's larger side times this
FACE_DETECT_WIDTH = 320   # pixels: frames are shrunk to this width for detection
FFMPEG_TIMEOUT_S = 120

DATA_DEFAULTS: dict = {
    "seed": 0,
    "actors": 24,              # Actor_01 … Actor_NN expected; a missing one is warned about
    "vocal": "speech",         # speech, song or both
    "split": "actor",          # actor (held-out actors) or paper (random 2 : 8, D_u 8 : 1 : 1)
    "labeled_share": 0.2,      # D_l : D_u = 2 : 8 (of the training actors' clips, or of all clips)
    "val_actors": 2,           # split actor: held out whole
    "test_actors": 3,
    "val_share": 0.1,          # split paper: shares of D_u (8 : 1 : 1)
    "test_share": 0.1,
    "start_s": 0.0,            # seconds: where the clip's window starts in the take
    "clip_seconds": 3.0,       # seconds: the window's length
    "frame_period_s": 0.5,     # seconds between images, the last at the window's end
    "image_size": 64,          # pixels, square
    "face_crop": False,        # a square around the face (Haar cascade, OpenCV 4), else the whole frame
    "video_audio": True,       # a take without its wav: the 01 mp4's own sound track (imageio-ffmpeg)
    "audio_rate": 48000,       # Hz of the files; one at another rate is skipped
}
CHOICES = {"vocal": ("speech", "song", "both"), "split": ("actor", "paper")}
DECODE_KEYS = ("vocal", "start_s", "clip_seconds", "frame_period_s", "image_size", "face_crop", "video_audio",
               "audio_rate")  # the settings that change the decoded clips: they name the cache folder


class Unusable(Exception):
    """A media file that cannot be used; the message is the reason the warning gives."""


# --- settings ------------------------------------------------------------------------------------------

def data_settings(data_cfg: dict) -> dict:
    """DATA_DEFAULTS overlaid with `data_cfg` (other keys — root, cache_dir — left out), each value of its
    default's kind and checked: MkeError names a wrong field."""
    s = {key: _typed(key, data_cfg.get(key, default), default) for key, default in DATA_DEFAULTS.items()}

    def need(ok: bool, text: str) -> None:
        if not ok:
            raise MkeError(f"data.{text}")

    need(1 <= s["actors"] <= 99, f"actors must be 1..99 (Actor_01 … Actor_NN), got {s['actors']}")
    need(0.0 < s["labeled_share"] < 1.0, f"labeled_share must lie in (0, 1), got {s['labeled_share']}")
    need(s["val_actors"] >= 0 and s["test_actors"] >= 1,
         f"val_actors must be >= 0 and test_actors >= 1, got {s['val_actors']} and {s['test_actors']}")
    need(s["val_share"] >= 0 and s["test_share"] > 0 and s["val_share"] + s["test_share"] < 1,
         f"val_share must be >= 0, test_share > 0 and their sum < 1, got {s['val_share']} and {s['test_share']}")
    need(s["start_s"] >= 0, f"start_s must be >= 0 seconds, got {s['start_s']}")
    need(0 < s["frame_period_s"] <= s["clip_seconds"],
         f"clip_seconds ({s['clip_seconds']}) must be at least frame_period_s ({s['frame_period_s']}) > 0")
    need(s["image_size"] >= 8, f"image_size must be >= 8 pixels, got {s['image_size']}")
    need(s["audio_rate"] >= 8000, f"audio_rate must be >= 8000 Hz, got {s['audio_rate']}")
    return s


def _typed(key: str, value, default):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise MkeError(f"data.{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, str):
        if value not in CHOICES[key]:
            raise MkeError(f"data.{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
    if isinstance(default, int):
        if not (number and float(value).is_integer()):
            raise MkeError(f"data.{key} must be an integer, got {value!r}")
        return int(value)
    if not number:
        raise MkeError(f"data.{key} must be a number, got {value!r}")
    return float(value)


def frame_times(s: dict) -> np.ndarray:
    """Seconds from the window's start of each image: period, 2·period, … up to the window's end."""
    period = float(s["frame_period_s"])
    return period * np.arange(1, int(np.floor(float(s["clip_seconds"]) / period + 1e-9)) + 1)


# --- names ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RavdessName:
    """The seven fields of a RAVDESS file name, as numbers (1-based, as written)."""

    modality: int
    vocal: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def take(self) -> tuple[int, int, int, int, int, int]:
        """The six fields after the modality: the recording that a take's 01, 02 and 03 files share."""
        return self.actor, self.vocal, self.emotion, self.intensity, self.statement, self.repetition

    def file_name(self, modality: int) -> str:
        fields = (modality,) + (self.vocal, self.emotion, self.intensity, self.statement, self.repetition,
                                self.actor)
        return "-".join(f"{f:02d}" for f in fields) + (".wav" if modality == 3 else ".mp4")


def parse_name(name: str) -> RavdessName:
    """The fields of a RAVDESS file name; MkeError says which rule `name` breaks."""
    m = NAME.match(name)
    if m is None:
        raise MkeError("not a RAVDESS name (seven two-digit fields, e.g. 03-01-06-01-02-01-12.wav)")
    f = RavdessName(*(int(g) for g in m.groups()[:7]))
    ranges = {"modality": (1, 3), "vocal": (1, 2), "emotion": (1, 8), "intensity": (1, 2), "statement": (1, 2),
              "repetition": (1, 2), "actor": (1, 99)}
    for field, (low, high) in ranges.items():
        value = getattr(f, field)
        if not low <= value <= high:
            raise MkeError(f"{field} field {value:02d} is outside {low:02d}..{high:02d}")
    ext = m.group(8).lower()
    if (ext == "wav") != (f.modality == 3):
        raise MkeError(f"modality {f.modality:02d} ({MODALITIES[f.modality]}) must be a "
                       f".{'wav' if f.modality == 3 else 'mp4'} file, not .{ext}")
    return f


# --- finding the files ---------------------------------------------------------------------------------

def _expected() -> str:
    return ("folders Actor_01 … Actor_24 (directly or up to three levels below it) holding RAVDESS files "
            "such as 01-01-03-01-01-01-01.mp4 (audio-video), 02-….mp4 (video-only) and 03-….wav (audio-only)")


def data_root(data_cfg: dict) -> Path:
    """data.root, checked to be a folder; MkeError says what it must hold."""
    return datasets.data_root(data_cfg, "RAVDESS", "ravdess", "/data/ravdess", _expected())


@dataclass
class Scan:
    """What lies under data.root: usable names, and what was found wrong before decoding anything."""

    root: Path
    media: list[tuple[str, RavdessName]]   # (path relative to root, its fields), sorted
    skipped: list[dict]                     # {"file", "reason"}: names that break the rules
    missing: list[str]                      # "Actor_07", …
    fingerprint: str                        # sha256 of every file's name, size and time


def scan_root(data_cfg: dict, actors: int) -> Scan:
    """Every file of the Actor_NN folders under data.root (cheap: names and stats, no decoding)."""
    root = data_root(data_cfg)
    folders: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir())
        except OSError:
            return
        for child in children:
            if ACTOR_FOLDER.match(child.name):
                folders.append(child)
            elif depth < SEARCH_DEPTH and not child.name.startswith("."):
                walk(child, depth + 1)

    if ACTOR_FOLDER.match(root.name):
        folders.append(root)
    else:
        walk(root, 1)
    if not folders:
        raise MkeError(f"data.root {root} holds no Actor_NN folder; it must hold {_expected()}")
    present = {int(ACTOR_FOLDER.match(f.name).group(1)) for f in folders}
    missing = [f"Actor_{a:02d}" for a in range(1, actors + 1) if a not in present]
    media, skipped, stamps = [], [], []
    for folder in folders:
        number = int(ACTOR_FOLDER.match(folder.name).group(1))
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue  # hidden files (macOS "._…" companions) and subfolders
            rel = path.relative_to(root).as_posix()
            st = path.stat()
            stamps.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}")
            if path.suffix.lower() not in (".mp4", ".wav"):
                continue  # not media: README, checksums
            try:
                fields = parse_name(path.name)
            except MkeError as exc:
                skipped.append({"file": rel, "reason": f"bad name: {exc}"})
                continue
            if fields.actor != number:
                skipped.append({"file": rel, "reason": f"bad name: actor field {fields.actor:02d} in folder "
                                                       f"{folder.name}"})
                continue
            media.append((rel, fields))
    fingerprint = hashlib.sha256("\n".join(stamps).encode()).hexdigest()
    return Scan(root=root, media=media, skipped=skipped, missing=missing, fingerprint=fingerprint)


# --- reading media -------------------------------------------------------------------------------------

def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """int16 (channels, samples) and the rate in Hz of a 16-bit PCM wav. Unusable (the reason) for an
    empty or unreadable file; MkeError naming the file for another sample width."""
    if path.stat().st_size == 0:
        raise Unusable("empty wav (0 bytes)")
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, OSError, ValueError) as exc:
        raise Unusable(f"unreadable wav ({exc or type(exc).__name__})") from None
    if width != 2:
        raise MkeError(f"{path} is {8 * width}-bit PCM; RAVDESS's wavs are 16-bit and this reader takes only "
                       f"those: convert it (e.g. sox IN.wav -b 16 OUT.wav) or move it out of data.root")
    samples = np.frombuffer(raw, "<i2")
    samples = samples[:len(samples) // channels * channels].reshape(-1, channels).T
    if samples.shape[1] == 0:
        raise Unusable("empty wav (no samples)")
    return samples, rate


def read_video_audio(path: Path) -> tuple[np.ndarray, int]:
    """The sound track of an mp4 as int16 (channels, samples) and its rate, decoded by the FFmpeg that the
    `imageio-ffmpeg` wheel ships (OpenCV's reader gives no audio); Unusable when it is not installed or
    the file has no readable track."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise Unusable("reading a video's own sound track needs imageio-ffmpeg (pip install imageio-ffmpeg)") \
            from None
    with tempfile.TemporaryDirectory(prefix="mke-ravdess-") as tmp:
        out = Path(tmp) / "track.wav"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
               "-vn", "-c:a", "pcm_s16le", "-f", "wav", str(out)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unusable(f"FFmpeg could not read its sound track ({exc})") from None
        if done.returncode != 0 or not out.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            if any("matches no streams" in line for line in lines):
                raise Unusable("the video has no sound track")
            raise Unusable(f"FFmpeg could not read its sound track ({lines[-1] if lines else done.returncode})")
        return read_wav(out)


def audio_window(samples: np.ndarray, rate: int, s: dict) -> tuple[np.ndarray, float]:
    """int16 (channels, n) → int16 (round(clip_seconds · rate),): the window's sound, channels averaged,
    padded with silence past the take's end; and the seconds padded."""
    from mke.runtime.audio_features import to_mono

    start, n = int(round(s["start_s"] * rate)), int(round(s["clip_seconds"] * rate))
    mono = to_mono(samples[:, start:start + n].astype(np.float32))[0]
    out = np.zeros(n, np.int16)
    out[:len(mono)] = np.clip(np.round(mono), -32768, 32767).astype(np.int16)
    return out, (n - len(mono)) / rate


@lru_cache(maxsize=1)
def _face_detector():
    """OpenCV's bundled frontal-face Haar cascade. OpenCV 5 dropped the cascades from its main module
    (and opencv-python 5 ships no xml files): MkeError says what to do there."""
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = folder + FACE_CASCADE
    if not hasattr(cv2, "CascadeClassifier") or not Path(path).is_file():
        raise MkeError(f"data.face_crop needs OpenCV's Haar cascade ({FACE_CASCADE}), which OpenCV "
                       f"{cv2.__version__} does not ship: install opencv-python<5 (4.x bundles it), or set "
                       f"data.face_crop=false")
    detector = cv2.CascadeClassifier(path)
    if detector.empty():
        raise MkeError(f"OpenCV cannot load its face cascade {path}: reinstall opencv-python, or set "
                       f"data.face_crop=false")
    return detector


def face_box(images: list[np.ndarray]) -> tuple[int, int, int] | None:
    """(x, y, side) of a square around the face in BGR `images` of one take — the median of each image's
    largest detection, enlarged by FACE_MARGIN and moved inside the frame — or None when none is found."""
    import cv2

    boxes = []
    for image in images:
        h, w = image.shape[:2]
        scale = min(1.0, FACE_DETECT_WIDTH / w)
        grey = cv2.cvtColor(cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                                       interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        minimum = max(12, int(0.12 * min(grey.shape)))
        found = _face_detector().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                                  minSize=(minimum, minimum))
        if len(found):
            x, y, bw, bh = max(found, key=lambda b: b[2] * b[3]) / scale
            boxes.append((x + bw / 2, y + bh / 2, max(bw, bh)))
    if not boxes:
        return None
    h, w = images[0].shape[:2]
    cx, cy, side = np.median(np.array(boxes), axis=0)
    side = int(round(min(side * FACE_MARGIN, h, w)))
    x = int(round(np.clip(cx - side / 2, 0, w - side)))
    y = int(round(np.clip(cy - side / 2, 0, h - side)))
    return x, y, side


def read_frames(path: Path, times_s: np.ndarray, size: int, face_crop: bool) -> tuple[np.ndarray, bool | None]:
    """uint8 (F, size, size, 3) RGB: the image on screen at each of `times_s` (seconds from the video's
    start; the last frame held past its end), read in order with cv2.VideoCapture; and whether a face
    was found (None without `face_crop`). Unusable when the file cannot be decoded."""
    import cv2

    if path.stat().st_size == 0:
        raise Unusable("empty mp4 (0 bytes)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise Unusable("corrupt or undecodable mp4 (OpenCV cannot open it)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not (fps and np.isfinite(fps) and fps > 0):
            raise Unusable("corrupt or undecodable mp4 (no frame rate)")
        wanted = [int(np.floor(t * fps + 1e-6)) for t in times_s]
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count > 0:
            wanted = [min(i, count - 1) for i in wanted]
        needed, got, index = set(wanted), {}, 0
        while index <= max(wanted) and cap.grab():
            if index in needed:
                ok, image = cap.retrieve()
                if ok and image is not None:
                    got[index] = image
            index += 1
    finally:
        cap.release()
    if not got:
        raise Unusable("corrupt or undecodable mp4 (no frame could be decoded)")
    images, last = [], None
    for i in wanted:  # a frame past the decoded ones holds the last decoded before it
        last = got.get(i, last if last is not None else got[min(got)])
        images.append(last)
    found = None
    if face_crop:
        box = face_box(images)
        found = box is not None
        h, w = images[0].shape[:2]
        if box is None:
            side = min(h, w)
            box = ((w - side) // 2, (h - side) // 2, side)
        x, y, side = box
        images = [image[y:y + side, x:x + side] for image in images]
    out = np.stack([cv2.cvtColor(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                    for image in images])
    return out, found


# --- decoding every take -------------------------------------------------------------------------------

def _skip(skipped: list[dict], rel: str, reason: str) -> None:
    skipped.append({"file": rel, "reason": reason})
    log.warning("RAVDESS: skipped %s: %s", rel, reason)


def _wav_audio(scan: Scan, wavs: list[str], s: dict, skipped: list[dict]) -> tuple | None:
    """(file, int16 (C, n), rate) of the take's first usable wav; each unusable one skipped."""
    for rel in wavs:
        try:
            samples, rate = read_wav(scan.root / rel)
            if rate != s["audio_rate"]:
                raise Unusable(f"{rate} Hz, not data.audio_rate={s['audio_rate']} Hz")
            return rel, samples, rate
        except Unusable as exc:
            _skip(skipped, rel, str(exc))
    return None


def _track_audio(scan: Scan, videos: list[str], s: dict) -> tuple[tuple | None, list[str]]:
    """(file, int16 (C, n), rate) of the first audio-video mp4 whose own track reads, and why the others failed."""
    failures = []
    for rel in videos:
        try:
            samples, rate = read_video_audio(scan.root / rel)
            if rate != s["audio_rate"]:
                raise Unusable(f"its sound track is {rate} Hz, not data.audio_rate={s['audio_rate']} Hz")
            return (f"{rel} (own track)", samples, rate), failures
        except Unusable as exc:
            failures.append(str(exc))
    return None, failures


def _decode_take(scan: Scan, files: dict[int, list[str]], s: dict, times: np.ndarray,
                 skipped: list[dict]) -> dict | None:
    """One take's clip (frames, sound and where they came from), or None with its files skipped."""
    videos, wavs = files[1] + files[2], files[3]
    audio = _wav_audio(scan, wavs, s, skipped)
    if not videos:
        for rel in wavs if audio is not None else []:
            _skip(skipped, rel, "no picture: no 01 or 02 .mp4 of this take")
        return None
    no_wav = (f"its audio-only partner {wavs[0]} is unusable" if wavs
              else f"no audio-only partner {parse_name(Path(videos[0]).name).file_name(3)}")
    if audio is None and not (s["video_audio"] and files[1]):
        why = f"no audio: {no_wav}"
        if files[1]:
            why += " (data.video_audio=false: the video's own track is not read)"
        for rel in videos:
            _skip(skipped, rel, why)
        return None
    frames = None
    for rel in videos:
        try:
            frames, face = read_frames(scan.root / rel, times, s["image_size"], s["face_crop"])
            video = rel
            break
        except Unusable as exc:
            _skip(skipped, rel, str(exc))
    if frames is None:
        if audio is not None:
            _skip(skipped, audio[0], f"no picture: the take's video {videos[-1]} is undecodable")
        return None
    if audio is None:  # a take without a usable wav: the audio-video file's own track
        audio, failures = _track_audio(scan, files[1], s)
        if audio is None:
            for rel in videos:
                _skip(skipped, rel, f"no audio: {no_wav}, and " + "; ".join(failures))
            return None
    pcm, padded = audio_window(audio[1], audio[2], s)
    return {"frames": frames, "audio": pcm, "video": video, "sound": audio[0], "padded_s": padded, "face": face}


def decode(scan: Scan, s: dict, progress: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Every chosen take's clip (arrays: frames, audio int16, labels, actors 0-based, per-clip metadata)
    and what the report tells (counts, skipped files, missing actors). Warns for each skipped file."""
    if s["face_crop"]:
        _face_detector()  # fails now, before any decoding, where OpenCV has no cascade
    for name in scan.missing:
        log.warning("RAVDESS: %s missing under %s", name, scan.root)
    skipped = []
    for item in scan.skipped:
        _skip(skipped, item["file"], item["reason"])
    vocal = {"speech": (1,), "song": (2,), "both": (1, 2)}[s["vocal"]]
    takes: dict[tuple, dict[int, list[str]]] = {}
    found = {m: 0 for m in MODALITIES}
    excluded = 0
    for rel, f in scan.media:
        found[f.modality] += 1
        if f.vocal not in vocal:
            excluded += 1
            continue
        takes.setdefault(f.take, {1: [], 2: [], 3: []})[f.modality].append(rel)
    times = float(s["start_s"]) + frame_times(s)
    rows = []
    for take, files in tqdm(sorted(takes.items()), desc="ravdess: decoding", unit="clip", disable=not progress,
                            leave=False):
        clip = _decode_take(scan, files, s, times, skipped)
        if clip is not None:
            actor, clip["vocal"], emotion, clip["intensity"], clip["statement"], clip["repetition"] = take
            rows.append({**clip, "label": emotion - 1, "actor": actor - 1})
    if not rows:
        raise MkeError(f"no usable RAVDESS clip under {scan.root}: {len(skipped)} files skipped"
                       + (f" (first: {skipped[0]['file']}: {skipped[0]['reason']})" if skipped else "")
                       + f", {excluded} left out by data.vocal={s['vocal']}; it must hold {_expected()}")

    def column(key, dtype):
        return np.array([r[key] for r in rows], dtype)

    arrays = {"frames": np.stack([r["frames"] for r in rows]), "audio": np.stack([r["audio"] for r in rows]),
              "labels": column("label", np.int64), "actors": column("actor", np.int64)}
    for key in ("vocal", "intensity", "statement", "repetition"):
        arrays[key] = column(key, np.int64)
    arrays["padded_s"] = column("padded_s", np.float64)
    arrays["face_found"] = np.array([bool(r["face"]) for r in rows])
    arrays["videos"], arrays["sounds"] = column("video", str), column("sound", str)
    own = sum(r["sound"].endswith("(own track)") for r in rows)
    faces = sum(r["face"] is True for r in rows)
    report = {"found": {f"{m:02d} {MODALITIES[m]}": n for m, n in found.items()}, "left_out": excluded,
              "audio_sources": {"wav": len(rows) - own, "video track": own},
              "faces": {"found": faces, "centre crop": len(rows) - faces} if s["face_crop"] else None,
              "padded": int((arrays["padded_s"] > 0).sum()), "missing_actors": list(scan.missing),
              "skipped": skipped}
    return arrays, report


# --- splits --------------------------------------------------------------------------------------------

def _balanced(indices: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """`k` of `indices`, class-balanced: round robin over the classes in a random order within each."""
    perm = rng.permutation(indices)
    rank = np.empty(len(perm), np.int64)
    for c in np.unique(labels[perm]):
        at = np.flatnonzero(labels[perm] == c)
        rank[at] = np.arange(len(at))
    return perm[np.argsort(rank, kind="stable")[:k]]


def held_out_actors(actors: np.ndarray, s: dict) -> tuple[list[int], list[int]]:
    """(test, val) actors (0-based) of split "actor": alternately male (odd actor numbers) and female,
    in an order drawn by the seed."""
    present = np.unique(actors)
    if len(present) <= s["test_actors"] + s["val_actors"]:
        raise MkeError(f"data.split=actor holds out {s['test_actors']} test and {s['val_actors']} val actors, "
                       f"but only {len(present)} actors have clips: hold out fewer or use data.split=paper")
    rng = np.random.default_rng([s["seed"], 21])
    groups = [rng.permutation(present[present % 2 == 0]), rng.permutation(present[present % 2 == 1])]
    if rng.random() < 0.5:
        groups.reverse()
    order = [int(a) for pair in zip(*groups) for a in pair]
    longer = groups[0] if len(groups[0]) > len(groups[1]) else groups[1]
    order += [int(a) for a in longer[min(len(groups[0]), len(groups[1])):]]
    test = order[:s["test_actors"]]
    return test, order[s["test_actors"]:s["test_actors"] + s["val_actors"]]


def split_indices(labels: np.ndarray, actors: np.ndarray, s: dict) -> dict[str, np.ndarray]:
    """Clip indices of each split (ascending) by `split` (module docstring), from the seed."""
    n = len(labels)
    rng = np.random.default_rng([s["seed"], 22])
    if s["split"] == "paper":
        order = rng.permutation(n)
        n_labeled = int(round(s["labeled_share"] * n))
        pool = order[n_labeled:]
        n_test, n_val = int(round(s["test_share"] * len(pool))), int(round(s["val_share"] * len(pool)))
        out = {"labeled": order[:n_labeled], "test": pool[:n_test], "val": pool[n_test:n_test + n_val],
               "unlabeled": pool[n_test + n_val:]}
    else:
        test, val = held_out_actors(actors, s)
        training = np.flatnonzero(~np.isin(actors, test + val))
        n_labeled = int(round(s["labeled_share"] * len(training)))
        labeled = _balanced(training, labels, n_labeled, rng)
        out = {"labeled": labeled, "unlabeled": np.setdiff1d(training, labeled),
               "val": np.flatnonzero(np.isin(actors, val)), "test": np.flatnonzero(np.isin(actors, test))}
    for name in ("labeled", "unlabeled", "test"):
        if len(out[name]) == 0:
            raise MkeError(f"the {name} split of {n} RAVDESS clips is empty (data.split={s['split']}, "
                           f"labeled_share={s['labeled_share']}): more clips, or other shares")
    return {name: np.sort(out[name]) for name in SPLITS}


# --- the cache -----------------------------------------------------------------------------------------

def cache_dir(data_cfg: dict, scan: Scan | None = None) -> Path:
    """`<cache_dir>/ravdess-<hash of data.root, its files' names, sizes and times, and DECODE_KEYS>`."""
    s = data_settings(data_cfg)
    scan = scan or scan_root(data_cfg, s["actors"])
    key = {"version": CACHE_VERSION, "root": str(scan.root.resolve()), "files": scan.fingerprint,
           "actors": s["actors"], **{k: s[k] for k in DECODE_KEYS}}
    return cache_folder(data_cfg.get("cache_dir") or "data/cache", "ravdess", key)


def _build(folder: Path, scan: Scan, s: dict, progress: bool) -> None:
    """Decode into a temporary folder beside `folder`, then rename it into place."""
    started = time.perf_counter()
    arrays, report = decode(scan, s, progress)
    with building_cache(folder) as tmp:
        with open(tmp / "clips.npz", "wb") as f:
            np.savez(f, **arrays)
        meta = {"root": str(scan.root.resolve()), "cache_version": CACHE_VERSION,
                "settings": {k: s[k] for k in DECODE_KEYS}, "class_names": list(EMOTIONS),
                "frame_times_s": frame_times(s).tolist(), "sample_rate": s["audio_rate"],
                "clips": len(arrays["labels"]), **report,
                "decode_seconds": round(time.perf_counter() - started, 1),
                "files": {"clips.npz": (tmp / "clips.npz").stat().st_size}}
        (tmp / "data.json").write_text(json.dumps(meta, indent=2) + "\n")


def ensure_cache(data_cfg: dict, progress: bool = False) -> tuple[Path, bool]:
    """The cache folder of `data_cfg`, decoded now if it is missing or incomplete; and whether it was."""
    s = data_settings(data_cfg)
    scan = scan_root(data_cfg, s["actors"])
    folder = cache_dir(data_cfg, scan)
    if cache_complete(folder):
        return folder, False
    _build(folder, scan, s, progress)
    return folder, True


def read_cache_meta(folder: Path) -> dict:
    """The cache's data.json: settings, counts, missing actors, skipped files."""
    return json.loads((folder / "data.json").read_text())


def _read_arrays(folder: Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    path = folder / "clips.npz"
    try:
        arrays = npz_memmaps(path)
        return {k: arrays[k] for k in (keys or arrays)}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise MkeError(f"cached data {path} is unreadable ({exc}); delete {folder} to decode it again") from None


def load_ravdess(data_cfg: dict, progress: bool = False) -> dict[str, AVClips]:
    """The splits "labeled" (D_l), "unlabeled" (D_u, labels kept for MM student (sup)), "val" and
    "test" as AVClips at the files' rate; decoded and cached on first use."""
    s = data_settings(data_cfg)
    folder, _ = ensure_cache(data_cfg, progress)
    meta, arrays = read_cache_meta(folder), _read_arrays(folder)
    frames, audio = arrays.pop("frames"), arrays.pop("audio")
    labels, actors = arrays.pop("labels"), arrays.pop("actors")
    out = {}
    for name, idx in split_indices(labels, actors, s).items():
        out[name] = AVClips(name=name, frames=rows_of(frames, idx, name=f"{name} frames"),
                            audio=rows_of(audio, idx, pcm=True, name=f"{name} audio"), labels=labels[idx],
                            actors=actors[idx], sample_rate=int(meta["sample_rate"]),
                            frame_times_s=np.asarray(meta["frame_times_s"]), class_names=EMOTIONS,
                            meta={k: v[idx] for k, v in arrays.items()} | {"clip_ids": idx})
    return out


def data_summary(data_cfg: dict) -> dict:
    """What a report says about the data: protocol, clips per split, held-out actors, what was left
    out and every skipped file with its reason (`skipped_count` is their number)."""
    s = data_settings(data_cfg)
    folder, _ = ensure_cache(data_cfg)
    meta = read_cache_meta(folder)
    arrays = _read_arrays(folder, ("labels", "actors"))
    idx = split_indices(arrays["labels"], arrays["actors"], s)
    out = {"root": meta["root"]}
    if s["split"] == "actor":
        test, val = held_out_actors(arrays["actors"], s)
        out["split_protocol"] = (f"actor (test actors {', '.join(f'{a + 1:02d}' for a in sorted(test))} and val "
                                 f"actors {', '.join(f'{a + 1:02d}' for a in sorted(val)) or 'none'} held out "
                                 f"whole; D_l : D_u = {s['labeled_share']:g} : {1 - s['labeled_share']:g} over "
                                 "the others)")
    else:
        out["split_protocol"] = (f"paper (random over all clips: D_l : D_u = {s['labeled_share']:g} : "
                                 f"{1 - s['labeled_share']:g}, D_u into unlabeled, val and test "
                                 f"{1 - s['val_share'] - s['test_share']:g} : {s['val_share']:g} : "
                                 f"{s['test_share']:g}; actors shared by training and test)")
    out["clips"] = {name: int(len(i)) for name, i in idx.items()}
    left_out = meta["left_out"]
    out["vocal"] = s["vocal"] + (f" ({left_out} files of the other channel left out)" if left_out else "")
    out["window"] = (f"{s['start_s']:g}–{s['start_s'] + s['clip_seconds']:g} s of each take, "
                     f"{len(meta['frame_times_s'])} images every {s['frame_period_s']:g} s, "
                     f"sound at {meta['sample_rate']} Hz")
    out["files"] = meta["found"]
    out["audio_sources"] = meta["audio_sources"]
    if meta.get("faces"):
        out["face_crop"] = meta["faces"]
    if meta.get("padded"):
        out["clips_padded_with_silence"] = meta["padded"]
    out["missing_actors"] = meta["missing_actors"]
    out["skipped_count"] = len(meta["skipped"])
    out["skipped"] = meta["skipped"]
    return out
