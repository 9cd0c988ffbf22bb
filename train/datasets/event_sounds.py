"""The sounds of the built-in audio-visual events (`builtin_events`), synthesised with numpy.

Each class has one generator `fn(n, rate, rng) -> float32 (n,)`: the event's sound over its span of
`n` samples at `rate` Hz, its own parameters drawn from `rng`, scaled so that its *active RMS* (the RMS
over the 20 ms frames where it sounds at all, so gaps between barks or beeps do not lower it) is 1.
The mixer then sets each event's level in dB of full scale. `speech` is the one class not made here:
its words come from eSpeak NG (`speech.synthesize`) and are placed by `place_speech`.

Two pairs are made confusable on purpose — the same generator with overlapping parameter ranges:
`phone` and `alarm` (trilled two-tone beeps around 1 kHz; the alarm's a little higher, faster and
shorter on average) and `rain` and `fan` (broadband noise of overlapping colours; rain has faint
droplet clicks, the fan a faint whoosh). A model hearing only the sound tells them apart on some
clips, not most; their pictures differ at a glance.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

FADE_S = 0.02          # seconds of fade at the ends of continuous sounds
_FRAME_S = 0.02        # frames of the active RMS
_ACTIVE_BELOW_DB = 30  # frames this far below the loudest do not count as sounding


def active_rms(x: np.ndarray, rate: int) -> float:
    """RMS over the 20 ms frames no more than 30 dB below the loudest frame (0 for silence)."""
    step = max(1, int(_FRAME_S * rate))
    usable = len(x) // step * step
    if usable == 0:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    energy = np.mean(np.square(x[:usable].reshape(-1, step), dtype=np.float64), axis=1)
    if energy.max() <= 0:
        return 0.0
    loud = energy >= energy.max() * 10 ** (-_ACTIVE_BELOW_DB / 10)
    return float(np.sqrt(energy[loud].mean()))


def _unit(x: np.ndarray, rate: int) -> np.ndarray:
    r = active_rms(x, rate)
    return (x / r if r > 0 else x).astype(np.float32)


def _fade(x: np.ndarray, rate: int, seconds: float = FADE_S) -> np.ndarray:
    k = min(len(x) // 2, int(seconds * rate))
    if k > 0:
        ramp = np.sin(np.linspace(0, np.pi / 2, k)) ** 2
        x[:k] *= ramp
        x[-k:] *= ramp[::-1]
    return x


def _bursts(n: int, rate: int, rng: np.random.Generator, length: tuple[float, float], gap: tuple[float, float],
            first: tuple[float, float] = (0.0, 0.05)) -> list[tuple[int, int]]:
    """(start, stop) sample spans of back-to-back bursts filling n samples: lengths and gaps in seconds."""
    spans, t = [], int(rng.uniform(*first) * rate)
    while True:
        m = int(rng.uniform(*length) * rate)
        if t + m > n:
            break
        spans.append((t, t + m))
        t += m + int(rng.uniform(*gap) * rate)
    if not spans:  # too short for one whole burst: one that fills it
        spans.append((0, n))
    return spans


def coloured_noise(n: int, color: float, rng: np.random.Generator, rate: int = 16000,
                   band: tuple[float, float] | None = None) -> np.ndarray:
    """float32 (n,) of unit RMS whose power falls as f^-color (0 white, 1 pink, 2 brown), optionally
    kept to `band` (Hz, low and high edge, 50 Hz raised-cosine skirts)."""
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    gain = np.maximum(f, rate / max(n, 1)) ** (-color / 2)
    if band is not None:
        lo, hi = band
        gain = gain * np.clip((f - lo) / 50 + 0.5, 0, 1) * np.clip((hi - f) / 50 + 0.5, 0, 1)
    x = np.fft.irfft(spectrum * gain, n)
    return (x / (np.sqrt(np.mean(x * x)) + 1e-12)).astype(np.float32)


# --- one generator per class ---------------------------------------------------------------------------

def dog(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Barks: 0.1–0.18 s harmonic bursts, pitch 300–550 Hz falling by a quarter, a formant near 1.2 kHz."""
    x = np.zeros(n, np.float32)
    f0 = rng.uniform(300, 550)
    formant = rng.uniform(900, 1500)
    for a, b in _bursts(n, rate, rng, (0.1, 0.18), (0.08, 0.3)):
        t = np.arange(b - a) / rate
        f = f0 * rng.uniform(0.9, 1.1) * (1 - rng.uniform(0.15, 0.35) * t / t[-1])
        phase = 2 * np.pi * np.cumsum(f) / rate
        burst = sum(np.exp(-((h * f0 - formant) / 700) ** 2) * np.sin(h * phase) + 0.3 / h * np.sin(h * phase)
                    for h in range(1, 12))
        env = np.minimum(1, t / 0.01) * np.exp(-t / rng.uniform(0.04, 0.08))
        x[a:b] = env * (burst + 0.4 * rng.normal(0, 1, b - a))
    return _unit(x, rate)


def bird(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Chirps: 40–110 ms sweeps between 2.5 and 6 kHz (a weak second harmonic at rates above 26 kHz),
    50–200 ms apart."""
    x = np.zeros(n, np.float32)
    lo, hi = rng.uniform(2500, 3500), rng.uniform(4000, 6000)
    up = rng.random() < 0.5
    second = 0.2 if 2 * 1.08 * hi < rate / 2 else 0.0  # the harmonic only where the rate can carry it
    for a, b in _bursts(n, rate, rng, (0.04, 0.11), (0.05, 0.2)):
        f = (np.linspace(lo, hi, b - a) if up else np.linspace(hi, lo, b - a)) * rng.uniform(0.92, 1.08)
        phase = 2 * np.pi * np.cumsum(f) / rate
        x[a:b] = np.hanning(b - a) * (np.sin(phase) + second * np.sin(2 * phase))
    return _unit(x, rate)


def bell(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """One to three strikes of inharmonic partials (1, 2, 2.76, 4.07, 5.4 × 450–900 Hz), decaying in 0.3–0.9 s."""
    x = np.zeros(n, np.float32)
    f0, tau = rng.uniform(450, 900), rng.uniform(0.3, 0.9)
    ratios, amps = (1.0, 2.0, 2.76, 4.07, 5.4), (1.0, 0.6, 0.5, 0.3, 0.2)
    strikes = [0]
    while strikes[-1] + 0.45 * rate < n and len(strikes) < 3 and rng.random() < 0.6:
        strikes.append(strikes[-1] + int(rng.uniform(0.45, 0.8) * rate))
    for s in strikes:
        if s >= n:
            break
        t = np.arange(n - s) / rate
        tone = sum(a * np.exp(-t * (1 + 0.6 * h) / tau) * np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 6.3))
                   for h, (r, a) in enumerate(zip(ratios, amps)) if f0 * r < 0.45 * rate)
        x[s:] += np.minimum(1, t / 0.003) * tone
    return _unit(x, rate)


def siren(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A wail: a tone sweeping 150–350 Hz either side of 700–1000 Hz, 0.8–2.5 times a second."""
    t = np.arange(n) / rate
    f = rng.uniform(700, 1000) + rng.uniform(150, 350) * np.sin(2 * np.pi * rng.uniform(0.8, 2.5) * t
                                                                 + rng.uniform(0, 6.3))
    phase = 2 * np.pi * np.cumsum(f) / rate
    x = np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
    return _unit(_fade(x.astype(np.float32), rate), rate)


def _beeps(n: int, rate: int, rng: np.random.Generator, carrier: tuple[float, float], trill: tuple[float, float],
           on: tuple[float, float], off: tuple[float, float]) -> np.ndarray:
    """Trilled two-tone beeps (a tone and its major third), on for `on` and off for `off` seconds."""
    x = np.zeros(n, np.float32)
    f, rate_am = rng.uniform(*carrier), rng.uniform(*trill)
    for a, b in _bursts(n, rate, rng, on, off):
        t = np.arange(b - a) / rate
        am = 0.55 + 0.45 * np.tanh(4 * np.sin(2 * np.pi * rate_am * t))
        tone = np.sin(2 * np.pi * f * t) + 0.8 * np.sin(2 * np.pi * 1.25 * f * t + 1.0)
        x[a:b] = _fade(am * tone, rate, 0.005)
    return _unit(x, rate)


def phone(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A ringing phone: carrier 750–1100 Hz, trill 12–20 Hz, beeps of 0.3–0.5 s."""
    return _beeps(n, rate, rng, (750, 1100), (12, 20), (0.3, 0.5), (0.1, 0.25))


def alarm(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """An alarm clock: the phone's beeps a little higher (900–1250 Hz), faster (16–24 Hz) and shorter
    (0.15–0.35 s)."""
    return _beeps(n, rate, rng, (900, 1250), (16, 24), (0.15, 0.35), (0.1, 0.25))


def engine(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """An engine: a buzz of 30–70 Hz drifting ±10 %, harmonics falling as 1/h up to 3 kHz, pulsing at the
    firing rate, over a rumble of pink noise up to 2.5 kHz."""
    t = np.arange(n) / rate
    f0 = rng.uniform(30, 70)
    drift = np.cumsum(rng.normal(0, 1, n // 800 + 2))
    drift = np.interp(t, np.linspace(0, t[-1] if n > 1 else 1, len(drift)), drift / (np.abs(drift).max() + 1e-9))
    f = f0 * (1 + 0.1 * drift)
    cycles = np.cumsum(f) / rate
    saw = np.fft.rfft(2 * (cycles % 1.0) - 1)  # a sawtooth (harmonics falling as 1/h) …
    saw[np.fft.rfftfreq(n, 1.0 / rate) > 3000] = 0  # … up to 3 kHz
    pulse = 1 + 0.3 * np.sin(np.pi * cycles)
    x = np.fft.irfft(saw, n) * pulse + 0.7 * coloured_noise(n, 1.0, rng, rate, band=(20, 2500))
    return _unit(_fade(x.astype(np.float32), rate), rate)


def _hiss(n: int, rate: int, rng: np.random.Generator, color: tuple[float, float]) -> np.ndarray:
    """Broadband noise of a colour within `color`, in a band of 200–800 Hz … 3.5–7 kHz."""
    return coloured_noise(n, rng.uniform(*color), rng, rate, band=(rng.uniform(200, 800), rng.uniform(3500, 7000)))


def rain(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Rain: broadband noise of colour 0.3–1.0 (`_hiss`) with faint droplet clicks."""
    x = _hiss(n, rate, rng, (0.3, 1.0))
    drops = np.zeros(n, np.float32)
    k = np.arange(int(0.005 * rate))
    for start in rng.integers(0, max(1, n - len(k)), int(rng.uniform(20, 60) * n / rate)):
        f = rng.uniform(2000, 6000)
        click = np.exp(-k / (0.0015 * rate)) * np.sin(2 * np.pi * f * k / rate)
        drops[start:start + len(k)] += rng.uniform(0.5, 1.5) * click
    x = x + rng.uniform(0.05, 0.15) * drops / (np.sqrt(np.mean(drops ** 2)) + 1e-9)
    return _unit(_fade(x, rate, 0.05), rate)


def fan(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A fan: broadband noise of colour 0.4–1.1 (`_hiss`, as rain's) with a faint whoosh at the blade rate
    (8–20 Hz)."""
    t = np.arange(n) / rate
    x = _hiss(n, rate, rng, (0.4, 1.1)) * (1 + rng.uniform(0.03, 0.1) * np.sin(2 * np.pi * rng.uniform(8, 20) * t))
    return _unit(_fade(x.astype(np.float32), rate, 0.05), rate)


def place_speech(words: np.ndarray, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """eSpeak NG's words (float, at `rate`) at a random place inside a span of n samples (cut to fit)."""
    x = np.zeros(n, np.float32)
    words = words[:n]
    start = int(rng.integers(0, n - len(words) + 1))
    x[start:start + len(words)] = words
    return _unit(x, rate)


# The generators of the classes made here (speech is placed from eSpeak NG's samples).
GENERATORS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "dog": dog, "bird": bird, "bell": bell, "siren": siren, "phone": phone, "alarm": alarm,
    "engine": engine, "rain": rain, "fan": fan,
}
