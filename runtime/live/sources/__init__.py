"""The live sources, by `--sensor` name, built from the command-line options and the model spec."""
from __future__ import annotations

from typing import Callable

from mke.runtime.errors import MkeError
from mke.runtime.live.sources.base import Source
from mke.runtime.spec import ModelSpec

# options that only mean something for some sensors: a user who passes them elsewhere has made a mistake
SENSOR_OPTIONS = {"serial": ("realsense",), "replay": ("realsense",), "record": ("realsense",), "loop": ("realsense",),
                  "camera": ("camera",), "video": ("files",), "sim_seed": ("sim",)}


def model_image_size(spec: ModelSpec, default: tuple[int, int] = (160, 120)) -> tuple[int, int]:
    """(width, height) of the model's image inputs."""
    for i in spec.inputs:
        if i.modality in ("rgb", "depth") and len(i.shape) == 4 and min(i.shape[2:]) > 0:
            return int(i.shape[3]), int(i.shape[2])
    return default


def _realsense(args, spec: ModelSpec) -> Source:
    if args.replay:
        if args.record:
            raise MkeError("--record saves a live camera's streams; with --replay the recording exists already")
        from mke.runtime.live.sources.realsense import RealSenseReplay

        return RealSenseReplay(args.replay, real_time=not args.fast, loop=args.loop)
    if args.loop:
        raise MkeError("--loop replays a recording again at its end: give --replay FILE")
    from mke.runtime.live.sources.realsense import RealSenseCamera

    return RealSenseCamera(serial=args.serial, want_size=model_image_size(spec), record=args.record)


def _camera(args, spec: ModelSpec) -> Source:
    from mke.runtime.live.sources.camera import OpenCVCamera

    return OpenCVCamera(args.camera if args.camera is not None else "0", real_time=not args.fast)


def _files(args, spec: ModelSpec) -> Source:
    if not args.video:
        raise MkeError("--sensor files needs --video FILE (and --wav FILE for its sound)")
    from mke.runtime.live.sources.camera import OpenCVCamera

    return OpenCVCamera(f"file://{args.video}", real_time=not args.fast)


def _sim(args, spec: ModelSpec) -> Source:
    from mke.runtime.live.sources.sim import SimCamera

    return SimCamera(size=model_image_size(spec), seed=args.sim_seed or 0, real_time=not args.fast)


SENSORS: dict[str, Callable[..., Source]] = {"realsense": _realsense, "camera": _camera, "files": _files, "sim": _sim}


def build_source(args, spec: ModelSpec, audio_params: dict) -> Source:
    """The source the options ask for, with audio beside it when --mic or --wav is given (not opened yet)."""
    for option, sensors in SENSOR_OPTIONS.items():
        if getattr(args, option, None) not in (None, False) and args.sensor not in sensors:
            raise MkeError(f"--{option.replace('_', '-')} applies to --sensor {' or '.join(sensors)}, "
                           f"not --sensor {args.sensor}")
    source = SENSORS[args.sensor](args, spec)
    if args.mic is not None and args.wav:
        raise MkeError("give either --mic or --wav, not both")
    if args.mic is not None or args.wav:
        from mke.runtime.live.sources.with_audio import WithAudio

        rate, channels = int(audio_params["sample_rate"]), int(audio_params["channels"])
        if args.wav:
            from mke.runtime.live.audio.wav import WavAudio

            audio = WavAudio(args.wav, rate, channels)
        else:
            from mke.runtime.live.audio.mic import Microphone

            device = None if args.mic in ("", "default") else (int(args.mic) if args.mic.isdigit() else args.mic)
            audio = Microphone(rate, channels, device=device, device_rate=args.mic_rate,
                               device_channels=args.mic_channels)
        source = WithAudio(source, audio, float(audio_params["seconds"]))
    return source
