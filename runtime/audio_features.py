"""Audio features for the models, computed once with numpy: resampling, downmixing, log-mel and MFCC.

TensorRT cannot parse an ONNX STFT, so the features are computed before the model; training, INT8
calibration and the robot call these same functions (train/serve skew is the classic bug). librosa
defines the numbers — Slaney mel filters, `power_to_db`, an orthonormal DCT-II — and the tests hold
these functions to it, but librosa is never imported here: its first call compiles numba for ~30 s.

Features follow the preprocessing convention `fn(samples, params) -> array`: float (C, T) in −1..1 in,
float32 (1, bands, frames) out. The samples' own rate comes as the keyword `rate=` (Hz; default
params["sample_rate"], i.e. already at the model's rate) — a property of the source, not of the model,
so it stays out of the parameters a model spec stores. Any rate and channel count is downmixed and
resampled, never rejected.
"""
from __future__ import annotations

import math
import numbers
from fractions import Fraction
from functools import lru_cache

import numpy as np

from mke.runtime.errors import MkeError

_SPECTRUM_DEFAULTS = {
    "sample_rate": 16000,  # Hz, the model's rate
    "seconds": 1.0,        # the window: the last `seconds` of the input
    "n_fft": 512,          # samples per FFT
    "hop_length": 160,     # samples between frames (10 ms at 16 kHz)
    "win_length": 400,     # samples of the Hann window (25 ms at 16 kHz)
    "fmin": 0.0,           # Hz, lowest mel band edge
    "fmax": None,          # Hz, highest mel band edge; None = sample_rate / 2
    "top_db": 80.0,        # dB below the window's loudest band where values are clipped; None = no clipping
    "mean": 0.0,           # normalisation of the output: (x − mean) / std
    "std": 1.0,
}
AUDIO_FEATURE_DEFAULTS: dict[str, dict] = {
    "log_mel": {**_SPECTRUM_DEFAULTS, "n_mels": 64},
    "mfcc": {**_SPECTRUM_DEFAULTS, "n_mels": 40, "n_mfcc": 40},
}
AMIN = 1e-10                  # power floor before the logarithm (librosa's `amin`)
PASSBAND = 0.9                # resampling keeps 0 … 0.9 × the lower Nyquist frequency flat (±0.001 dB) …
STOPBAND_DB = 80.0            # … and attenuates from the lower Nyquist frequency on by at least this much
MAX_RATIO_TERM = 1000         # a rate ratio with a longer reduced form is approximated (error < 1e-6)


# --- channels and rate -------------------------------------------------------------------------------

def to_mono(samples: np.ndarray) -> np.ndarray:
    """(C, T) → float32 (1, T): the mean of the channels (what a mono model was trained on)."""
    if samples.shape[0] == 1:
        return samples.astype(np.float32, copy=False)
    return samples.mean(axis=0, keepdims=True, dtype=np.float32)


def resample(samples: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """(C, T) at `rate_in` Hz → float32 (C, T') at `rate_out` Hz, T' = round(T · out / in).

    Band-limited polyphase resampling, as `scipy.signal.resample_poly(x, up, down, window=lowpass_filter(up,
    down))`: flat to 0.9 × the lower Nyquist frequency, ≥ 80 dB down from it on. Output sample n sits at
    input time n · in / out; the signal is taken as zero outside the input."""
    samples = np.asarray(samples)
    if samples.ndim != 2:
        raise MkeError(f"audio to resample must be (channels, samples), got shape {tuple(samples.shape)}")
    n_out = _resampled_length(samples.shape[1], rate_in, rate_out)
    return _resample_span(samples.astype(np.float32, copy=False), rate_in, rate_out, 0, n_out)


def _resampled_length(n_in: int, rate_in: float, rate_out: float) -> int:
    for name, rate in (("input rate", rate_in), ("output rate", rate_out)):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) or rate <= 0:
            raise MkeError(f"audio {name} must be a positive number of Hz, got {rate!r}")
    return int(round(n_in * float(rate_out) / float(rate_in)))


def _rate_ratio(rate_in: float, rate_out: float) -> tuple[int, int]:
    """(up, down): rate_out / rate_in as a reduced fraction (exact for whole-Hz rates)."""
    ratio = Fraction(float(rate_out)) / Fraction(float(rate_in))
    if max(ratio.numerator, ratio.denominator) > MAX_RATIO_TERM:
        ratio = ratio.limit_denominator(MAX_RATIO_TERM)
    return ratio.numerator, ratio.denominator


def lowpass_filter(up: int, down: int) -> np.ndarray:
    """float64 (taps,): the resampling filter at `up` × the input rate, a Kaiser-windowed sinc designed
    as `scipy.signal.kaiserord(STOPBAND_DB, width)` + `firwin` would (odd length, gain `up` at 0 Hz to
    make up for the zero-stuffing): transition band from PASSBAND × to 1 × the lower Nyquist frequency.
    Why not resample_poly's default (β = 5, cut off at the Nyquist frequency): going 48 → 16 kHz, it lets
    an 8.5 kHz tone through at −14 dB (9 kHz at −31 dB), aliased into the top mel bands; this stops it."""
    max_rate = max(up, down)
    width = (1.0 - PASSBAND) / max_rate                  # relative to the upsampled Nyquist frequency
    taps = math.ceil((STOPBAND_DB - 7.95) / 2.285 / (math.pi * width) + 1)
    taps += 1 - taps % 2
    m = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(m * (1.0 + PASSBAND) / 2 / max_rate) * np.kaiser(taps, 0.1102 * (STOPBAND_DB - 8.7))
    return h * (up / h.sum())


@lru_cache(maxsize=32)
def _polyphase_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """`lowpass_filter` split into its `up` phases: float32 (up, taps / up), each row reversed so that it
    multiplies a window of input samples in time order; and the filter's delay (samples at up × the
    input rate)."""
    h = lowpass_filter(up, down)
    half = (h.size - 1) // 2
    per_phase = -(-h.size // up)
    h = np.concatenate([h, np.zeros(per_phase * up - h.size)])
    phases = np.ascontiguousarray(h.reshape(per_phase, up).T[:, ::-1], dtype=np.float32)
    phases.setflags(write=False)
    return phases, half


def _resample_span(x: np.ndarray, rate_in: float, rate_out: float, first: int, stop: int) -> np.ndarray:
    """Output samples [first, stop) of the resampled float32 (C, T) signal, without computing the rest.

    Output n is Σ_j h[p + j·up] · x[b − j] with t = n·down + half, p = t mod up, b = t div up; the
    outputs n ≡ r (mod up) share a phase and step `down` inputs apart, so each of the `up` classes is
    one matrix-vector product over a strided view of the input. The products are einsums, not `@`:
    `@` goes to OpenBLAS, whose worker threads, on a busy CPU, made a 1 ms feature take 16 ms (measured)."""
    up, down = _rate_ratio(rate_in, rate_out)
    count = max(0, stop - first)
    if up == down or count == 0 or x.shape[1] == 0:
        out = x[:, first:stop] if up == down else np.zeros((x.shape[0], count), np.float32)
        return np.ascontiguousarray(out, dtype=np.float32)
    phases, half = _polyphase_filter(up, down)
    taps = phases.shape[1]
    last_b = ((stop - 1) * down + half) // up
    padded = np.pad(x, ((0, 0), (taps - 1, max(0, last_b + 1 - x.shape[1]))))
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps, axis=1)   # (C, positions, taps), a view
    out = np.empty((x.shape[0], count), np.float32)
    for r in range(min(up, count)):
        n0 = first + r
        t0 = n0 * down + half
        n_r = len(range(n0, stop, up))
        out[:, r::up] = np.einsum("cnk,k->cn", windows[:, t0 // up::down][:, :n_r], phases[t0 % up])
    return out


# --- mel scale and DCT ---------------------------------------------------------------------------------

_F_SP, _MIN_LOG_HZ, _LOGSTEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0   # Slaney's mel scale
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    log = np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP + _MIN_LOG_MEL
    return np.where(hz >= _MIN_LOG_HZ, log, hz / _F_SP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, mel * _F_SP)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: float, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """float32 (n_mels, 1 + n_fft // 2): triangular filters evenly spaced in mel from `fmin` to `fmax` Hz
    (None = sample_rate / 2), each scaled by 2 / its width in Hz (Slaney's constant energy per band).
    Equal to librosa.filters.mel with its defaults (htk=False, norm="slaney"). Read-only: it is cached."""
    fmax = float(sample_rate) / 2 if fmax is None else float(fmax)
    bin_hz = np.fft.rfftfreq(n_fft, d=1.0 / float(sample_rate))
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - bin_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    weights = (weights * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]).astype(np.float32)
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=16)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """float32 (n_mfcc, n_mels): the first n_mfcc rows of the orthonormal DCT-II, so that
    `dct_matrix(k, n) @ x` is `scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:k]` (librosa's MFCC)."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    basis = basis.astype(np.float32)
    basis.setflags(write=False)
    return basis


@lru_cache(maxsize=16)
def _hann_in_frame(n_fft: int, win_length: int) -> np.ndarray:
    """A periodic Hann window of `win_length` samples centred in an `n_fft`-sample frame (librosa's)."""
    window = np.zeros(n_fft, np.float32)
    start = (n_fft - win_length) // 2
    window[start:start + win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    window.setflags(write=False)
    return window


# --- parameters ----------------------------------------------------------------------------------------

def feature_params(params: dict, features: str | None = None) -> dict:
    """`params` completed from AUDIO_FEATURE_DEFAULTS for `features` ("log_mel" or "mfcc"; default
    params["features"]) — what a model spec stores, so that the robot needs no defaults of its own."""
    features = params.get("features") if features is None else features
    if features not in AUDIO_FEATURE_DEFAULTS:
        raise MkeError(f"audio features {features!r} are not one of {', '.join(AUDIO_FEATURE_DEFAULTS)}")
    return {**AUDIO_FEATURE_DEFAULTS[features], **params}


def _number(p: dict, name: str, *, above: float | None = None, least: float | None = None,
            integer: bool = False, optional: bool = False) -> float | int | None:
    """p[name] as a finite number in range, or MkeError naming the field and what it must be."""
    value = p[name]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or (integer and value != int(value)) or (above is not None and value <= above) \
            or (least is not None and value < least):
        need = ("an integer" if integer else "a finite number") + (f" > {above:g}" if above is not None else "") \
            + (f" >= {least:g}" if least is not None else "") + (" or None" if optional else "")
        raise MkeError(f"audio feature parameter {name!r} must be {need}, got {value!r}")
    return int(value) if integer else float(value)


def _settings(params: dict, features: str | None) -> dict:
    """The completed, checked parameters, as the Python numbers the cached constants are keyed on."""
    features = params.get("features") if features is None else features
    p = feature_params(params, features)
    s = {name: _number(p, name, above=0, integer=True) for name in ("n_fft", "hop_length", "win_length", "n_mels")}
    s["sample_rate"], s["seconds"] = _number(p, "sample_rate", above=0), _number(p, "seconds", above=0)
    s["samples"] = int(round(s["sample_rate"] * s["seconds"]))
    if s["samples"] < 1:
        raise MkeError(f"audio feature parameter 'seconds' ({s['seconds']:g}) holds no sample at "
                       f"{s['sample_rate']:g} Hz")
    if s["win_length"] > s["n_fft"]:
        raise MkeError(f"audio feature parameter 'win_length' ({s['win_length']}) must not exceed "
                       f"'n_fft' ({s['n_fft']})")
    s["fmin"] = _number(p, "fmin", least=0)
    s["fmax"] = _number(p, "fmax", above=s["fmin"], optional=True) or s["sample_rate"] / 2
    if s["fmax"] <= s["fmin"]:
        raise MkeError(f"audio feature parameter 'fmin' ({s['fmin']:g} Hz) must lie below 'fmax' ({s['fmax']:g} Hz)")
    s["top_db"] = _number(p, "top_db", least=0, optional=True)
    s["mean"], s["std"] = _number(p, "mean"), _number(p, "std")
    if s["std"] == 0:
        raise MkeError("audio feature parameter 'std' must not be 0")
    s["bands"] = s["n_mels"]
    if features == "mfcc":
        s["bands"] = _number(p, "n_mfcc", above=0, integer=True)
        if s["bands"] > s["n_mels"]:
            raise MkeError(f"audio feature parameter 'n_mfcc' ({s['bands']}) must not exceed "
                           f"'n_mels' ({s['n_mels']})")
    s["frames"] = 1 + (s["samples"] + 2 * (s["n_fft"] // 2) - s["n_fft"]) // s["hop_length"]
    return s


def feature_shape(params: dict) -> tuple[int, int, int]:
    """(1, bands, frames) of the features for params["features"] ("log_mel": bands = n_mels, "mfcc":
    bands = n_mfcc); frames = 1 + window samples // hop_length for an even n_fft (centred frames)."""
    s = _settings(params, params.get("features"))
    return 1, s["bands"], s["frames"]


# --- features ------------------------------------------------------------------------------------------

def _window(samples: np.ndarray, s: dict, rate: float | None) -> np.ndarray:
    """float (C, T) at `rate` Hz → float32 (sample_rate · seconds,): mono, at the model's rate, its last `seconds`,
    zero-padded in front when shorter (the window of `preprocess_audio`)."""
    x = np.asarray(samples)
    if x.ndim != 2:
        raise MkeError(f"audio input must be (channels, samples), got shape {tuple(x.shape)}; "
                       f"a mono 1-D array is samples[None]")
    if not np.issubdtype(x.dtype, np.floating):
        raise MkeError(f"audio input must be float in -1..1, got {x.dtype}; scale int16 PCM by 1 / 32768")
    if x.size == 0:
        raise MkeError(f"audio input is empty: shape {tuple(x.shape)}")
    mono = to_mono(x)
    if not np.isfinite(mono).all():
        raise MkeError("audio input holds NaN or infinite samples")
    rate = s["sample_rate"] if rate is None else rate
    n, total = s["samples"], _resampled_length(mono.shape[1], rate, s["sample_rate"])
    tail = _resample_span(mono, rate, s["sample_rate"], max(0, total - n), total)[0]
    if tail.size == n:
        return tail
    return np.concatenate([np.zeros(n - tail.size, np.float32), tail])


def _log_mel_db(y: np.ndarray, s: dict) -> np.ndarray:
    """float32 (n_mels, frames) in dB: centred STFT frames (zeros around the signal: librosa's
    pad_mode="constant" default since 0.10), periodic Hann window, power, mel filters, then
    librosa's power_to_db(ref=1.0, amin=1e-10, top_db). Single-threaded einsums, as in `_resample_span`."""
    pad = s["n_fft"] // 2
    padded = np.pad(y, (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(padded, s["n_fft"])[::s["hop_length"]]
    spectrum = np.fft.rfft(frames * _hann_in_frame(s["n_fft"], s["win_length"]), axis=-1)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    filters = mel_filterbank(s["sample_rate"], s["n_fft"], s["n_mels"], s["fmin"], s["fmax"])
    mel = np.einsum("mf,tf->mt", filters, power)
    db = 10.0 * np.log10(np.maximum(mel, np.float32(AMIN)))
    if s["top_db"] is not None:
        np.maximum(db, db.max() - np.float32(s["top_db"]), out=db)
    return db


def _normalised(x: np.ndarray, s: dict) -> np.ndarray:
    if s["mean"] != 0.0 or s["std"] != 1.0:
        x = (x - np.float32(s["mean"])) / np.float32(s["std"])
    return x.astype(np.float32, copy=False)[None]


def log_mel(samples: np.ndarray, params: dict, *, rate: float | None = None) -> np.ndarray:
    """float (C, T) in −1..1 at `rate` Hz (default params["sample_rate"]) → float32 (1, n_mels, frames):
    the log-mel spectrogram in dB of the last params["seconds"], normalised by params mean / std.
    Defaults: AUDIO_FEATURE_DEFAULTS["log_mel"]."""
    s = _settings(params, "log_mel")
    return _normalised(_log_mel_db(_window(samples, s, rate), s), s)


def mfcc(samples: np.ndarray, params: dict, *, rate: float | None = None) -> np.ndarray:
    """float (C, T) in −1..1 at `rate` Hz (default params["sample_rate"]) → float32 (1, n_mfcc, frames):
    the orthonormal DCT-II of the log-mel spectrogram (librosa.feature.mfcc), normalised by params
    mean / std. Defaults: AUDIO_FEATURE_DEFAULTS["mfcc"]."""
    s = _settings(params, "mfcc")
    db = _log_mel_db(_window(samples, s, rate), s)
    return _normalised(np.einsum("km,mt->kt", dct_matrix(s["bands"], s["n_mels"]), db), s)
