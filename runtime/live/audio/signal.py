"""Downmixing and resampling to the model's channels and rate (numpy only: no librosa start-up on a robot)."""
from __future__ import annotations

import numpy as np

from mke.runtime.errors import MkeError


def to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """(C, T) → (channels, T): mono is the mean of the device's channels; mono to several is copied."""
    c = samples.shape[0]
    if c == channels:
        return samples
    if channels == 1:
        return samples.mean(axis=0, keepdims=True, dtype=np.float32)
    if c == 1:
        return np.repeat(samples, channels, axis=0)
    raise MkeError(f"cannot map {c} audio channels onto the model's {channels}: give a mono or a "
                   f"{channels}-channel device")


def resample(samples: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """(C, T) at `rate_in` Hz → (C, T') at `rate_out` Hz, T' = round(T · out / in).

    Linear interpolation after a box pre-filter when downsampling by an integer factor or more —
    enough for level meters and speech-band models; a model trained on band-limited audio should
    be given a device at its own rate."""
    if rate_in == rate_out or samples.shape[1] == 0:
        return samples.astype(np.float32, copy=False)
    n_out = int(round(samples.shape[1] * rate_out / rate_in))
    src = samples.astype(np.float32, copy=False)
    factor = int(rate_in // rate_out)
    if factor >= 2:  # average `factor` neighbours: a cheap anti-alias filter
        kernel = np.ones(factor, np.float32) / factor
        src = np.stack([np.convolve(ch, kernel, mode="same") for ch in src])
    t_out = (np.arange(n_out) + 0.5) * (rate_in / rate_out) - 0.5
    t_in = np.arange(src.shape[1])
    return np.stack([np.interp(t_out, t_in, ch) for ch in src]).astype(np.float32)


def level_db(samples: np.ndarray | None) -> float:
    """RMS level in dB relative to full scale (−100 for silence or no audio)."""
    if samples is None or samples.size == 0:
        return -100.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(-100.0, 20.0 * np.log10(rms)) if rms > 0 else -100.0
