"""The built-in audio-visual events of the `events` task: multilabel clips made offline, cached on disk.

The paper's event task (audio → audio + video; AudioSet → VGGSound, 46 classes, mAP) with no
download: clips of `clip_seconds` (2 s) in which 1–3 of 10 event classes happen at once, each event a
sound (`event_sounds`: barks, chirps, bell strikes, a siren, phone and alarm beeps, an engine, rain,
a fan, and eSpeak NG words for `speech`) and a sprite drawn with OpenCV while it lasts
(`event_sights`). The target of a clip is a K-vector of 0/1 (K = 10).

Audio alone is not enough, by design, in two ways:
- *masked*: in `audio.faint_share` of the clips with two or more events of which one is a broadband
  sound (`MASKERS`: rain, fan, engine), another event is 18–30 dB below it and inside its span; where
  the loud one covers its frequencies it is buried — less than `MASKED_BELOW` of its energy lies in
  log-mel cells where it is louder than the rest (`audible`, measured on every event) — yet its sprite
  is as plain as any;
- *confusable*: `phone` / `alarm` and `rain` / `fan` make near-identical sounds (`CONFUSABLE`)
  but look nothing alike.
Pictures are not the whole truth either: `image.idle_props` of the clips also show the sprite of a
class that makes no sound there, in its quiet state (`event_sights`).

Splits: `clips.labeled` (D_l, the audio teacher's), `clips.unlabeled` (D_u, labels kept only for
MM student (sup)), `clips.val` and `clips.test`, each made on its own and class-balanced (every class
in the same number of clips, ±1). Every clip draws from its own random streams (its id, the seed), and
speech is synthesised in one fresh process in clip order (`speech`): the same settings give the same
bytes.

A clip: 16 kHz mono audio (int16 on disk, float32 in −1..1 in memory); frames at t = 0.5, 1.0, 1.5,
2.0 s (every `frame_period_s`, the last at the clip's end, as `mke-live` assembles an `rgb_clip`),
`image.size` pixels square. Every event lasts at least `min_event_s` ≥ `frame_period_s`, so at
least one frame shows it.

Generated once per data config into `<cache_dir>/events-<hash>/`, built in a temporary folder that
is renamed into place only when complete: `<split>.npz` (uncompressed: frames, audio, labels and the
events of each clip; read memory-mapped, the int16 sound as float32 clip by clip when used),
`data.json` (settings, counts, file sizes; written last, `cache_complete`), and a replay pair for
`mke-live --input replay.mp4 --audio replay.wav`: `replay.mp4` (test clips one after another,
rendered at the video's frame rate, the training frames exactly at their times),
`replay.wav` (their audio back to back) and `replay.json` (each clip's span, moment to score, true
classes and events; the true events of each second; `write_replay`).
"""
from __future__ import annotations

import json
import os
import time
import wave
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mke.runtime.errors import MkeError
from mke.train.datasets.frame_arrays import rows_of
from mke.train.datasets.frame_cache import npz_memmaps
from mke.train.datasets.settings import overlay_settings
from mke.runtime.fileio import building_cache, cache_complete, cache_folder, write_json

GENERATOR_VERSION = 1  # part of the cache key: a change to what is generated gets a new folder
SPLITS = ("labeled", "unlabeled", "val", "test")
CLASS_NAMES = ("speech", "dog", "bird", "bell", "siren", "phone", "alarm", "engine", "rain", "fan")
CONFUSABLE = (("phone", "alarm"), ("rain", "fan"))  # near-identical sounds, different sights
# The classes whose sound covers much of the spectrum, broadest first: a faint event hides under one.
MASKERS = ("rain", "fan", "engine")
MASKED_BELOW = 0.1  # an event is masked when less than this share of its energy lies where it is louder than the rest
PHRASES = ("hello", "look at this", "come on", "over there", "thank you", "yes please", "good morning",
           "wait for me", "let's go", "watch out", "right now", "all done", "excuse me", "see you")

DATA_DEFAULTS: dict = {
    "seed": 0,
    "clips": {"labeled": 500, "unlabeled": 1000, "val": 200, "test": 400},
    "events": [1, 3],              # events per clip, uniform over low..high
    "clip_seconds": 2.0,           # seconds
    "frame_period_s": 0.5,         # a frame every 0.5 s, the last at the clip's end
    "min_event_s": 0.6,            # seconds; at least frame_period_s, so a frame shows every event
    "image": {
        "size": 64,                # pixels, square RGB
        "scale": [0.36, 0.46],     # a sprite's box, a fraction of the image side
        "noise": 0.02,             # per-pixel Gaussian noise, a fraction of full scale
        "idle_props": 0.15,        # share of clips that also show a silent class's sprite
    },
    "audio": {
        "sample_rate": 16000,      # Hz, mono
        "level_db": [-30.0, -14.0],   # an event's active RMS, dB of full scale
        "faint_share": 0.5,        # share of clips with 2+ events, one of them a MASKERS sound (rain, fan,
                                   # engine), where another hides under it
        "faint_db": [18.0, 30.0],  # how far below the louder one, dB
        "noise_db": [-50.0, -38.0],   # background noise RMS, dB of full scale
        "noise_color": [0.0, 1.5],    # its power ∝ f^-color: 0 white, 1 pink, 2 brown
    },
    "replay": {"clips": 120, "fps": 10, "size": 128},  # replay.mp4/.wav/.json: test clips, frame rate, pixels
}
DATA_KEYS = tuple(DATA_DEFAULTS)  # the settings that change the data: they name the cache folder


@dataclass
class EventClips:
    """One split: N clips of F frames and one audio track each, their multilabel targets and events."""

    name: str
    frames: np.ndarray           # uint8 (N, F, H, W, 3), RGB (memory-mapped)
    audio: np.ndarray            # float32 (N, T) in −1..1, mono at sample_rate (a FrameArray: int16 read per clip)
    labels: np.ndarray           # float32 (N, K) of 0/1: which classes happen in the clip
    sample_rate: int             # Hz
    frame_times_s: np.ndarray    # float64 (F,), seconds from the clip's start
    class_names: tuple[str, ...]
    events: dict[str, np.ndarray] = field(default_factory=dict)  # per clip and event slot (`EVENT_FIELDS`)
    meta: dict[str, np.ndarray] = field(default_factory=dict)    # per clip: clip_ids, idle_prop, noise_db

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def clip_seconds(self) -> float:
        return self.audio.shape[1] / self.sample_rate

    @property
    def masked(self) -> np.ndarray:
        """bool (N, E): the event slots whose sound is buried under the others (`MASKED_BELOW`)."""
        return (self.events["event_class"] >= 0) & (self.events["audible"] < MASKED_BELOW)


# Per clip, one column per event slot (E = the most events a clip has), unused slots: class −1, zeros.
EVENT_FIELDS = {"event_class": np.int64, "onset_s": np.float32, "offset_s": np.float32, "level_db": np.float32,
                "audible": np.float32, "faint": np.bool_}


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

    need(all(n >= 1 for n in s["clips"].values()), f"clips must give every split at least 1 clip, got {s['clips']}")
    need(1 <= s["events"][0] and s["events"][1] <= 3,
         f"events must lie within [1, 3] (a sprite per quarter of the image, one kept for an idle prop), "
         f"got {s['events']}")
    need(0 < s["frame_period_s"] <= s["clip_seconds"] <= 10,
         f"clip_seconds ({s['clip_seconds']}) must be at least frame_period_s ({s['frame_period_s']}) > 0 and "
         "at most 10")
    need(s["frame_period_s"] <= s["min_event_s"] <= s["clip_seconds"] / 1.5,
         f"min_event_s ({s['min_event_s']}) must lie within frame_period_s ({s['frame_period_s']}), so a frame "
         f"shows every event, and clip_seconds / 1.5 ({s['clip_seconds'] / 1.5:g}), so a faint event fits "
         "under a longer loud one")
    img, aud, rep = s["image"], s["audio"], s["replay"]
    need(img["size"] >= 16, f"image.size must be >= 16 pixels, got {img['size']}")
    need(0.1 <= img["scale"][0] and img["scale"][1] <= 0.5, f"image.scale must lie within [0.1, 0.5] (a quarter "
         f"of the image each), got {img['scale']}")
    need(0 <= img["noise"] <= 0.5 and 0 <= img["idle_props"] <= 1,
         f"image.noise must lie in [0, 0.5] and image.idle_props in [0, 1], got {img['noise']} and "
         f"{img['idle_props']}")
    need(aud["sample_rate"] >= 16000, f"audio.sample_rate must be >= 16000 Hz (chirps reach 6.5 kHz), got "
         f"{aud['sample_rate']}")
    need(aud["level_db"][1] <= -6, f"audio.level_db must be at most -6 dB of full scale, got {aud['level_db']}")
    need(0 <= aud["faint_share"] <= 1 and aud["faint_db"][0] >= 0,
         f"audio.faint_share must lie in [0, 1] and audio.faint_db be >= 0, got {aud['faint_share']} and "
         f"{aud['faint_db']}")
    need(rep["clips"] >= 0 and rep["fps"] >= 1 and rep["size"] >= 16,
         f"replay needs clips >= 0, fps >= 1 and size >= 16, got {rep}")
    ms = round(1000 * s["frame_period_s"])
    need(abs(1000 * s["frame_period_s"] - ms) < 1e-6 and round(1000 * s["clip_seconds"]) % ms == 0,
         f"frame_period_s must be whole milliseconds dividing clip_seconds, got {s['frame_period_s']} and "
         f"{s['clip_seconds']}")


def cache_dir(data_cfg: dict) -> Path:
    """`<cache_dir>/events-<hash of the settings that change the data>`."""
    s = data_settings(data_cfg)
    return cache_folder(data_cfg.get("cache_dir", "data/cache"), "events", {"version": GENERATOR_VERSION, **s})


def replay_paths(data_cfg: dict) -> dict[str, Path]:
    """The replay pair and its key, in the cache folder (they exist once `load_events` has run with
    replay.clips > 0)."""
    folder = cache_dir(data_cfg)
    return {"video": folder / "replay.mp4", "audio": folder / "replay.wav", "index": folder / "replay.json"}


def frame_times(s: dict) -> np.ndarray:
    """Seconds from the clip's start of each frame: period, 2·period, … up to the clip's end."""
    period, length = float(s["frame_period_s"]), float(s["clip_seconds"])
    return period * np.arange(1, int(np.floor(length / period + 1e-9)) + 1)


# --- the plan: which classes each clip holds -----------------------------------------------------------

def _split_ids(s: dict) -> dict[str, np.ndarray]:
    """Global clip ids of each split, in SPLITS order (a clip's id seeds its random streams)."""
    out, start = {}, 0
    for name in SPLITS:
        out[name] = np.arange(start, start + s["clips"][name])
        start += s["clips"][name]
    return out


def plan_classes(n: int, events: tuple[int, int], rng: np.random.Generator) -> list[list[int]]:
    """n clips' classes: each clip low..high distinct classes (uniform), every class in the same number
    of clips ±1 — a shuffled deck holding each class in turn is dealt out, then a class a clip got twice
    is swapped with one of another clip that lacks it."""
    k = len(CLASS_NAMES)
    counts = rng.integers(events[0], events[1] + 1, n)
    total = int(counts.sum())
    deck = np.concatenate([rng.permutation(k) for _ in range(-(-total // k))])[:total]
    deck = deck[rng.permutation(total)].tolist()
    ends = np.cumsum(counts)
    clips = [deck[e - c:e] for e, c in zip(ends, counts)]
    for i, mine in enumerate(clips):
        p = next((p for p in range(len(mine)) if mine[p] in mine[:p]), None)
        while p is not None:
            for j in rng.permutation(n):
                q = next((q for q, c in enumerate(clips[j]) if c not in mine and mine[p] not in clips[j]), None)
                if j != i and q is not None:
                    mine[p], clips[j][q] = clips[j][q], mine[p]
                    break
            else:
                raise MkeError("could not deal distinct classes to every clip; lower data.events")
            p = next((p for p in range(len(mine)) if mine[p] in mine[:p]), None)
    return [sorted(int(c) for c in clip) for clip in clips]


def _utterance(clip_id: int, s: dict):
    """The words and voice of a clip's speech event (its own random stream)."""
    from mke.train.datasets.speech import DETERMINISTIC_VARIANTS, ENGLISH_ACCENTS, Utterance, Voice

    rng = np.random.default_rng([s["seed"], 20, clip_id])
    voice = Voice(accent=str(rng.choice(ENGLISH_ACCENTS)), variant=str(rng.choice(DETERMINISTIC_VARIANTS)),
                  rate_wpm=int(rng.integers(150, 211)), pitch=int(rng.integers(30, 71)),
                  pitch_range=int(rng.integers(30, 71)))
    return Utterance(str(rng.choice(PHRASES)), voice)


# --- one clip ------------------------------------------------------------------------------------------

def _timing(classes: list[int], speech_s: float, s: dict, rng: np.random.Generator) -> list[dict]:
    """Each event's span (s), level (dB FS) and whether it is the faint one hidden under a louder one."""
    length, shortest = float(s["clip_seconds"]), float(s["min_event_s"])
    aud = s["audio"]
    order = rng.permutation(len(classes))
    maskers = [i for i in order if CLASS_NAMES[classes[i]] in MASKERS]
    faint = len(classes) >= 2 and bool(maskers) and rng.random() < aud["faint_share"]
    if faint:  # the loud one: the broadest sound of the clip
        loud = min(maskers, key=lambda i: MASKERS.index(CLASS_NAMES[classes[i]]))
        order = np.concatenate([[loud], order[order != loud]])
    out = [None] * len(classes)
    for rank, i in enumerate(order):
        c = CLASS_NAMES[classes[i]]
        floor = min(length, max(shortest, speech_s + 0.05 if c == "speech" else 0.0))
        if faint and rank == 0:        # the loud one: long, near the top of the level range
            d = rng.uniform(max(floor, 1.5 * shortest), length)
            on = rng.uniform(0, length - d)
            level = rng.uniform(aud["level_db"][1] - 6, aud["level_db"][1])
            out[i] = {"onset_s": on, "offset_s": on + d, "level_db": level, "faint": False}
        elif faint and rank == 1:      # the faint one: inside the loud one's span where it fits
            loud = out[order[0]]
            span = loud["offset_s"] - loud["onset_s"]
            d = rng.uniform(floor, max(floor, span))
            on = rng.uniform(loud["onset_s"], max(loud["onset_s"], loud["offset_s"] - d))
            on = min(on, length - d)
            level = loud["level_db"] - rng.uniform(*aud["faint_db"])
            out[i] = {"onset_s": on, "offset_s": on + d, "level_db": level, "faint": True}
        else:
            d = rng.uniform(floor, length)
            on = rng.uniform(0, length - d)
            out[i] = {"onset_s": on, "offset_s": on + d, "level_db": rng.uniform(*aud["level_db"]), "faint": False}
    return out


def _audible(parts: list[np.ndarray], mix: np.ndarray, rate: int) -> list[float]:
    """For each part of `mix`: the share of its energy in the time-frequency cells a log-mel model sees
    (32 ms frames 16 ms apart × 64 mel bands) where it is louder than everything else together — 0
    buried, 1 alone."""
    from mke.runtime.audio_features import mel_filterbank

    n_fft = 2 ** int(np.ceil(np.log2(0.032 * rate)))
    mel = mel_filterbank(rate, n_fft, 64)

    def stft(x):
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::n_fft // 2]
        return np.fft.rfft(frames * np.hanning(n_fft), axis=-1)

    whole = stft(mix)
    out = []
    for p in parts:
        mine = stft(p)
        power, rest = np.abs(mine) ** 2 @ mel.T, np.abs(whole - mine) ** 2 @ mel.T
        total = power.sum()
        out.append(float(power[power > rest].sum() / total) if total > 0 else 0.0)
    return out


def make_clip(clip_id: int, classes: list[int], words: np.ndarray | None, words_rate: int, s: dict) -> dict:
    """Clip `clip_id`'s audio (int16), frames (uint8), label vector and events; `words` are its speech
    event's samples at `words_rate` Hz (None without one). Depends on nothing but its arguments."""
    from mke.runtime.audio_features import resample
    from mke.train.datasets.event_sounds import GENERATORS, coloured_noise, place_speech

    aud, rate = s["audio"], s["audio"]["sample_rate"]
    n = int(round(float(s["clip_seconds"]) * rate))
    speech = None if words is None else resample(words[None], words_rate, rate)[0]
    timing = _timing(classes, 0.0 if speech is None else len(speech) / rate, s,
                     np.random.default_rng([s["seed"], 21, clip_id]))
    sound_rng = np.random.default_rng([s["seed"], 22, clip_id])
    noise_db = float(sound_rng.uniform(*aud["noise_db"]))
    noise = 10 ** (noise_db / 20) * coloured_noise(n, sound_rng.uniform(*aud["noise_color"]), sound_rng, rate)
    parts = []
    for c, ev in zip(classes, timing):
        a, b = int(round(ev["onset_s"] * rate)), min(n, int(round(ev["offset_s"] * rate)))
        name = CLASS_NAMES[c]
        if name == "speech":
            x = place_speech(speech, b - a, rate, sound_rng)
        else:
            x = GENERATORS[name](b - a, rate, sound_rng)
        part = np.zeros(n, np.float32)
        part[a:b] = 10 ** (ev["level_db"] / 20) * x
        parts.append(part)
    mix = noise + sum(parts)
    peak = float(np.abs(mix).max())
    gain = min(1.0, 0.98 / peak) if peak > 0 else 1.0  # never clip: the rare loud pile-up is turned down whole
    audible = _audible(parts, mix, rate)
    pcm = np.clip(np.round(mix * gain * 32767), -32768, 32767).astype(np.int16)

    stored = {k: [float(np.float32(ev[k])) for ev in timing] for k in ("onset_s", "offset_s")}  # as cached
    scene = clip_scene(clip_id, classes, stored["onset_s"], stored["offset_s"], s)
    frames = np.stack([render_at(scene, s, clip_id, t) for t in frame_times(s)])
    label = np.zeros(len(CLASS_NAMES), np.float32)
    label[classes] = 1
    events = [{"event_class": c, **ev, "level_db": ev["level_db"] + 20 * np.log10(gain), "audible": au}
              for c, ev, au in zip(classes, timing, audible)]
    idle = [sp.name for sp in scene.sprites if not sp.active]
    return {"audio": pcm, "frames": frames, "labels": label, "events": events,
            "idle_prop": CLASS_NAMES.index(idle[0]) if idle else -1, "noise_db": noise_db + 20 * np.log10(gain)}


def clip_scene(clip_id: int, classes: list[int], onsets: list[float], offsets: list[float], s: dict):
    """The scene (`event_sights.Scene`) of clip `clip_id` with these events' classes and spans (s): the
    background, the sprites and maybe an idle prop, from the clip's own random stream — so the replay
    draws a made clip again from its stored events."""
    from mke.train.datasets.event_sights import make_scene

    img = s["image"]
    scene_rng = np.random.default_rng([s["seed"], 23, clip_id])
    idle = None
    if scene_rng.random() < img["idle_props"]:
        idle = CLASS_NAMES[int(scene_rng.choice([k for k in range(len(CLASS_NAMES)) if k not in classes]))]
    return make_scene([(CLASS_NAMES[c], a, b) for c, a, b in zip(classes, onsets, offsets)], idle, img["size"],
                      img["scale"], img["noise"], scene_rng)


def render_at(scene, s: dict, clip_id: int, t: float) -> np.ndarray:
    """uint8 (H, W, 3): clip `clip_id`'s scene at t seconds, its noise drawn by clip and millisecond — so
    the replay's frame at a training frame's time is that frame."""
    from mke.train.datasets.event_sights import render

    return render(scene, t, np.random.default_rng([s["seed"], 24, clip_id, int(round(t * 1000))]))


# --- generation ----------------------------------------------------------------------------------------

def _make_batch(jobs: list[tuple], s: dict) -> list[dict]:
    """make_clip over `jobs` with one BLAS thread: its small matrix products ran 20× slower with a thread
    per core on a busy 2-core machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency; without it, BLAS keeps its threads
        from contextlib import nullcontext as threadpool_limits
    with threadpool_limits(1):
        return [make_clip(clip_id, classes, words, rate, s) for clip_id, classes, words, rate in jobs]


def generate(s: dict, progress: bool = False, workers: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """All clips of the settings `s` (from `data_settings`): split name → arrays (frames uint8 (N, F, H,
    W, 3), audio int16 (N, T), labels uint8 (N, K), the EVENT_FIELDS (N, E), clip_ids, idle_prop,
    noise_db). Clips are made in `workers` processes (0: one per CPU core, at most 4); the result does
    not depend on how many."""
    from mke.train.datasets.speech import synthesize

    ids = _split_ids(s)
    classes = {}
    for k, name in enumerate(SPLITS):
        for clip_id, cls in zip(ids[name], plan_classes(len(ids[name]), tuple(s["events"]),
                                                        np.random.default_rng([s["seed"], 19, k]))):
            classes[int(clip_id)] = cls
    speaking = [i for i in sorted(classes) if CLASS_NAMES.index("speech") in classes[i]]
    bar = tqdm(total=len(speaking) + len(classes), desc="events data: speaking (eSpeak NG)", unit="clip",
               disable=not progress, leave=False)
    words, speech_rate = {}, s["audio"]["sample_rate"]
    if speaking:
        spoken, speech_rate = synthesize([_utterance(i, s) for i in speaking], on_progress=bar.update)
        words = dict(zip(speaking, spoken))
    bar.set_description("events data: sounds and sights")
    jobs = [(i, classes[i], words.get(i), speech_rate) for i in sorted(classes)]
    made = _run(jobs, s, workers, bar.update)
    bar.close()
    slots = max(len(c) for c in classes.values())
    out = {}
    for name in SPLITS:
        clips = [made[int(i)] for i in ids[name]]
        events = {key: np.zeros((len(clips), slots), dtype) for key, dtype in EVENT_FIELDS.items()}
        events["event_class"][:] = -1
        for r, clip in enumerate(clips):
            for e, ev in enumerate(clip["events"]):
                for key in EVENT_FIELDS:
                    events[key][r, e] = ev[key]
        out[name] = {"frames": np.stack([c["frames"] for c in clips]), "audio": np.stack([c["audio"] for c in clips]),
                     "labels": np.stack([c["labels"] for c in clips]).astype(np.uint8), **events,
                     "clip_ids": ids[name].astype(np.int64),
                     "idle_prop": np.array([c["idle_prop"] for c in clips], np.int64),
                     "noise_db": np.array([c["noise_db"] for c in clips], np.float32)}
    return out


def _run(jobs: list[tuple], s: dict, workers: int, on_progress) -> dict[int, dict]:
    """make_clip over `jobs`, in a spawn pool of `workers` processes when more than one (batches of clips
    for few hand-overs); clip id → clip."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    from mke.runtime.memory import huge_pages_off

    workers = max(1, min(workers or min(4, os.cpu_count() or 1), len(jobs)))
    batch = max(1, min(50, len(jobs) // (4 * workers)))
    batches = [jobs[i:i + batch] for i in range(0, len(jobs), batch)]
    made = {}
    pool = None if workers == 1 else ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                         initializer=huge_pages_off)
    try:
        results = (_make_batch(b, s) for b in batches) if pool is None else \
            pool.map(_make_batch, batches, [s] * len(batches))
        for b, clips in zip(batches, results):
            for job, clip in zip(b, clips):
                made[job[0]] = clip
            on_progress(len(b))
    except BrokenProcessPool as exc:
        raise MkeError("the processes making the events data stopped: a script that makes it must start under "
                       "`if __name__ == \"__main__\":` (each worker imports it again), or pass workers=1") from exc
    finally:
        if pool is not None:
            pool.shutdown()
    return made


# --- the replay pair -----------------------------------------------------------------------------------

def write_replay(folder: Path, test: dict[str, np.ndarray], s: dict) -> None:
    """replay.mp4 + replay.wav + replay.json of `replay.clips` test clips (chosen and ordered by the seed).

    Clip k's sound fills [start_s, end_s) = [k, k + 1) × clip_seconds, back to back, with frame_period_s
    of silence after the last. The video shows clip k's scene rendered at each video frame's time in
    (start_s, end_s] (the first frame: the first clip at 0 s), so at eval_s = end_s the last
    clip_seconds of sound and the video frames frame_period_s apart up to then are exactly the clip's
    training sample, up to the codec: the moment mke-train scores. Frames are enlarged by whole pixels
    (nearest neighbour); the model's area shrink gives the originals back."""
    import cv2

    rep, rate = s["replay"], s["audio"]["sample_rate"]
    n = min(rep["clips"], len(test["labels"]))
    chosen = np.random.default_rng([s["seed"], 16]).permutation(len(test["labels"]))[:n]
    length, period, fps = float(s["clip_seconds"]), float(s["frame_period_s"]), rep["fps"]
    size = s["image"]["size"]
    scale = max(1, rep["size"] // size)
    total_s = n * length + period                       # the last clip's eval_s needs its frame
    length_ms = round(length * 1000)

    def events_of(k):
        row = chosen[k]
        keep = test["event_class"][row] >= 0
        return (test["event_class"][row][keep].tolist(), test["onset_s"][row][keep].tolist(),
                test["offset_s"][row][keep].tolist(), test["level_db"][row][keep].tolist(),
                test["audible"][row][keep].tolist())

    scene, scene_of = None, -1
    video = folder / "replay.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (size * scale, size * scale))
    if not writer.isOpened():
        raise MkeError(f"OpenCV cannot write {video} (mp4v): install opencv-python with its bundled FFmpeg")
    try:
        for v in range(int(round(total_s * fps))):
            at_ms = round(v * 1000 / fps)
            k = min(n - 1, max(0, (at_ms - 1) // length_ms))
            t_ms = min(length_ms, at_ms - k * length_ms)
            clip_id = int(test["clip_ids"][chosen[k]])
            if k != scene_of:
                scene, scene_of = clip_scene(clip_id, *events_of(k)[:3], s), k
            image = render_at(scene, s, clip_id, t_ms / 1000)
            image = cv2.resize(image, (size * scale, size * scale), interpolation=cv2.INTER_NEAREST)
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    tail = np.zeros(int(round(period * rate)), np.int16)
    with wave.open(str(folder / "replay.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.concatenate([test["audio"][chosen].ravel(), tail]).astype("<i2").tobytes())
    clips, spans = [], []
    for k in range(n):
        cls, on, off, level, audible = events_of(k)
        start = k * length
        events = [{"class": int(c), "name": CLASS_NAMES[c], "onset_s": round(start + a, 4),
                   "offset_s": round(start + b, 4), "level_db": round(float(lv), 2), "audible": round(float(au), 3),
                   "masked": bool(au < MASKED_BELOW)} for c, a, b, lv, au in zip(cls, on, off, level, audible)]
        spans += [(e["onset_s"], e["offset_s"], e["class"]) for e in events]
        target = test["labels"][chosen[k]].astype(int).tolist()
        clips.append({"clip": k, "start_s": start, "end_s": start + length, "eval_s": start + length,
                      "classes": [c for c in range(len(CLASS_NAMES)) if target[c]],
                      "names": [CLASS_NAMES[c] for c in range(len(CLASS_NAMES)) if target[c]], "target": target,
                      "events": events, "test_index": int(chosen[k]), "clip_id": int(test["clip_ids"][chosen[k]])})
    seconds = [sorted({c for a, b, c in spans if a < sec + 1 and b > sec}) for sec in range(int(np.floor(total_s)))]
    index = {"video": "replay.mp4", "audio": "replay.wav", "fps": fps, "sample_rate": rate, "task": "multilabel",
             "clip_seconds": length, "frame_period_s": period, "frame_times_s": frame_times(s).tolist(),
             "frame_note": "clip k is rendered at each video frame's time in (start_s, end_s]; its frames at "
                           "start_s + frame_times_s are its training frames",
             "eval_note": "at eval_s the last clip_seconds of sound and the frames frame_period_s apart up to then "
                          "are the clip's: the sample mke-train's evaluation scores against `target`",
             "class_names": list(CLASS_NAMES), "duration_s": total_s, "clips": clips,
             "seconds": seconds, "second_names": [[CLASS_NAMES[c] for c in sec] for sec in seconds],
             "seconds_note": "seconds[i]: the classes of the events that sound (and show) during [i, i + 1) s"}
    (folder / "replay.json").write_text(json.dumps(index, indent=1) + "\n")




# --- the cache -----------------------------------------------------------------------------------------

def _build(folder: Path, s: dict, progress: bool, workers: int) -> None:
    """Generate into a temporary folder beside `folder`, then rename it into place."""
    from mke.train.datasets.speech import engine_version

    started = time.perf_counter()
    with building_cache(folder) as tmp:
        splits = generate(s, progress, workers)
        for name, arrays in splits.items():
            with open(tmp / f"{name}.npz", "wb") as f:
                np.savez(f, **arrays)
        if s["replay"]["clips"] > 0:
            write_replay(tmp, splits["test"], s)
        summary = {name: split_summary(a) for name, a in splits.items()}
        meta = {"settings": s, "generator_version": GENERATOR_VERSION, "espeakng_loader": engine_version(),
                "class_names": list(CLASS_NAMES), "confusable": [list(p) for p in CONFUSABLE],
                "masked_below": MASKED_BELOW, "frame_times_s": frame_times(s).tolist(),
                "sample_rate": s["audio"]["sample_rate"],
                "clips": {name: int(len(a["labels"])) for name, a in splits.items()},
                "summary": summary, "generation_seconds": round(time.perf_counter() - started, 1),
                "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}}
        write_json(tmp / "data.json", meta)


def split_summary(arrays: dict[str, np.ndarray]) -> dict:
    """Counts of a split for data.json and the report: clips per class, events per clip, faint and masked
    events, idle props."""
    present = arrays["event_class"] >= 0
    return {"clips": int(len(arrays["labels"])),
            "per_class": dict(zip(CLASS_NAMES, arrays["labels"].sum(0).astype(int).tolist())),
            "events_per_clip": {str(k): int(v) for k, v in
                                zip(*np.unique(present.sum(1), return_counts=True))},
            "faint_events": int(arrays["faint"][present].sum()),
            "masked_events": int((present & (arrays["audible"] < MASKED_BELOW)).sum()),
            "idle_props": int((arrays["idle_prop"] >= 0).sum())}



def _read_split(folder: Path, name: str, s: dict) -> EventClips:
    path = folder / f"{name}.npz"
    try:
        arrays = npz_memmaps(path)
        frames, audio, labels = arrays.pop("frames"), arrays.pop("audio"), arrays.pop("labels")
        audio = rows_of(audio, pcm=True, name=f"{name} audio")
        events = {key: arrays.pop(key) for key in EVENT_FIELDS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, MkeError) as exc:
        raise MkeError(f"cached data {path} is unreadable ({exc}); delete {folder} to generate it again") from None
    return EventClips(name=name, frames=frames, audio=audio,
                      labels=labels.astype(np.float32), sample_rate=s["audio"]["sample_rate"],
                      frame_times_s=frame_times(s), class_names=CLASS_NAMES, events=events, meta=arrays)


def load_events(data_cfg: dict, progress: bool = True, workers: int = 0) -> dict[str, EventClips]:
    """The splits "labeled" (D_l), "unlabeled" (D_u), "val" and "test", generated and cached on first
    use (a cache found incomplete is generated again); `data_cfg` as DATA_DEFAULTS plus cache_dir.
    `workers`: processes making clips the first time (0: one per core, at most 4)."""
    s = data_settings(data_cfg)
    folder = cache_dir(data_cfg)
    if not cache_complete(folder):
        _build(folder, s, progress, workers)
    return {name: _read_split(folder, name, s) for name in SPLITS}
