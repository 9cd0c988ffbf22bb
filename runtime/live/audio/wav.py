"""A WAV file beside a video or recording, addressed by media time (stdlib `wave`: PCM 8/16/24/32-bit;
`--audio file://X.wav` or the bare path)."""
from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.live.audio.signal import resample, to_channels
from mke.runtime.live.sources.registry import SourceContext, register_source


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 in −1..1, and the rate in Hz."""
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"WAV file {path} does not exist")
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise MkeError(f"{path}: not a PCM WAV file ({exc}); expected 8, 16, 24 or 32-bit integer PCM") from None
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        data = (((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8) >> 8).astype(np.float32) / 8388608.0
    else:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    return data.reshape(-1, channels).T.copy(), rate


class WavAudio:
    """Media time 0 is the first frame's timestamp: the file starts with the video or recording."""

    clock = "media"

    def __init__(self, path: str | Path, rate: int, channels: int):
        self.path, self.rate, self.channels = Path(path), int(rate), int(channels)
        self.name = f"WAV {self.path}"
        self._samples: np.ndarray | None = None

    def open(self) -> None:
        data, rate = read_wav(self.path)
        self._samples = resample(to_channels(data, self.channels), rate, self.rate)
        self.name = f"WAV {self.path} ({rate} Hz → {self.rate} Hz, {data.shape[0]} → {self.channels} ch)"

    alive = True

    def window(self, end_media_s: float, seconds: float, missing_s: float = 0.0) -> tuple[np.ndarray, bool]:
        n = int(round(seconds * self.rate))
        end = int(round(end_media_s * self.rate))
        out = np.zeros((self.channels, n), np.float32)
        total = self._samples.shape[1]
        lo, hi = max(0, end - n), min(total, end)
        if hi > lo:
            out[:, n - (end - lo):n - (end - hi)] = self._samples[:, lo:hi]
        cut = min(n, int(round(missing_s * self.rate)))
        if cut:
            out[:, n - cut:] = 0.0
        return out, end > total or cut > 0

    def close(self) -> None:
        self._samples = None


@dataclass(frozen=True)
class WavOptions:
    path: Path   # the URI's address


@register_source(options=WavOptions, target="path", suffixes=(".wav",), modalities={"audio"}, role="audio",
                 form="file://X.wav (or the bare path)",
                 summary="a WAV file, media clock (it starts with the first frame)")
def open_wav(options: WavOptions, context: SourceContext) -> WavAudio:
    return WavAudio(options.path, context.audio_rate, context.audio_channels)
