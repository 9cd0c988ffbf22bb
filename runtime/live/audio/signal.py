"""Downmixing and resampling to the model's channels and rate (numpy only: no librosa start-up on a robot).

The band-limited `resample` and the downmix live in `mke.runtime.audio_features`, beside the features
that use them, so that live audio and training audio go through the same filter."""
from __future__ import annotations

import numpy as np

from mke.runtime.audio_features import resample, to_mono
from mke.runtime.errors import MkeError

__all__ = ["level_db", "resample", "to_channels"]


def to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """(C, T) → (channels, T): mono is the mean of the device's channels; mono to several is copied."""
    c = samples.shape[0]
    if c == channels:
        return samples
    if channels == 1:
        return to_mono(samples)
    if c == 1:
        return np.repeat(samples, channels, axis=0)
    raise MkeError(f"cannot map {c} audio channels onto the model's {channels}: give a mono or a "
                   f"{channels}-channel device")


def level_db(samples: np.ndarray | None) -> float:
    """RMS level in dB relative to full scale (−100 for silence or no audio)."""
    if samples is None or samples.size == 0:
        return -100.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(-100.0, 20.0 * np.log10(rms)) if rms > 0 else -100.0
