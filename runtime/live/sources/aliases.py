"""The source flags mke-live had before `--input URI` / `--audio URI`, kept as aliases that build those URIs.

    --sensor realsense [--serial S] [--record F]    realsense://S?record=F
    --replay F [--loop]                             file://F?loop=1     (--sensor realsense implied)
    --sensor camera [--camera X]                    v4l2://0, v4l2:///dev/video0, X as is (a URI), file://X
    --sensor files --video V                        file://V            (--video implies --sensor files)
    --sensor sim [--sim-seed N]                     sim://?seed=N
    --mic [DEVICE] [--mic-rate R] [--mic-channels C]  mic://DEVICE?rate=R&channels=C
    --wav F                                         file://F

The combinations they refused, they still refuse, with the same messages.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from mke.runtime.errors import MkeError
from mke.runtime.live.sources.uri import build_uri

SENSORS = ("realsense", "camera", "files", "sim")
# options that only mean something for some sensors: a user who passes them elsewhere has made a mistake
SENSOR_OPTIONS = {"serial": ("realsense",), "replay": ("realsense",), "record": ("realsense",), "loop": ("realsense",),
                  "camera": ("camera",), "video": ("files",), "sim_seed": ("sim",)}
AUDIO_FLAGS = ("mic", "mic_rate", "mic_channels", "wav")
CHOOSE_SOURCE = ("say which source to run on: --input URI (mke-live --list-inputs), or the alias "
                 "--sensor realsense | camera | files | sim (or --replay FILE.db3)")


@dataclass(frozen=True)
class LegacyFlags:
    """The old flags' values (None / False: not given), as `mke-live` parsed them."""

    sensor: str | None = None
    serial: str | None = None
    replay: Path | None = None
    record: Path | None = None
    loop: bool = False
    camera: str | None = None
    video: Path | None = None
    sim_seed: int | None = None
    mic: str | None = None
    mic_rate: int | None = None
    mic_channels: int | None = None
    wav: Path | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def given(self, names) -> list[str]:
        """The flags among `names` that were given, as the user wrote them."""
        return [f"--{n.replace('_', '-')}" for n in names if getattr(self, n) not in (None, False)]

    def input_uri(self) -> str:
        """The `--input` URI the source flags stand for."""
        sensor = self.sensor or ("realsense" if self.replay else "files" if self.video else None)
        if sensor is None:
            raise MkeError(CHOOSE_SOURCE)
        for option, sensors in SENSOR_OPTIONS.items():
            if getattr(self, option) not in (None, False) and sensor not in sensors:
                raise MkeError(f"--{option.replace('_', '-')} applies to --sensor {' or '.join(sensors)}, "
                               f"not --sensor {sensor}")
        if sensor == "realsense":
            if self.replay:
                if self.record:
                    raise MkeError("--record saves a live camera's streams; with --replay the recording exists already")
                return build_uri("file", self.replay, loop=self.loop or None)
            if self.loop:
                raise MkeError("--loop replays a recording again at its end: give --replay FILE")
            return build_uri("realsense", self.serial or "", record=self.record)
        if sensor == "camera":
            return camera_uri(self.camera if self.camera is not None else "0")
        if sensor == "files":
            if not self.video:
                raise MkeError("--sensor files needs --video FILE (and --wav FILE for its sound)")
            return build_uri("file", self.video)
        return build_uri("sim", seed=self.sim_seed)

    def audio_uri(self) -> str | None:
        """The `--audio` URI --mic or --wav stand for; None when neither was given."""
        if self.mic is not None and self.wav:
            raise MkeError("give either --mic or --wav, not both")
        if self.wav:
            return build_uri("file", self.wav)
        if self.mic is not None:
            device = "" if self.mic in ("", "default") else self.mic
            return build_uri("mic", device, rate=self.mic_rate, channels=self.mic_channels)
        return None


def camera_uri(camera: str) -> str:
    """`--camera X`: a device index or /dev path → v4l2://, a URI as it is, anything else a video file."""
    text = str(camera).strip()
    if text.isdigit() or text.startswith("/dev/"):
        return build_uri("v4l2", text)
    if "://" in text:
        return text
    return build_uri("file", text)


def source_uris(input_uri: str | None, audio_uri: str | None, legacy: LegacyFlags) -> tuple[str, str | None]:
    """(input URI, audio URI or None): `--input`/`--audio` as given, or what the alias flags build; an
    option and its alias together are a mistake."""
    if input_uri is not None:
        aliases = legacy.given(("sensor", *SENSOR_OPTIONS))
        if aliases:
            raise MkeError(f"give the source once: --input {input_uri} or the alias flags ({', '.join(aliases)}), "
                           "not both")
    else:
        input_uri = legacy.input_uri()
    if audio_uri is not None:
        aliases = legacy.given(AUDIO_FLAGS)
        if aliases:
            raise MkeError(f"give the audio once: --audio {audio_uri} or the alias flags ({', '.join(aliases)}), "
                           "not both")
        return input_uri, audio_uri
    return input_uri, legacy.audio_uri()
