"""`--task vggsound` on a tiny AudioSet + VGGSound tree in the real formats (the lists, 16-bit wavs, mp4s with
an AAC track, written by test_audioset_vggsound's writers): the splits and their targets, the cache (reused,
rebuilt, refused when broken), what is skipped and counted, settings checked, and mke-train end to end."""
import json
import logging
import shutil

import numpy as np
import pytest
from test_audioset_vggsound import CLASS_LABELS, CLASS_MAP, SEGMENTS, VGGSOUND, tone, write_video, write_wav

from mke.runtime.errors import MkeError
from mke.train.config import resolve_config
from mke.train.datasets import audioset_vggsound
from mke.train.datasets.frame_arrays import FrameArray
from mke.train.datasets.vggsound_clips import data_settings, ensure_cache, frame_times, load_vggsound, read_cache_meta
from mke.train.tasks import get_task

pytest.importorskip("imageio_ffmpeg")  # the mp4s' sound is muxed and read by its FFmpeg

CLASSES = ("Accordion", "Piano", "Helicopter", "Car")
# More VGGSound rows than test_audioset_vggsound's, so that every split has clips of several classes.
EXTRA_ROWS = ("heli0000002,3,helicopter,test\n"
              "accord00002,4,playing accordion,test\n"
              "piano000002,7,playing piano,train\n"
              "car00000002,8,car passing by,test\n")
AUDIOSET_WAVS = {"accordion01_30.wav": (440, 1.0), "-piano00001_0.wav": (660, 1.0), "heli0000001_239.wav": (880, 1.0),
                 "padded00001_000040.wav": (330, 0.5), "speech00001_10.wav": (550, 1.0)}  # speech: no shared class
VGGSOUND_VIDEOS = {"---g-f_I2yQ_000001.mp4": 440, "abcdefghijk_000030.mp4": 660, "zzzzzzzzzzz_000000.mp4": 990,
                   "heli0000002_000003.mp4": 880, "accord00002_000004.mp4": 440, "piano000002_000007.mp4": 660,
                   "car00000002_000008.mp4": 990}
CORRUPT = "vggsound/video/corrupt0000_000020.mp4"    # random bytes (a helicopter train row)
NO_SOUND = "vggsound/video/nosound0000_000005.mp4"   # OpenCV writes no sound track (a car test row)
# Tiny clips: 1 s, two pictures (0.5 s, 1.0 s) of 16 px; the preprocessing to match.
TINY = ["data.clip_seconds=1.0", "data.frame_period_s=0.5", "data.image_size=16", "preprocess.rgb.frames=2",
        "preprocess.rgb.period_s=0.5", "preprocess.rgb.size=[16, 16]", "preprocess.audio.seconds=1.0"]
TINY_DATA = {"clip_seconds": 1.0, "frame_period_s": 0.5, "image_size": 16}
TINY_MODEL = ["model.branches.audio={arch: cnn, widths: [4, 8], pool: max}",
              "model.branches.rgb={arch: cnn, widths: [4, 8], pool: max, frames: meanstd}", "model.hidden=16"]


def write_tree(root, cache_dir):
    """data.root in the datasets' layout with decodable clips, a 4-class map beside it; the `data:` settings
    that point at them (root, class_map, cache_dir)."""
    scratch = root.parent / f"{root.name}-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    (root / "audioset").mkdir(parents=True)
    (root / "vggsound").mkdir()
    (root / "audioset" / "balanced_train_segments.csv").write_text(SEGMENTS)
    (root / "audioset" / "class_labels_indices.csv").write_text(CLASS_LABELS)
    (root / "vggsound" / "vggsound.csv").write_bytes((VGGSOUND + EXTRA_ROWS).encode())
    class_map = root.parent / f"{root.name}-classes.yaml"
    class_map.write_text(CLASS_MAP.replace(', "female speech"', ""))
    audio, video = root / "audioset" / "audio", root / "vggsound" / "video"
    for name, (hz, seconds) in AUDIOSET_WAVS.items():
        write_wav(audio / name, tone(hz, seconds, channels=2))
    (audio / "empty000001_0.wav").write_bytes(b"")
    for name, hz in VGGSOUND_VIDEOS.items():
        write_video(video / name, seconds=1.0, audio_hz=hz, tmp=scratch)
    write_video(root / NO_SOUND, seconds=1.0)
    (root / CORRUPT).write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    shutil.rmtree(scratch)
    return {"root": str(root), "class_map": str(class_map), "cache_dir": str(cache_dir)}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("vggsound")
    return write_tree(base / "av", base / "cache")


@pytest.fixture
def data(tree, tmp_path):
    """The tiny data settings with a cache of this test's own."""
    return {**tree, **TINY_DATA, "cache_dir": str(tmp_path / "cache")}


def config(data, *more):
    return resolve_config("vggsound", None, [f"data.{k}={json.dumps(v)}" for k, v in data.items()] + TINY
                          + list(more))


@pytest.fixture
def warnings():
    messages = []

    class Records(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Records(logging.WARNING)
    loggers = [logging.getLogger(n) for n in (audioset_vggsound.__name__, "mke.train.datasets.vggsound_clips",
                                              "mke.train.tasks.vggsound")]
    for logger in loggers:
        logger.addHandler(handler)
    yield messages
    for logger in loggers:
        logger.removeHandler(handler)


def test_the_task_builds_the_papers_splits_over_the_shared_classes(data):
    task = get_task("vggsound")
    cfg = config(data)
    assert task.class_names(cfg) == list(CLASSES) and task.kind == "multilabel" and task.metric == "map"
    clips = task.load_clips(cfg)
    labeled, unlabeled, test = clips["labeled"], clips["unlabeled"], clips["test"]
    assert (len(labeled), len(unlabeled), len(test)) == (4, 3, 4)
    # D_l: AudioSet audio only, multilabel (the helicopter segment is also "Car passing by")
    assert labeled.frames is None and labeled.files.tolist() == [
        "audioset/audio/accordion01_30.wav", "audioset/audio/-piano00001_0.wav", "audioset/audio/heli0000001_239.wav",
        "audioset/audio/padded00001_000040.wav"]
    assert labeled.labels.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]]
    assert labeled.audio.dtype == np.float32 and labeled.audio.shape == (4, 16000) and labeled.sample_rate == 16000
    spectrum = np.abs(np.fft.rfft(labeled.audio[0]))
    assert abs(np.argmax(spectrum) - 440) <= 1                                # 440 Hz, 1 s: bin 440
    assert np.abs(labeled.audio[3, 8100:]).max() == 0 and np.abs(labeled.audio[3, :7900]).max() > 0.2  # 0.5 s padded
    # D_u: VGGSound train, audio + pictures at 0.5 and 1.0 s (the clip's end: the last frame, 9 of 0..9)
    assert unlabeled.files.tolist() == [f"vggsound/video/{n}" for n in (
        "---g-f_I2yQ_000001.mp4", "zzzzzzzzzzz_000000.mp4", "piano000002_000007.mp4")]
    assert unlabeled.labels.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]
    assert unlabeled.frames.dtype == np.uint8 and unlabeled.frames.shape == (3, 2, 16, 16, 3)
    assert np.allclose(unlabeled.frames.mean(axis=(2, 3, 4)), [[50, 90]] * 3, atol=4)
    assert np.allclose(unlabeled.frame_times_s, [0.5, 1.0]) and unlabeled.class_names == CLASSES
    assert test.labels.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    middle = test.audio[1, 2000:14000]                                      # AAC's priming aside
    assert abs(np.argmax(np.abs(np.fft.rfft(middle))) * 16000 / len(middle) - 880) < 3

    built = task.build_data(cfg)
    assert built.alpha == "audio" and built.beta == "rgb" and built.class_names == list(CLASSES)
    assert set(built.labeled.inputs) == {"audio"} and tuple(built.labeled.inputs["audio"].shape) == (4, 1, 64, 51)
    assert tuple(built.unlabeled.inputs["rgb"].shape) == (3, 2, 3, 16, 16)
    assert tuple(built.test.inputs["audio"].shape) == (4, 1, 64, 51)
    assert built.test.targets.tolist() == test.labels.tolist()


def test_the_cache_is_reused_and_rebuilt_when_a_setting_or_its_record_changes(data, warnings):
    folder, decoded = ensure_cache(data)
    assert decoded and sorted(p.name for p in folder.iterdir()) == ["data.json", "labeled.npz", "test.npz",
                                                                   "unlabeled.npz"]
    assert folder.name.startswith("vggsound-") and not list(folder.parent.glob(".*.part"))
    meta = read_cache_meta(folder)
    assert meta["clips"] == {"labeled": 4, "unlabeled": 3, "test": 4} and meta["frame_times_s"] == [0.5, 1.0]
    assert meta["per_class"]["labeled"] == {"Accordion": 1, "Piano": 1, "Helicopter": 1, "Car": 2}
    with np.load(folder / "test.npz") as z:
        assert z["audio"].dtype == np.int16 and z["frames"].dtype == np.uint8 and z["targets"].dtype == np.uint8
    with np.load(folder / "labeled.npz") as z:
        assert "frames" not in z.files
    loaded = load_vggsound(data)                                # read memory-mapped, the sound per clip when used
    for name, split in loaded.items():
        with np.load(folder / f"{name}.npz") as z:               # as it was read before: whole, converted at once
            whole = z["audio"].astype(np.float32) / np.float32(32768.0)
            frames = z["frames"] if "frames" in z.files else None
        assert isinstance(split.audio, FrameArray) and isinstance(split.labels, np.memmap), name
        assert np.asarray(split.audio).tobytes() == whole.tobytes() and split.audio[2].tobytes() == whole[2].tobytes()
        assert frames is None and split.frames is None or isinstance(split.frames, np.memmap) and \
            np.array_equal(split.frames, frames), name
    stamp = (folder / "test.npz").stat().st_mtime_ns
    assert ensure_cache(data) == (folder, False) and (folder / "test.npz").stat().st_mtime_ns == stamp

    other, decoded = ensure_cache({**data, "image_size": 24})   # another setting: another folder
    assert decoded and other != folder and load_vggsound({**data, "image_size": 24})["test"].frames.shape[2] == 24
    assert ensure_cache(data) == (folder, False)

    meta["key"]["settings"]["image_size"] = 99                   # a record that does not match: decoded again
    (folder / "data.json").write_text(json.dumps(meta))
    warnings.clear()
    assert ensure_cache(data) == (folder, True) and read_cache_meta(folder)["key"]["settings"]["image_size"] == 16
    assert any("does not match this data" in m for m in warnings)

    size = (folder / "unlabeled.npz").stat().st_size               # whole on paper, garbage inside
    (folder / "unlabeled.npz").write_bytes(b"x" * size)
    with pytest.raises(MkeError, match=f"cached data {folder / 'unlabeled.npz'} is unreadable .*delete {folder}"):
        load_vggsound(data)


def test_skipped_clips_are_counted_and_reported(data, warnings):
    task = get_task("vggsound")
    cfg = config(data)
    task.prepare(cfg, progress=False)
    assert any(m.startswith("VGGSound train: skipped 1 of 4 clips") and "corrupt0000_000020.mp4" in m for m in warnings)
    assert any(m.startswith("VGGSound test: skipped 1 of 5 clips") and "no sound track" in m for m in warnings)
    assert any(m.startswith("AudioSet: skipped 2 of 6 clips") for m in warnings)   # the index's: missing, empty
    summary = task.data_summary(cfg)
    assert summary["clips"] == {"labeled": 4, "unlabeled": 3, "test": 4}
    assert summary["skipped_count"] == 5 and summary["skipped_by_reason"] == {
        "missing": 2, "empty or unreadable": 1, "undecodable": 2}
    reasons = {s["file"]: s["reason"] for s in summary["skipped"]}
    assert reasons[NO_SOUND] == "no sound track" and "corrupt" in reasons[CORRUPT]
    assert reasons["audioset/audio/gone0000001_20.wav"] == "missing"
    assert reasons["vggsound/video/missing0000_000010.mp4"] == "missing"
    assert reasons["audioset/audio/empty000001_0.wav"] == "empty file (0 bytes)"
    assert summary["split_protocol"].startswith("the paper's: D_l = AudioSet segments of balanced_train_segments.csv")
    assert summary["classes"] == f"4 shared classes of the class map {data['class_map']}"
    assert summary["clips_padded_with_silence"] == {"labeled": 1}
    assert "2 pictures at 0.5, 1 s (16 px)" in summary["window"]

    warnings.clear()                                               # a second run: the cache says what it skipped
    task.prepare(cfg, progress=False)
    assert any("2 clips could not be decoded when" in m for m in warnings)


@pytest.mark.parametrize("overrides, message", [
    (["data.frame_period_s=0.0"], r"data.frame_period_s must lie in \(0, data.clip_seconds=1\]"),
    (["data.image_size=4"], "data.image_size must be >= 8 pixels"),
    (["data.clip_seconds=-1.0"], "data.clip_seconds must be > 0"),
    (["data.source=builtin"], "data.source must be files"),
    (["preprocess.rgb.frames=4"], r"preprocess.rgb takes 4 images 0.5 s apart, but the clips have 2 .*"
                                  r"set preprocess.rgb.frames=2 and preprocess.rgb.period_s=0.5"),
    (["data.frame_period_s=0.25"], r"the clips have 4 .*set preprocess.rgb.frames=4 and preprocess.rgb.period_s=0.25"),
    (["preprocess.audio.seconds=2.0"], r"preprocess.audio.seconds=2 is longer than the clips \(data.clip_seconds=1\)"),
    (["data.vggsound.pattern=[\"{ytid}.{start}.mp4\"]"], r"no VGGSound clip of the shared classes .* named like "
                                                          r"vggsound/video/---g-f_I2yQ.1.mp4"),
])
def test_a_bad_setting_is_an_error_naming_the_key(data, overrides, message):
    with pytest.raises(MkeError, match=message):
        get_task("vggsound").prepare(config(data, *overrides), progress=False)


def test_the_shipped_settings_give_four_pictures_ending_at_the_clip_end():
    cfg = resolve_config("vggsound", None, [])
    s = data_settings(cfg["data"])
    assert frame_times(s).tolist() == [2.5, 5.0, 7.5, 10.0] and (s["image_size"], s["sample_rate"]) == (64, 16000)
    assert frame_times({"clip_seconds": 10.0, "frame_period_s": 3.0}).tolist() == [4.0, 7.0, 10.0]
    task = get_task("vggsound")
    task.check_settings(cfg)   # the YAML's preprocessing matches its data
    assert len(task.class_names(cfg)) == 63                       # the packaged class map, no data.root needed
    assert task.input_spec(cfg, "audio").shape == [1, 1, 64, 501]
    with pytest.raises(MkeError, match="data.root is not set.*--task vggsound data.root="):
        task.prepare(cfg, progress=False)


@pytest.mark.usefixtures("one_torch_thread")
def test_mke_train_runs_end_to_end(data, tmp_path):
    from mke.train.cli import main

    overrides = [f"data.{k}={json.dumps(v)}" for k, v in data.items()] + TINY + TINY_MODEL
    code = main(["--task", "vggsound", *overrides, "seeds=1", "workers=1",
                 "methods=[UM teacher, MM student, MM student (sup)]", "teacher.optim.epochs=2",
                 "student.optim.epochs=1", "device=cpu", "precision=fp32", "--name", "t", "--runs-dir",
                 str(tmp_path / "runs"), "--no-progress"])
    assert code == 0
    metrics = json.loads((tmp_path / "runs" / "t" / "metrics.json").read_text())
    assert metrics["task"] == "vggsound" and metrics["metric"] == "map"
    assert {r["method"] for r in metrics["results"]} == {"UM teacher", "MM student", "MM student (sup)"}
    assert all(0.0 <= r["mean"] <= 1.0 for r in metrics["results"])
    assert metrics["data"]["skipped_count"] == 5 and metrics["data"]["clips"]["test"] == 4
    report = (tmp_path / "runs" / "t" / "report.md").read_text()
    assert "## Data" in report and "- skipped count: 5" in report and CORRUPT in report
