"""Sources by URI: the parser, each source's options (types, checks, "did you mean"), the old flags as
aliases of --input / --audio, and mke-live run with --input."""
import json
from pathlib import Path

import pytest

from mke.runtime.cli import main
from mke.runtime.errors import MkeError
from mke.runtime.live.sources import SourceContext, list_sources, open_audio, open_input, open_source, resolve_source
from mke.runtime.live.sources.aliases import LegacyFlags, source_uris
from mke.runtime.live.sources.camera import csi_pipeline
from mke.runtime.live.sources.uri import build_uri, parse_uri


def test_a_uri_splits_into_scheme_address_and_options():
    uri = parse_uri("realsense://123456?fps=15&record=out/today.db3")
    assert (uri.scheme, uri.address, uri.query) == ("realsense", "123456", (("fps", "15"), ("record", "out/today.db3")))
    assert parse_uri("file://data/cache/rec.db3").address == "data/cache/rec.db3"      # relative
    assert parse_uri("file:///tmp/rec.db3").address == "/tmp/rec.db3"                  # absolute
    assert parse_uri("v4l2:///dev/video0").address == "/dev/video0"
    assert parse_uri("mic://USB%20Audio%20Device?rate=48000").address == "USB Audio Device"
    assert parse_uri("sim://?seed=3&").query == (("seed", "3"),)
    bare = parse_uri("rec#1?.db3")
    assert (bare.scheme, bare.address, bare.query, bare.suffix) == (None, "rec#1?.db3", (), ".db3")
    assert parse_uri("FILE://A.MP4").scheme == "file" and parse_uri("FILE://A.MP4").suffix == ".mp4"


def test_build_uri_round_trips_paths_with_characters_a_uri_reserves():
    for path in ("data/rec.db3", "/tmp/my rec #2?.db3", "a&b=c%d.db3"):
        uri = build_uri("file", path, loop=True)
        assert parse_uri(uri).address == path and parse_uri(uri).query == (("loop", "1"),)
    assert build_uri("sim", seed=None) == "sim://" and build_uri("sim", seed=3) == "sim://?seed=3"


def test_options_are_converted_to_their_types():
    camera = resolve_source("realsense://123?fps=15&record=out/today.db3").options
    assert (camera.serial, camera.fps, camera.record) == ("123", 15, Path("out/today.db3"))
    assert resolve_source("realsense://").options.serial is None
    assert resolve_source("file://~/rec.db3").options.path == Path.home() / "rec.db3"   # no shell expands it there
    for text, loop in (("1", True), ("true", True), ("", True), ("0", False), ("off", False)):
        assert resolve_source(f"file://rec.db3?loop={text}").options.loop is loop
    assert resolve_source("file://rec.db3?loop").options.loop is True           # a bare flag is true
    sim = resolve_source("sim://?seed=7&fps=12.5").options
    assert (sim.seed, sim.fps) == (7, 12.5)
    mic = resolve_source("mic://2?rate=48000&channels=2", "audio").options
    assert (mic.device, mic.rate, mic.channels) == ("2", 48000, 2)


@pytest.mark.parametrize("uri, message", [
    ("file://rec.db3?lop=1", "file://rec.db3?lop=1: unknown option 'lop' (did you mean 'loop'?); file://REC.db3 "
                             "(.bag; or the bare path) takes loop (0 or 1, default 0)"),
    ("realsense://?fsp=15", "unknown option 'fsp' (did you mean 'fps'?); realsense://[SERIAL] takes fps (an integer, "
                            "default 30), record (a path, default none)"),
    ("realsense://?fps=fast", "realsense://?fps=fast: option 'fps' must be an integer, got 'fast'"),
    ("realsense://?fps=0", "realsense://?fps=0: fps must be positive, got 0"),
    ("realsense://?serial=12", "unknown option 'serial' (serial is the address: realsense://[SERIAL])"),
    ("sim://?seed=1&seed=2", "option 'seed' is given twice"),
    ("sim://?seed=1.5", "option 'seed' must be an integer, got '1.5'"),
    ("sim://room3", "sim:// takes no address (got 'room3'); its options go after '?': seed (an integer, default 0)"),
    ("file://rec.db3?loop=maybe", "option 'loop' must be 0 or 1, got 'maybe'"),
    ("csi://0?flip=9", "flip is nvvidconv's flip-method 0..7, got 9"),
    ("csi://left", "option 'sensor_id' must be an integer, got 'left'"),
    ("realsence://", "unknown source scheme 'realsence://' (did you mean 'realsense://'?); known: csi://, file://"),
    ("rec.xyz", "rec.xyz: no source reads '.xyz' files; known:"),
    ("file://clip", "file://clip: no source reads a file without a suffix"),
    ("realsense", "realsense: no source reads this (did you mean 'realsense://'?)"),
    ("~/rec", "~/rec: no source reads this (no scheme://, no file suffix); known: csi://, file://"),
    ("mic://", "mic:// is an audio source: give it with --audio, not --input"),
    ("", "an empty source"),
])
def test_uri_mistakes_are_errors_that_say_what_is_valid(uri, message):
    with pytest.raises(MkeError) as info:
        resolve_source(uri)
    assert message in str(info.value)


def test_a_source_of_frames_is_no_audio():
    with pytest.raises(MkeError, match=r"sim:// is a source of frames \(depth, rgb\): give it with --input, not --audio"):
        resolve_source("sim://", "audio")
    with pytest.raises(MkeError, match="no source reads '.mp3' files"):
        open_audio("song.mp3", SourceContext())


def test_every_scheme_and_suffix_finds_its_source():
    context = SourceContext(image_size=(64, 48), real_time=False, audio_rate=8000, audio_channels=2)
    made = {uri: open_source(uri, context) for uri in (
        "realsense://", "realsense://123", "file://rec.db3", "rec.bag", "REC.DB3", "v4l2://0", "0", "/dev/video1",
        "csi://1", "rtsp://cam/stream", "http://cam/mjpg", "file://clip.mp4", "clip.MKV", "sim://")}
    kinds = {uri: type(source).__name__ for uri, source in made.items()}
    assert kinds == {"realsense://": "RealSenseCamera", "realsense://123": "RealSenseCamera",
                     "file://rec.db3": "RealSenseReplay", "rec.bag": "RealSenseReplay", "REC.DB3": "RealSenseReplay",
                     "v4l2://0": "OpenCVCamera", "0": "OpenCVCamera", "/dev/video1": "OpenCVCamera",
                     "csi://1": "OpenCVCamera", "rtsp://cam/stream": "OpenCVCamera", "http://cam/mjpg": "OpenCVCamera",
                     "file://clip.mp4": "OpenCVCamera", "clip.MKV": "OpenCVCamera", "sim://": "SimCamera"}
    assert made["realsense://123"].serial == "123" and made["realsense://123"].want_size == (64, 48)
    assert made["/dev/video1"].target == "/dev/video1" and made["v4l2://0"].target == 0
    assert made["file://clip.mp4"].live is False and made["sim://"].size == (64, 48) and not made["sim://"].live
    assert made["csi://1"].name == "CSI camera 1 (1280x720 @ 30 → 64x48)"
    mic, wav = open_audio("mic://", context), open_audio("a.wav", context)
    assert (mic.device, mic.rate, mic.channels, wav.rate, wav.channels) == (None, 8000, 2, 8000, 2)
    assert open_audio("mic://3", context).device == 3 and open_audio("mic://default", context).device is None
    both = open_input("sim://", "file://a.wav", context)
    assert both.modalities == {"rgb", "depth", "audio"} and both.seconds == context.audio_seconds


def test_the_csi_pipeline_is_sized_for_the_model():
    assert csi_pipeline(0, (1280, 720), 30, (160, 120)) == (
        "nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM), width=1280, height=720, framerate=30/1 ! "
        "nvvidconv flip-method=0 ! video/x-raw, width=160, height=120, format=BGRx ! videoconvert ! "
        "video/x-raw, format=BGR ! appsink drop=true max-buffers=1")


def test_a_csi_camera_without_gstreamer_in_opencv_is_a_clear_error(rgb_onnx, capsys):
    cv2 = pytest.importorskip("cv2")
    from mke.runtime.live.sources.camera import has_gstreamer

    if has_gstreamer(cv2):
        pytest.skip("this OpenCV has GStreamer")
    assert main([str(rgb_onnx), "--input", "csi://0", "--headless"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]         # after the model line: found when the camera opens
    assert err.startswith("mke-live: error: CSI camera 0 (1280x720 @ 30 → 64x48) needs OpenCV with GStreamer")
    assert "GStreamer: NO" in err and "v4l2:///dev/video0" in err


def test_list_inputs_names_every_source_with_what_it_gives_and_its_options(capsys):
    assert main(["--list-inputs"]) == 0
    out = capsys.readouterr().out
    assert out == list_sources() + "\n"
    lines = out.splitlines()
    assert lines[0].startswith("--input URI") and any(line.startswith("--audio URI") for line in lines)
    realsense = next(line for line in lines if "realsense://[SERIAL]" in line)
    assert "depth, rgb" in realsense and "[?fps=30&record=PATH]" in realsense
    assert any("sim://" in line and "[?seed=0&fps=30.0]" in line for line in lines)
    assert any("mic://[DEVICE]" in line and "[?rate=N&channels=N]" in line for line in lines)


def test_a_model_is_needed_unless_listing(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--input", "sim://"])
    assert info.value.code == 2 and "the following arguments are required: model" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the old flags
@pytest.mark.parametrize("flags, uris", [
    (dict(sensor="realsense"), ("realsense://", None)),
    (dict(sensor="realsense", serial="123456", record=Path("today.db3")), ("realsense://123456?record=today.db3", None)),
    (dict(replay=Path("data/rec.db3")), ("file://data/rec.db3", None)),
    (dict(sensor="realsense", replay=Path("/tmp/rec.bag"), loop=True), ("file:///tmp/rec.bag?loop=1", None)),
    (dict(sensor="camera"), ("v4l2://0", None)),
    (dict(sensor="camera", camera="2"), ("v4l2://2", None)),
    (dict(sensor="camera", camera="/dev/video0"), ("v4l2:///dev/video0", None)),
    (dict(sensor="camera", camera="rtsp://cam.local/stream"), ("rtsp://cam.local/stream", None)),
    (dict(sensor="camera", camera="v4l2:///dev/video2"), ("v4l2:///dev/video2", None)),
    (dict(sensor="camera", camera="clip.mp4"), ("file://clip.mp4", None)),
    (dict(sensor="files", video=Path("clip.mp4"), wav=Path("clip.wav")), ("file://clip.mp4", "file://clip.wav")),
    (dict(video=Path("clip.mp4")), ("file://clip.mp4", None)),
    (dict(sensor="sim"), ("sim://", None)),
    (dict(sensor="sim", sim_seed=3), ("sim://?seed=3", None)),
    (dict(sensor="camera", mic="default"), ("v4l2://0", "mic://")),
    (dict(sensor="camera", mic="2", mic_rate=48000, mic_channels=2), ("v4l2://0", "mic://2?rate=48000&channels=2")),
    (dict(sensor="camera", mic="USB Audio", mic_rate=44100), ("v4l2://0", "mic://USB%20Audio?rate=44100")),
])
def test_each_old_flag_combination_builds_its_uri(flags, uris):
    assert source_uris(None, None, LegacyFlags(**flags)) == uris
    for uri, role in zip(uris, ("input", "audio")):
        if uri is not None:
            resolve_source(uri, role)   # and the URI is one the sources take


@pytest.mark.parametrize("flags, message", [
    (dict(), "say which source to run on: --input URI"),
    (dict(serial="1"), "say which source to run on"),
    (dict(sensor="sim", serial="123"), "--serial applies to --sensor realsense, not --sensor sim"),
    (dict(sensor="camera", replay=Path("r.db3")), "--replay applies to --sensor realsense, not --sensor camera"),
    (dict(replay=Path("r.db3"), record=Path("x.db3")), "--record saves a live camera's streams"),
    (dict(sensor="realsense", loop=True), "--loop replays a recording again at its end: give --replay FILE"),
    (dict(sensor="files"), "--sensor files needs --video FILE"),
    (dict(sensor="sim", mic="default", wav=Path("a.wav")), "give either --mic or --wav, not both"),
])
def test_the_old_flag_mistakes_keep_their_messages(flags, message):
    with pytest.raises(MkeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        source_uris(None, None, LegacyFlags(**flags))


def test_an_option_and_its_alias_together_are_an_error():
    with pytest.raises(MkeError, match=r"give the source once: --input sim:// or the alias flags \(--sensor, "
                                       r"--sim-seed\), not both"):
        source_uris("sim://", None, LegacyFlags(sensor="sim", sim_seed=2))
    with pytest.raises(MkeError, match=r"give the audio once: --audio mic:// or the alias flags \(--wav\), not both"):
        source_uris("sim://", "mic://", LegacyFlags(wav=Path("a.wav")))
    # an audio alias beside --input, or a source alias beside --audio, is fine
    assert source_uris("sim://", None, LegacyFlags(wav=Path("a.wav"))) == ("sim://", "file://a.wav")
    assert source_uris(None, "mic://", LegacyFlags(sensor="sim")) == ("sim://", "mic://")


def test_mistakes_in_uris_stop_mke_live_before_the_model_loads(tmp_path, capsys):
    assert main([str(tmp_path / "missing.onnx"), "--input", "sim://?sed=3", "--headless"]) == 2
    err = capsys.readouterr().err
    assert err == ("mke-live: error: sim://?sed=3: unknown option 'sed' (did you mean 'seed'?); sim:// takes seed "
                   "(an integer, default 0), fps (a number, default 30.0)\n")
    assert main([str(tmp_path / "missing.onnx"), "--input", "sim://", "--sensor", "sim"]) == 2
    assert "give the source once" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ --input end to end
def test_sim_by_uri_is_the_sim_of_the_alias(rgbd_onnx, tmp_path):
    pytest.importorskip("pybullet")
    runs = {}
    for name, flags in (("uri", ["--input", "sim://?seed=4"]), ("alias", ["--sensor", "sim", "--sim-seed", "4"])):
        out = tmp_path / f"{name}.jsonl"
        assert main([str(rgbd_onnx), *flags, "--fast", "--headless", "--frames", "5", "--stats-every", "0",
                     "--jsonl", str(out)]) == 0
        runs[name] = [{k: r[k] for k in ("frame", "t", "classes")} for r in map(json.loads, out.read_text().splitlines())]
    assert len(runs["uri"]) == 5 and runs["uri"] == runs["alias"]
