"""A microphone through sounddevice (PortAudio): an input stream whose callback fills an AudioRing
(`--audio mic://[DEVICE]?rate=48000&channels=2`)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.live.audio.ring import AudioRing
from mke.runtime.live.audio.signal import resample, to_channels
from mke.runtime.live.sources.registry import SourceContext, register_source


def _import_sounddevice():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library itself is missing
        raise MkeError(f"sounddevice is not usable ({exc}): pip install sounddevice (or mke-edge[sensors]); "
                       "on Linux it also needs libportaudio2 (apt-get install libportaudio2)") from None
    return sd


class Microphone:
    """`device`: a sounddevice name or index (None: the system default). The device runs at its own
    rate and channel count (or `device_rate` / `device_channels`); windows come at the model's."""

    clock = "host"

    def __init__(self, rate: int, channels: int, device: str | int | None = None,
                 device_rate: int | None = None, device_channels: int | None = None, blocksize: int = 0):
        self.rate, self.channels, self.device = int(rate), int(channels), device
        self.device_rate, self.device_channels, self.blocksize = device_rate, device_channels, blocksize
        self.ring: AudioRing | None = None
        self._stream = None
        self.status_flags = 0     # callbacks that reported input overflow

    def open(self) -> None:
        sd = _import_sounddevice()
        try:
            info = sd.query_devices(self.device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
            raise MkeError(f"no microphone {self.device!r} ({exc}); input devices found: {', '.join(names) or 'none'}; "
                           "pick one with --audio mic://NAME (or --mic NAME), or give a recording with "
                           "--audio file://X.wav (or --wav FILE)") from None
        rate = int(self.device_rate or info["default_samplerate"])
        channels = int(self.device_channels or min(2, info["max_input_channels"]) or 1)
        self.ring = AudioRing(rate, channels)

        def callback(indata, frames, time_info, status):
            if status:
                self.status_flags += 1
            self.ring.write(indata, time.monotonic())

        try:
            self._stream = sd.InputStream(device=self.device, samplerate=rate, channels=channels, dtype="float32",
                                          blocksize=self.blocksize, callback=callback)
            self._stream.start()
        except sd.PortAudioError as exc:
            raise MkeError(f"microphone {info['name']!r} would not start at {rate} Hz, {channels} channel(s): {exc}") from None
        self.name = f"microphone {info['name']!r} at {rate} Hz, {channels} ch"

    @property
    def alive(self) -> bool:
        return self._stream is not None and self._stream.active

    def window(self, end_host_s: float, seconds: float, missing_s: float = 0.0) -> tuple[np.ndarray, bool]:
        """The `seconds` of audio ending at host time `end_host_s`, at the model's rate and channels.
        `missing_s` pretends the newest part never arrived (fault injection)."""
        ring = self.ring
        n = int(round(seconds * ring.rate))
        samples, underrun = ring.window(end_host_s, n)
        if missing_s > 0:
            cut = min(n, int(round(missing_s * ring.rate)))
            samples[:, n - cut:] = 0.0
            underrun = underrun or cut > 0
        return resample(to_channels(samples, self.channels), ring.rate, self.rate), underrun

    def close(self) -> None:
        if self._stream is not None:
            self._stream.abort()
            self._stream.close()
            self._stream = None


@dataclass(frozen=True)
class MicOptions:
    device: str | None = None     # a sounddevice name or index (the URI's address); None or "default": the default
    rate: int | None = None       # the device's own rate in Hz (default: the device's)
    channels: int | None = None   # the device's own channel count (default: up to 2)

    def __post_init__(self):
        for name in ("rate", "channels"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise MkeError(f"{name} must be positive, got {value}")


@register_source("mic", options=MicOptions, target="device", modalities={"audio"}, role="audio",
                 form="mic://[DEVICE]", summary="a microphone (sounddevice / PortAudio), host clock")
def open_microphone(options: MicOptions, context: SourceContext) -> Microphone:
    device = options.device
    if device in ("", "default"):
        device = None
    return Microphone(context.audio_rate, context.audio_channels,
                      device=int(device) if device is not None and device.isdigit() else device,
                      device_rate=options.rate, device_channels=options.channels)
