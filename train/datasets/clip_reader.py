"""One AudioSet or VGGSound clip decoded: its sound at a target rate, and a few of its pictures.

The same helpers as RAVDESS: a 16-bit PCM wav is read with the stdlib `wave`; anything else — the sound
track of an mp4, a 24-bit or float wav, flac, m4a — by the FFmpeg the optional `imageio-ffmpeg` wheel
ships (decoded to 16-bit at the file's own rate); pictures by OpenCV (`ravdess.read_frames`: the frame
on screen at each time, resized whole to a square). Sound is averaged to mono and resampled with the
runtime's one resampler (`mke.runtime.audio_features.resample`), as the robot's microphone input is.

A file that cannot be decoded raises `Unusable` (the reason); `load_clips` skips such clips and gives
one warning (logger `mke.train.datasets.clip_reader`) with their count and the first few names.
"""
from __future__ import annotations

import logging
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from mke.runtime.errors import MkeError
from mke.train.datasets.audioset_vggsound import warn_skipped
from mke.train.datasets.ravdess import Unusable, read_frames

log = logging.getLogger(__name__)

FFMPEG_TIMEOUT_S = 120
AUDIO_DEFAULTS = {"sample_rate": 16000, "seconds": 10.0, "start_s": 0.0}


@dataclass
class Clip:
    """A decoded clip: mono float32 sound in −1..1 at `sample_rate` Hz, exactly round(seconds · rate)
    samples (`padded_s` of them silence past the file's end); RGB uint8 (F, size, size, 3) pictures or None."""

    audio: np.ndarray
    sample_rate: int
    frames: np.ndarray | None
    padded_s: float


def _wav_pcm16(path: Path) -> tuple[np.ndarray, int] | None:
    """int16 (C, n) and rate of a 16-bit PCM wav; None for another wav flavour (FFmpeg reads those)."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if width != 2:
                return None
            raw = w.readframes(n)
    except (wave.Error, EOFError):
        return None  # e.g. float or WAVE_FORMAT_EXTENSIBLE, which `wave` of Python 3.11 refuses
    samples = np.frombuffer(raw, "<i2")
    return samples[:len(samples) // channels * channels].reshape(-1, channels).T, rate


def ffmpeg_audio(path: Path) -> tuple[np.ndarray, int]:
    """int16 (C, n) and rate of the first sound track of any file FFmpeg reads (imageio-ffmpeg's binary),
    at the file's own rate. Unusable when imageio-ffmpeg is missing or the file has no readable sound."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise Unusable("decoding it needs FFmpeg: pip install imageio-ffmpeg") from None
    with tempfile.TemporaryDirectory(prefix="mke-clip-") as tmp:
        out = Path(tmp) / "sound.wav"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn",
               "-c:a", "pcm_s16le", "-f", "wav", str(out)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unusable(f"FFmpeg could not decode its sound ({exc})") from None
        if done.returncode != 0 or not out.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            if any("matches no streams" in line for line in lines):
                raise Unusable("no sound track")
            raise Unusable(f"corrupt or undecodable sound ({lines[-1] if lines else f'FFmpeg exit {done.returncode}'})")
        read = _wav_pcm16(out)
    if read is None:
        raise Unusable("corrupt or undecodable sound (FFmpeg wrote no 16-bit audio)")
    return read


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """int16 (C, n) and the rate in Hz of a clip's sound: `wave` for 16-bit PCM wavs, FFmpeg otherwise.
    Unusable (the reason) for an empty or corrupt file, or one without sound."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise Unusable("empty file (0 bytes)")
    except OSError as exc:
        raise Unusable(f"unreadable ({exc.strerror or exc})") from None
    read = _wav_pcm16(path) if path.suffix.lower() == ".wav" else None
    samples, rate = read if read is not None else ffmpeg_audio(path)
    if samples.shape[1] == 0:
        raise Unusable("no sound (0 samples)")
    return samples, rate


def audio_window(samples: np.ndarray, rate: int, *, sample_rate: int, seconds: float, start_s: float = 0.0
                 ) -> tuple[np.ndarray, float]:
    """int16 (C, n) at `rate` → float32 (round(seconds · sample_rate),) mono in −1..1 at `sample_rate`: the
    window [start_s, start_s + seconds], padded with silence past the end; and the seconds padded."""
    from mke.runtime.audio_features import resample, to_mono

    first = int(round(start_s * rate))
    cut = samples[:, first:first + int(round(seconds * rate))].astype(np.float32) / np.float32(32768.0)
    mono = to_mono(cut) if cut.shape[1] else np.zeros((1, 0), np.float32)
    if rate != sample_rate and mono.shape[1]:
        mono = resample(mono, rate, sample_rate)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, np.float32)
    out[:min(n, mono.shape[1])] = mono[0, :n]
    return out, max(0.0, (n - mono.shape[1]) / sample_rate)


def load_clip(path: str | Path, *, sample_rate: int = 16000, seconds: float = 10.0, start_s: float = 0.0,
              frame_times_s: Sequence[float] | None = None, image_size: int = 112) -> Clip:
    """One clip: its sound over [start_s, start_s + seconds] as mono float32 at `sample_rate` Hz and, when
    `frame_times_s` (seconds from start_s) is given, the pictures on screen then, RGB `image_size`².
    Unusable (the reason) when the file cannot give what is asked."""
    if sample_rate < 1000 or seconds <= 0 or start_s < 0 or image_size < 8:
        raise MkeError(f"a clip needs sample_rate >= 1000 Hz, seconds > 0, start_s >= 0 and image_size >= 8, got "
                       f"{sample_rate}, {seconds}, {start_s}, {image_size}")
    path = Path(path)
    samples, rate = read_audio(path)
    audio, padded = audio_window(samples, rate, sample_rate=sample_rate, seconds=seconds, start_s=start_s)
    frames = None
    if frame_times_s is not None:
        times = start_s + np.asarray(frame_times_s, np.float64)
        frames, _ = read_frames(path, times, image_size, face_crop=False)
    return Clip(audio=audio, sample_rate=sample_rate, frames=frames, padded_s=padded)


@dataclass
class ClipBatch:
    """Decoded clips stacked: audio float32 (N, n); frames uint8 (N, F, S, S, 3) or None; `kept` the
    positions in the list given; `skipped` {"file", "reason"} of the others."""

    audio: np.ndarray
    frames: np.ndarray | None
    kept: np.ndarray
    skipped: list[dict]
    padded_s: np.ndarray


def load_clips(root: str | Path, files: Sequence[str], *, what: str = "clips", progress: bool = False,
               **clip_args) -> ClipBatch:
    """`load_clip(root / file, **clip_args)` for each file; a clip that cannot be decoded is skipped, and
    one warning names the count and the first few. MkeError when none can be decoded."""
    root = Path(root)
    audio, frames, kept, skipped, padded = [], [], [], [], []
    for i, rel in enumerate(tqdm(files, desc=f"{what}: decoding", unit="clip", disable=not progress, leave=False)):
        try:
            clip = load_clip(root / rel, **clip_args)
        except Unusable as exc:
            skipped.append({"file": str(rel), "reason": str(exc)})
            continue
        audio.append(clip.audio)
        frames.append(clip.frames)
        padded.append(clip.padded_s)
        kept.append(i)
    warn_skipped(what, skipped, len(files), root)
    if not kept:
        first = f" (first: {skipped[0]['file']}: {skipped[0]['reason']})" if skipped else ""
        raise MkeError(f"no {what} clip under {root} could be decoded: {len(skipped)} of {len(files)} skipped{first}")
    return ClipBatch(audio=np.stack(audio), frames=None if frames[0] is None else np.stack(frames),
                     kept=np.array(kept, np.int64), skipped=skipped, padded_s=np.array(padded, np.float64))
