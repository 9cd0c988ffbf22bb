"""The built-in audio-visual data of the `av` task: RAVDESS-shaped clips made offline, cached on disk.

RAVDESS (the paper's emotion task) has 24 actors, 1,440 clips, 8 classes, an image every 0.5 s (the
teacher's modality α) and the clip's audio (β). This stands in for it with real material and no
download: 24 "actors", each an eSpeak NG voice of its own (accent, variant, speed, pitch: `speech`),
say the name of a digit 0–7 ("seven", "number seven", …) while the camera shows a real handwritten
scan of that digit (scikit-learn's 1,797 8×8 scans of UCI optdigits, shipped with the package) as dark
ink on the actor's tinted paper. The image is degraded per clip (blur, contrast loss, an occluder) and
per frame (shift, rotation, noise, the occluder drifting), so an image-only teacher errs on a good
share of clips; the audio carries the class through background noise at a random SNR, and errs on
other clips. Each modality knows what the other lacks: the shape MKE needs.

Splits, by actor. `test_actors` and `val_actors` are held out whole: no clip of theirs is in D_l or
D_u, so the test measures new speakers; the scans are split too, so no scan is in two splits (new
handwriting as well). D_l takes `labeled_share` of all clips (0.2: D_l : D_u = 2 : 8, the paper's),
class-balanced and spread over the training actors; D_u ("unlabeled", labels kept only for MM student
(sup)) is the training actors' other clips. The paper splits D_u 8 : 1 : 1 into train, val and test
at random; by whole actors that is 1.9 actors each for val and test. The defaults hold out 2 and 3
of 24 (D_u ≈ 7.1 : 1 : 1.5): a third test voice, so the test (240 clips) rests less on one voice.

A clip lasts `clip_seconds` (2 s): frames at t = 0.5, 1.0, … (every `frame_period_s`, the last at
the clip's end), each the clip's scan freshly degraded; one utterance with a random onset that ends
inside the clip, in noise, as 16 kHz mono. Everything follows from `seed`: clip k draws from its own
random stream, and speech is synthesised in one fresh process in clip order (`speech`).

Generated once per data config (with a progress bar) into `<cache_dir>/av-<hash>/`, built in a
temporary folder that is renamed into place only when complete, so a crash never leaves a half cache:
`<split>.npz` (uncompressed: frames uint8, audio int16 PCM, labels and per-clip metadata),
`data.json` (settings, actors, file sizes; written last; the `.npz` files are read memory-mapped,
the int16 sound as float32 clip by clip when used), and a replay pair for
`mke-live --input replay.mp4 --audio replay.wav`: `replay.mp4` (test clips one after another, each
image shown from the moment it was taken), `replay.wav` (the same clips' audio back to back, 16-bit
PCM, `frame_period_s` of silence after the last) and `replay.json` (each clip's span, the moment its sound and image
are the tested sample, its class, and the class of each second; `write_replay`).
"""
from __future__ import annotations

import json
import time
import wave
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mke.runtime.errors import MkeError
from mke.train.datasets.frame_arrays import rows_of
from mke.train.datasets.frame_cache import npz_memmaps
from mke.train.datasets.settings import overlay_settings
from mke.runtime.fileio import building_cache, cache_complete, cache_folder

GENERATOR_VERSION = 2  # part of the cache key: a change to what is generated gets a new folder
SPLITS = ("labeled", "unlabeled", "val", "test")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STATEMENTS = ("{}", "number {}", "it is {}", "{} please", "I said {}", "now {}", "say {}", "{} again")

DATA_DEFAULTS: dict = {
    "seed": 0,
    "classes": 8,              # digits 0..classes-1, like RAVDESS's 8 emotions
    "actors": 24,              # speakers, each its own eSpeak voice
    "statements": 5,           # carrier phrases per class word (STATEMENTS)
    "repetitions": 2,          # takes of each statement: 24 × 5 × 2 × 8 = 1,920 clips
    "val_actors": 2,           # held out whole, like the test actors
    "test_actors": 3,
    "labeled_share": 0.2,      # D_l's share of all clips (D_l : D_u = 2 : 8), from the training actors
    "clip_seconds": 2.0,       # seconds
    "frame_period_s": 0.5,     # an image every 0.5 s, the last at the clip's end
    "image": {
        "size": 32,                 # pixels, square RGB
        "scale": [0.6, 0.85],       # the digit's box, a fraction of the image side
        "blur": [0.3, 0.9],         # Gaussian sigma, pixels of a 32-pixel image (per clip)
        "contrast": [0.6, 1.0],     # ink strength (per clip)
        "occlusion": [0.1, 0.4],    # occluder area, a fraction of the digit's box (per clip)
        "drift": 0.06,              # occluder movement per frame, a fraction of the side
        "shift": 0.05,              # per-frame jitter, a fraction of the side
        "rotate_deg": 12.0,         # per-clip rotation bound (per frame ±3 more)
        "noise": 0.04,              # per-pixel Gaussian noise, a fraction of full scale
    },
    "audio": {
        "sample_rate": 16000,       # Hz, mono
        "snr_db": [6.0, 20.0],      # speech to noise power (per clip, uniform)
        "level_db": [-32.0, -20.0],  # speech RMS, dB of full scale
        "noise_color": [0.0, 1.5],  # noise power ∝ f^-color: 0 white, 1 pink, 2 brown
        "rate_jitter": 0.08,        # per-clip speed change, a fraction of the actor's rate
        "pitch_jitter": 6,          # per-clip pitch change, eSpeak pitch units (0..100)
    },
    "replay": {"clips": 240, "fps": 10, "size": 128},  # replay.mp4/.wav/.json: test clips, video frame rate, pixels
}
DATA_KEYS = tuple(DATA_DEFAULTS)  # the settings that change the data: they name the cache folder


@dataclass
class AVClips:
    """One split: N clips of F frames and one audio track each, with labels and where they came from."""

    name: str
    frames: np.ndarray           # uint8 (N, F, H, W, 3), RGB (memory-mapped, or a FrameArray of its rows)
    audio: np.ndarray            # float32 (N, T) in −1..1, mono at sample_rate (a FrameArray: int16 read per clip)
    labels: np.ndarray           # int64 (N,), index into class_names
    actors: np.ndarray           # int64 (N,), 0-based speaker ids (disjoint between training and test splits)
    sample_rate: int             # Hz
    frame_times_s: np.ndarray    # float64 (F,), seconds from the clip's start
    class_names: tuple[str, ...]
    meta: dict[str, np.ndarray] = field(default_factory=dict)  # per clip: scan, statement, repetition, onset_s, snr_db

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def clip_seconds(self) -> float:
        return self.audio.shape[1] / self.sample_rate


# --- settings ------------------------------------------------------------------------------------------

def data_settings(data_cfg: dict) -> dict:
    """DATA_DEFAULTS overlaid with `data_cfg` (`mke.train.datasets.settings.overlay_settings`) and checked:
    MkeError names a wrong field."""
    out = overlay_settings(data_cfg, DATA_DEFAULTS)
    _check(out)
    return out


def _check(s: dict) -> None:
    def need(ok: bool, text: str) -> None:
        if not ok:
            raise MkeError(f"data.{text}")

    need(2 <= s["classes"] <= len(DIGIT_NAMES), f"classes must be 2..{len(DIGIT_NAMES)}, got {s['classes']}")
    need(1 <= s["statements"] <= len(STATEMENTS), f"statements must be 1..{len(STATEMENTS)}, got {s['statements']}")
    need(s["repetitions"] >= 1, f"repetitions must be >= 1, got {s['repetitions']}")
    need(s["val_actors"] >= 0 and s["test_actors"] >= 1, "val_actors must be >= 0 and test_actors >= 1, got "
         f"{s['val_actors']} and {s['test_actors']}")
    need(s["val_actors"] + s["test_actors"] < s["actors"] <= MAX_ACTORS,
         f"actors must leave at least one training actor after {s['val_actors']} val and {s['test_actors']} test "
         f"actors, and be at most {MAX_ACTORS}; got {s['actors']}")
    need(0.0 < s["labeled_share"] < 1.0, f"labeled_share must lie in (0, 1), got {s['labeled_share']}")
    need(0 < s["frame_period_s"] <= s["clip_seconds"],
         f"clip_seconds ({s['clip_seconds']}) must be at least frame_period_s ({s['frame_period_s']}) > 0")
    img, aud, rep = s["image"], s["audio"], s["replay"]
    need(img["size"] >= 8, f"image.size must be >= 8 pixels, got {img['size']}")
    need(0 < img["scale"][0] and img["scale"][1] <= 1.5, f"image.scale must lie in (0, 1.5], got {img['scale']}")
    need(img["blur"][0] >= 0 and 0 <= img["contrast"][0] and img["contrast"][1] <= 1,
         f"image.blur must be >= 0 and image.contrast within [0, 1], got {img['blur']} and {img['contrast']}")
    need(0 <= img["occlusion"][0] and img["occlusion"][1] <= 1, f"image.occlusion must lie in [0, 1], got "
         f"{img['occlusion']}")
    need(aud["sample_rate"] >= 8000, f"audio.sample_rate must be >= 8000 Hz, got {aud['sample_rate']}")
    need(aud["level_db"][1] <= 0, f"audio.level_db must be at most 0 dB of full scale, got {aud['level_db']}")
    need(0 <= aud["rate_jitter"] < 1 and aud["pitch_jitter"] >= 0,
         f"audio.rate_jitter must lie in [0, 1) and audio.pitch_jitter be >= 0, got {aud['rate_jitter']} and "
         f"{aud['pitch_jitter']}")
    need(rep["clips"] >= 0 and rep["fps"] >= 1 and rep["size"] >= 8,
         f"replay needs clips >= 0, fps >= 1 and size >= 8, got {rep}")


def cache_dir(data_cfg: dict) -> Path:
    """`<cache_dir>/av-<hash of the settings that change the data>`."""
    s = data_settings(data_cfg)
    return cache_folder(data_cfg.get("cache_dir", "data/cache"), "av", {"version": GENERATOR_VERSION, **s})


def replay_paths(data_cfg: dict) -> dict[str, Path]:
    """The replay pair and its key, in the cache folder (they exist once `load_av` has run)."""
    folder = cache_dir(data_cfg)
    return {"video": folder / "replay.mp4", "audio": folder / "replay.wav", "index": folder / "replay.json"}


def frame_times(s: dict) -> np.ndarray:
    """Seconds from the clip's start of each frame: period, 2·period, … up to the clip's end."""
    period, length = float(s["frame_period_s"]), float(s["clip_seconds"])
    return period * np.arange(1, int(np.floor(length / period + 1e-9)) + 1)


# --- actors and the plan of clips ----------------------------------------------------------------------

MAX_ACTORS = 192  # distinct voices of actor_table: 2 × 12 variants × 8 accents


def actor_table(s: dict) -> list[dict]:
    """Each actor's voice and look: alternately male and female variants (as RAVDESS numbers its
    actors), accents in turn, base speed / pitch / range and paper / ink colours from the seed."""
    from mke.train.datasets.speech import ENGLISH_ACCENTS, FEMALE_VARIANTS, MALE_VARIANTS, Voice

    rng = np.random.default_rng([s["seed"], 11])
    out = []
    for a in range(s["actors"]):
        variants = MALE_VARIANTS if a % 2 == 0 else FEMALE_VARIANTS
        cycle = a // (2 * len(variants))  # after every variant has spoken once, move each to the next accent
        voice = Voice(accent=ENGLISH_ACCENTS[(a + cycle) % len(ENGLISH_ACCENTS)],
                      variant=variants[(a // 2) % len(variants)],
                      rate_wpm=int(rng.integers(130, 211)), pitch=int(rng.integers(30, 71)),
                      pitch_range=int(rng.integers(30, 71)))
        paper = 1.0 - rng.uniform(0.0, 0.35, 3)  # a light tint
        ink = rng.uniform(0.0, 0.3, 3)          # a dark pen
        out.append({"actor": a, "sex": "male" if a % 2 == 0 else "female", "voice": voice,
                    "paper": paper, "ink": ink})
    return out


def _plan(s: dict) -> dict[str, np.ndarray]:
    """Every clip's actor, class, statement, repetition, split and scan (an index into load_digits)."""
    A, C, S, R = s["actors"], s["classes"], s["statements"], s["repetitions"]
    grid = np.stack(np.meshgrid(np.arange(A), np.arange(S), np.arange(R), np.arange(C), indexing="ij"), -1)
    actor, statement, repetition, label = (grid.reshape(-1, 4)[:, i] for i in range(4))
    n = len(actor)
    rng = np.random.default_rng([s["seed"], 12])
    order = rng.permutation(A)
    test, val = order[:s["test_actors"]], order[s["test_actors"]:s["test_actors"] + s["val_actors"]]
    split = np.full(n, SPLITS.index("unlabeled"))
    split[np.isin(actor, test)] = SPLITS.index("test")
    split[np.isin(actor, val)] = SPLITS.index("val")
    n_labeled = int(round(float(s["labeled_share"]) * n))
    training = split == SPLITS.index("unlabeled")
    if not 0 < n_labeled < training.sum():
        raise MkeError(f"data.labeled_share={s['labeled_share']} gives {n_labeled} labeled clips, but the "
                       f"training actors have {training.sum()}: lower labeled_share or hold out fewer actors")
    per_class = [n_labeled // C + (1 if c < n_labeled % C else 0) for c in range(C)]
    for c in range(C):  # round robin over the training actors (in random order): D_l spread over them
        turns = []  # (round, actor's place in the round, clip)
        for place, a in enumerate(rng.permutation(np.unique(actor[training & (label == c)]))):
            clips = rng.permutation(np.flatnonzero(training & (label == c) & (actor == a)))
            turns += [(r, place, i) for r, i in enumerate(clips)]
        split[[i for _, _, i in sorted(turns)[:per_class[c]]]] = SPLITS.index("labeled")
    return {"actor": actor, "label": label, "statement": statement, "repetition": repetition, "split": split,
            "scan": _assign_scans(split, label, C, rng)}


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digit scans: float (N, 8, 8) in 0..16, and their digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def _assign_scans(split: np.ndarray, label: np.ndarray, classes: int, rng: np.random.Generator) -> np.ndarray:
    """A scan for every clip: each class's scans are dealt out to the splits in proportion to their
    clips (at least one each), so no scan is in two splits; within a split, scans are reused in turn."""
    target = _digits()[1]
    scan = np.zeros(len(split), np.int64)
    for c in range(classes):
        pool = rng.permutation(np.flatnonzero(target == c))
        clips = [rng.permutation(np.flatnonzero((split == k) & (label == c))) for k in range(len(SPLITS))]
        counts = np.array([len(x) for x in clips], float)
        share = np.where(counts > 0, np.maximum(1, np.floor(len(pool) * counts / counts.sum())), 0).astype(int)
        if share.sum() > len(pool):
            raise MkeError(f"digit {c} has {len(pool)} scans, too few for {int((counts > 0).sum())} splits")
        ends = np.cumsum(share)
        for members, end, count in zip(clips, ends, share):
            if len(members):
                scan[members] = pool[end - count:end][np.arange(len(members)) % count]
    return scan


# --- rendering -----------------------------------------------------------------------------------------

def _ellipse(size: int, cx: float, cy: float, ax: float, ay: float, angle: float) -> np.ndarray:
    """float32 (size, size) in 0..1: an anti-aliased ellipse (half-axes ax, ay pixels, angle radians)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = x - cx, y - cy
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / ax
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ay
    r = np.sqrt(u * u + v * v)
    edge = 1.0 / max(1.0, min(ax, ay))
    return np.clip((1.0 - r) / edge + 0.5, 0.0, 1.0).astype(np.float32)


def render_frames(scan: np.ndarray, paper: np.ndarray, ink: np.ndarray, times: np.ndarray, img: dict,
                  rng: np.random.Generator) -> np.ndarray:
    """uint8 (F, size, size, 3): the 8×8 scan (0..16) as dark ink on tinted paper, seen len(times) times.

    Per clip: the digit's size, place and rotation, blur, ink contrast, an occluder (area a fraction of
    the digit's box; paper-coloured, dark or any colour) and the lighting; per frame: jitter, noise and
    the occluder drifting."""
    import cv2

    size = img["size"]
    unit = size / 32.0
    box = size * rng.uniform(*img["scale"])
    centre = size / 2 + rng.uniform(-0.06, 0.06, 2) * size
    angle0 = np.deg2rad(rng.uniform(-img["rotate_deg"], img["rotate_deg"]))
    sigma = rng.uniform(*img["blur"]) * unit
    contrast = rng.uniform(*img["contrast"])
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    slope = rng.uniform(-0.12, 0.12, 2)  # light falls off across the page
    light = (rng.uniform(0.75, 1.05) * (1 + slope[0] * x + slope[1] * y))[..., None]
    area = rng.uniform(*img["occlusion"]) * box * box
    aspect = rng.uniform(0.5, 2.0)
    occ_axes = np.sqrt(area / np.pi * np.array([aspect, 1 / aspect]))
    occ_centre = centre + rng.uniform(-0.35, 0.35, 2) * box
    occ_velocity = rng.normal(0, 1, 2) * img["drift"] * size
    occ_angle = rng.uniform(0, np.pi)
    kind = rng.choice(3, p=[0.4, 0.2, 0.4])
    occ_colour = (paper * rng.uniform(0.9, 1.05), rng.uniform(0.0, 0.25, 3), rng.uniform(0.1, 0.9, 3))[kind]
    ink_map = (scan.astype(np.float32) / 16.0)
    frames = np.empty((len(times), size, size, 3), np.uint8)
    for f in range(len(times)):
        theta = angle0 + np.deg2rad(rng.uniform(-3, 3))
        k = box / 8.0
        shift = centre + rng.uniform(-1, 1, 2) * img["shift"] * size
        rot = k * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        # OpenCV puts pixel centres at whole coordinates: the scan's middle (3.5, 3.5) lands on `shift`
        m = np.concatenate([rot, (shift - 0.5 - rot @ np.array([3.5, 3.5]))[:, None]], 1)
        ink_f = cv2.warpAffine(ink_map, m.astype(np.float32), (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if sigma > 0.05:
            ink_f = cv2.GaussianBlur(ink_f, (0, 0), sigma)
        strength = (contrast * ink_f)[..., None]
        rgb = paper[None, None] * (1 - strength) + ink[None, None] * strength
        if occ_axes.min() > 0.1:
            oc = occ_centre + occ_velocity * f
            occ = _ellipse(size, oc[0], oc[1], occ_axes[0], occ_axes[1], occ_angle)[..., None]
            rgb = rgb * (1 - occ) + occ_colour[None, None] * occ
        rgb = rgb * light * rng.uniform(0.95, 1.05) + rng.normal(0, img["noise"], rgb.shape)
        frames[f] = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    return frames


def _noise(n: int, color: float, rng: np.random.Generator) -> np.ndarray:
    """float32 (n,) of unit RMS whose power falls as f^-color (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    x = np.fft.irfft(spectrum * f ** (-color / 2), n)
    return (x / (np.sqrt(np.mean(x * x)) + 1e-12)).astype(np.float32)


def mix_audio(speech: np.ndarray, n: int, rate: int, aud: dict,
              rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """int16 (n,) PCM: `speech` (float, at `rate`) at a random onset that ends inside the clip, at a
    random level, in coloured noise at a random SNR. Returns the clip, the onset (s) and the SNR (dB)."""
    if len(speech) > n - 2:
        raise MkeError(f"an utterance lasts {len(speech) / rate:.2f} s, longer than data.clip_seconds="
                       f"{n / rate:g}: raise clip_seconds or the actors' speed")
    margin = min(int(0.1 * rate), (n - len(speech)) // 2)
    onset = int(rng.integers(margin, n - len(speech) - margin + 1))
    speech_rms = np.sqrt(np.mean(speech.astype(np.float64) ** 2)) + 1e-12
    level = 10 ** (rng.uniform(*aud["level_db"]) / 20)
    snr_db = float(rng.uniform(*aud["snr_db"]))
    clip = level * 10 ** (-snr_db / 20) * _noise(n, rng.uniform(*aud["noise_color"]), rng)
    clip[onset:onset + len(speech)] += level / speech_rms * speech
    pcm = np.clip(np.round(clip * 32767), -32768, 32767).astype(np.int16)
    return pcm, onset / rate, snr_db


# --- generation ----------------------------------------------------------------------------------------

def generate(s: dict, progress: bool = False) -> tuple[dict[str, dict[str, np.ndarray]], list[dict]]:
    """All clips of the settings `s` (from `data_settings`): split name → arrays (frames uint8,
    audio int16, labels, actors, scans, statements, repetitions, onset_s, snr_db), and the actors."""
    from mke.runtime.audio_features import resample
    from mke.train.datasets.speech import Utterance, Voice, synthesize

    plan = _plan(s)
    actors = actor_table(s)
    n_clips = len(plan["label"])
    names = DIGIT_NAMES[:s["classes"]]
    aud, rate = s["audio"], s["audio"]["sample_rate"]
    utterances = []
    for i in range(n_clips):  # each clip has its own random streams: for its voice, its audio, its images
        rng = np.random.default_rng([s["seed"], 13, i])
        base = actors[plan["actor"][i]]["voice"]
        speed = 1 + rng.uniform(-aud["rate_jitter"], aud["rate_jitter"])
        pitch = base.pitch + int(rng.integers(-aud["pitch_jitter"], aud["pitch_jitter"] + 1))
        voice = Voice(base.accent, base.variant, int(round(base.rate_wpm * speed)), int(np.clip(pitch, 0, 100)),
                      base.pitch_range)
        utterances.append(Utterance(STATEMENTS[plan["statement"][i]].format(names[plan["label"][i]]), voice))
    bar = tqdm(total=2 * n_clips, desc="av data: speaking (eSpeak NG)", unit="clip", disable=not progress,
               leave=False)
    spoken, speech_rate = synthesize(utterances, on_progress=bar.update)
    bar.set_description("av data: images and noise")
    scans = _digits()[0]
    times = frame_times(s)
    n_samples = int(round(float(s["clip_seconds"]) * rate))
    frames = np.empty((n_clips, len(times), s["image"]["size"], s["image"]["size"], 3), np.uint8)
    audio = np.empty((n_clips, n_samples), np.int16)
    onset, snr = np.empty(n_clips), np.empty(n_clips)
    for i in range(n_clips):
        actor = actors[plan["actor"][i]]
        speech = resample(spoken[i][None], speech_rate, rate)[0]
        audio[i], onset[i], snr[i] = mix_audio(speech, n_samples, rate, aud, np.random.default_rng([s["seed"], 14, i]))
        frames[i] = render_frames(scans[plan["scan"][i]], actor["paper"], actor["ink"], times, s["image"],
                                  np.random.default_rng([s["seed"], 15, i]))
        bar.update(1)
    bar.close()
    out = {}
    for k, name in enumerate(SPLITS):
        idx = np.flatnonzero(plan["split"] == k)
        out[name] = {"frames": frames[idx], "audio": audio[idx], "labels": plan["label"][idx].astype(np.int64),
                     "actors": plan["actor"][idx].astype(np.int64), "scans": plan["scan"][idx],
                     "statements": plan["statement"][idx], "repetitions": plan["repetition"][idx],
                     "onset_s": onset[idx], "snr_db": snr[idx], "clip_ids": idx}
    return out, actors


# --- the replay pair -----------------------------------------------------------------------------------

def write_replay(folder: Path, test: dict[str, np.ndarray], s: dict) -> None:
    """replay.mp4 + replay.wav + replay.json of `replay.clips` test clips (chosen and ordered by the seed).

    Clip k's sound fills [start_s, end_s) = [k, k + 1) × clip_seconds, back to back, with frame_period_s
    of silence after the last; image j, taken at start_s + frame_times_s[j], is shown from then until
    the next image is taken (as a camera's frames arrive), the first clip's first image before that.
    So at eval_s = end_s the last clip_seconds of sound and the images taken frame_period_s apart up to
    then are exactly the clip's: the sample mke-train tests on. Images are enlarged by whole pixels
    (nearest neighbour): the model's area shrink gives the originals back, up to the video codec."""
    import cv2

    rep, rate = s["replay"], s["audio"]["sample_rate"]
    n = min(rep["clips"], len(test["labels"]))
    chosen = np.random.default_rng([s["seed"], 16]).permutation(len(test["labels"]))[:n]
    length, period, fps = float(s["clip_seconds"]), float(s["frame_period_s"]), rep["fps"]
    names = DIGIT_NAMES[:s["classes"]]
    f, h, w = test["frames"].shape[1:4]
    scale = max(1, rep["size"] // max(h, w))
    out_w, out_h = w * scale, h * scale
    total_s = n * length + period                                  # the last clip's eval_s needs its frame
    length_ms, period_ms = round(length * 1000), round(period * 1000)
    video = folder / "replay.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (out_w, out_h))
    if not writer.isOpened():
        raise MkeError(f"OpenCV cannot write {video} (mp4v): install opencv-python with its bundled FFmpeg")
    try:
        for v in range(int(round(total_s * fps))):
            taken = round(v * 1000 / fps) // period_ms * period_ms   # the last image taken by now, in ms
            k = min(n - 1, max(0, (taken - 1) // length_ms))
            j = min(f - 1, max(0, (taken - k * length_ms) // period_ms - 1))
            image = cv2.resize(test["frames"][chosen[k], j], (out_w, out_h), interpolation=cv2.INTER_NEAREST)
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    tail = np.zeros(int(round(period * rate)), np.int16)
    with wave.open(str(folder / "replay.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.concatenate([test["audio"][chosen].ravel(), tail]).astype("<i2").tobytes())
    labels = test["labels"][chosen]
    clips = [{"clip": k, "start_s": k * length, "end_s": (k + 1) * length, "eval_s": (k + 1) * length,
              "class": int(labels[k]), "name": names[labels[k]], "actor": int(test["actors"][chosen[k]]),
              "test_index": int(chosen[k])} for k in range(n)]
    seconds = [int(labels[min(n - 1, int((sec + 0.5) // length))]) for sec in range(int(np.floor(total_s)))]
    index = {"video": "replay.mp4", "audio": "replay.wav", "fps": fps, "sample_rate": rate,
             "clip_seconds": length, "frame_period_s": period, "frame_times_s": frame_times(s).tolist(),
             "frame_hold": "image j of a clip, taken at start_s + frame_times_s[j], is shown until the next "
                           "image is taken",
             "eval_note": "at eval_s the last clip_seconds of sound and the images taken frame_period_s apart up "
                          "to then are the clip's: the sample mke-train's evaluation scores (mke-live --truth)",
             "class_names": list(names), "duration_s": total_s, "clips": clips,
             "seconds": seconds, "second_names": [names[c] for c in seconds],
             "seconds_note": "seconds[i] is the class of [i, i + 1) s (of the clip holding its middle)"}
    (folder / "replay.json").write_text(json.dumps(index, indent=2) + "\n")


# --- the cache -----------------------------------------------------------------------------------------

def _build(folder: Path, s: dict, progress: bool) -> None:
    """Generate into a temporary folder beside `folder`, then rename it into place."""
    from mke.train.datasets.speech import engine_version

    started = time.perf_counter()
    with building_cache(folder) as tmp:
        splits, actors = generate(s, progress)
        for name, arrays in splits.items():
            with open(tmp / f"{name}.npz", "wb") as f:
                np.savez(f, **arrays)
        if s["replay"]["clips"] > 0:
            write_replay(tmp, splits["test"], s)
        meta = {"settings": s, "generator_version": GENERATOR_VERSION, "espeakng_loader": engine_version(),
                "class_names": list(DIGIT_NAMES[:s["classes"]]), "frame_times_s": frame_times(s).tolist(),
                "sample_rate": s["audio"]["sample_rate"],
                "clips": {name: int(len(a["labels"])) for name, a in splits.items()},
                "actors": [{"actor": a["actor"], "sex": a["sex"], "voice": a["voice"].name,
                            "rate_wpm": a["voice"].rate_wpm, "pitch": a["voice"].pitch,
                            "pitch_range": a["voice"].pitch_range,
                            "split": _actor_split(a["actor"], splits)}
                           for a in actors],
                "generation_seconds": round(time.perf_counter() - started, 1),
                "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}}
        (tmp / "data.json").write_text(json.dumps(meta, indent=2) + "\n")


def _actor_split(actor: int, splits: dict[str, dict[str, np.ndarray]]) -> str:
    held_out = [name for name in ("val", "test") if actor in splits[name]["actors"]]
    return held_out[0] if held_out else "training (labeled + unlabeled)"



def _read_split(folder: Path, name: str, s: dict) -> AVClips:
    path = folder / f"{name}.npz"
    try:
        arrays = npz_memmaps(path)
        frames, audio = arrays.pop("frames"), rows_of(arrays.pop("audio"), pcm=True, name=f"{name} audio")
        labels, actors = arrays.pop("labels"), arrays.pop("actors")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, MkeError) as exc:
        raise MkeError(f"cached data {path} is unreadable ({exc}); delete {folder} to generate it again") from None
    return AVClips(name=name, frames=frames, audio=audio, labels=labels, actors=actors,
                   sample_rate=s["audio"]["sample_rate"], frame_times_s=frame_times(s),
                   class_names=DIGIT_NAMES[:s["classes"]], meta=arrays)


def load_av(data_cfg: dict, progress: bool = True) -> dict[str, AVClips]:
    """The splits "labeled" (D_l), "unlabeled" (D_u), "val" and "test", generated and cached on first
    use (a cache found incomplete is generated again); `data_cfg` as DATA_DEFAULTS plus cache_dir."""
    s = data_settings(data_cfg)
    folder = cache_dir(data_cfg)
    if not cache_complete(folder):
        _build(folder, s, progress)
    return {name: _read_split(folder, name, s) for name in SPLITS}
