"""RAVDESS read from files in its real formats (mp4 written by OpenCV, 16-bit 48 kHz wav): names, pairs,
what is skipped and said, the two split protocols, the cache, and `mke-train --task ravdess` end to end."""
import json
import logging
import sys
import wave

import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.train.datasets import ravdess
from mke.train.datasets.frame_arrays import FrameArray
from mke.train.datasets.ravdess import (EMOTIONS, SPLITS, cache_dir, data_settings, data_summary, load_ravdess,
                                        parse_name, read_frames, read_wav, split_indices)

RATE, SECONDS, FPS, W, H = 48000, 2.0, 10, 160, 90
PRESENT = (1, 2, 4, 5, 6)  # Actor_03 is missing
BAD_NAME = "Actor_01/03-01-09-01-01-01-01.wav"             # emotion 09 does not exist
NO_PARTNER = "Actor_02/02-01-03-02-01-01-02.mp4"           # video-only, no 03-…wav beside it
CORRUPT = "Actor_04/01-01-05-02-02-02-04.mp4"              # random bytes …
CORRUPT_PARTNER = "Actor_04/03-01-05-02-02-02-04.wav"      # … so its good wav has no picture
EMPTY_WAV = "Actor_05/03-01-04-02-01-02-05.wav"            # 0 bytes …
EMPTY_PARTNER = "Actor_05/02-01-04-02-01-02-05.mp4"        # … so its good video has no sound
SONG = ("Actor_06/02-02-03-01-01-01-06.mp4", "Actor_06/03-02-03-01-01-01-06.wav")
SKIPPED = {BAD_NAME, NO_PARTNER, CORRUPT, CORRUPT_PARTNER, EMPTY_WAV, EMPTY_PARTNER}


def write_video(path, seconds=SECONDS, fps=FPS):
    """An mp4 (OpenCV, mp4v) of a drawn face on a background whose grey level is 10 × the frame index."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (W, H))
    assert writer.isOpened()
    for i in range(int(round(seconds * fps))):
        img = np.full((H, W, 3), 10 * i, np.uint8)
        cv2.ellipse(img, (W // 2, H // 2), (20, 28), 0, 0, 360, (150, 175, 215), -1)
        for x in (W // 2 - 8, W // 2 + 8):
            cv2.circle(img, (x, H // 2 - 8), 3, (40, 40, 40), -1)
        cv2.ellipse(img, (W // 2, H // 2 + 13), (8, 3), 0, 0, 360, (60, 60, 140), -1)
        writer.write(img)
    writer.release()


def tone(freq, seconds=SECONDS, rate=RATE):
    t = np.arange(int(round(seconds * rate))) / rate
    return np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def write_wav(path, samples, rate=RATE, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(rate)
        pcm = samples.astype("<i2") if width == 2 else (samples // 256 + 128).astype(np.uint8)  # 8-bit is unsigned
        w.writeframes(pcm.tobytes())


def make_tree(root):
    """5 actors × 8 emotions of speech (video as 01 or 02 in turn, each with its 03 wav), plus the bad files."""
    for a in PRESENT:
        folder = root / f"Actor_{a:02d}"
        folder.mkdir(parents=True)
        for e in range(1, 9):
            take = f"01-{e:02d}-01-01-01-{a:02d}"
            write_video(folder / f"{1 + (e + a) % 2:02d}-{take}.mp4")
            write_wav(folder / f"03-{take}.wav", tone(200 + 50 * e))
        (folder / "README.txt").write_text("not media")
    write_wav(root / BAD_NAME, tone(300))
    write_video(root / NO_PARTNER)
    (root / CORRUPT).write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    write_wav(root / CORRUPT_PARTNER, tone(500))
    (root / EMPTY_WAV).write_bytes(b"")
    write_video(root / EMPTY_PARTNER)
    write_video(root / SONG[0])
    write_wav(root / SONG[1], tone(350))


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The tree, its config and the warnings its first decoding gave."""
    root = tmp_path_factory.mktemp("ravdess")
    make_tree(root)
    cfg = {"root": str(root), "cache_dir": str(tmp_path_factory.mktemp("cache")), "actors": 6, "val_actors": 1,
           "test_actors": 1, "clip_seconds": SECONDS, "image_size": 32}
    records = Records()
    logger = logging.getLogger(ravdess.__name__)
    logger.addHandler(records)
    try:
        clips = load_ravdess(cfg)
    finally:
        logger.removeHandler(records)
    return cfg, clips, records.messages


def test_names_parse_and_bad_ones_say_why():
    f = parse_name("02-01-06-01-02-01-12.mp4")
    assert (f.modality, f.vocal, f.emotion, f.intensity, f.statement, f.repetition, f.actor) == (2, 1, 6, 1, 2, 1, 12)
    assert f.file_name(3) == "03-01-06-01-02-01-12.wav" and EMOTIONS[f.emotion - 1] == "fearful"
    for bad, why in [("03-01-09-01-01-01-01.wav", "emotion field 09"), ("03-01-01-01-01-01-01.mp4", "must be a .wav"),
                     ("01-01-01-01-01-01.mp4", "seven two-digit"), ("04-01-01-01-01-01-01.wav", "modality"),
                     ("1-01-01-01-01-01-01.wav", "seven two-digit")]:
        with pytest.raises(MkeError, match=why):
            parse_name(bad)


def test_the_right_clips_load(tree):
    _, clips, _ = tree
    assert sum(len(clips[name]) for name in SPLITS) == 5 * 8  # the speech takes with a picture and a sound
    test = clips["test"]
    assert test.frames.dtype == np.uint8 and test.frames.shape[1:] == (4, 32, 32, 3)
    assert np.allclose(test.frame_times_s, [0.5, 1.0, 1.5, 2.0])
    assert test.sample_rate == RATE and test.audio.shape[1] == SECONDS * RATE  # the files' rate: resampled later
    assert test.class_names == EMOTIONS
    for name in SPLITS:
        c = clips[name]
        for i in range(len(c)):  # each clip's sound is its own take's wav, whose tone tells the emotion
            assert np.array_equal(np.round(c.audio[i] * 32768).astype(np.int16), tone(200 + 50 * (c.labels[i] + 1)))
            assert c.meta["sounds"][i].endswith(f"03-01-{c.labels[i] + 1:02d}-01-01-01-{c.actors[i] + 1:02d}.wav")
    assert 3 not in {int(a) + 1 for name in SPLITS for a in clips[name].actors}


def test_each_bad_file_is_skipped_with_a_warning_naming_it(tree):
    cfg, _, messages = tree
    for rel in SKIPPED:
        assert any(rel in m for m in messages), rel
    assert any("Actor_03 missing" in m for m in messages)
    assert not any(song in m for m in messages for song in SONG)  # songs are left out, not skipped
    reasons = {s["file"]: s["reason"] for s in data_summary(cfg)["skipped"]}
    assert set(reasons) == SKIPPED
    assert "no audio-only partner 03-01-03-02-01-01-02.wav" in reasons[NO_PARTNER]
    assert "corrupt or undecodable" in reasons[CORRUPT] and "no picture" in reasons[CORRUPT_PARTNER]
    assert "empty wav" in reasons[EMPTY_WAV] and EMPTY_WAV in reasons[EMPTY_PARTNER]
    assert "emotion field 09" in reasons[BAD_NAME]


def test_the_skipped_count_reaches_the_data_summary(tree):
    from mke.train.tasks import get_task

    cfg, _, _ = tree
    summary = get_task("ravdess").data_summary({"data": cfg})
    assert summary["skipped_count"] == len(SKIPPED) == 6
    assert summary["missing_actors"] == ["Actor_03"]
    assert summary["split_protocol"].startswith("actor (test actors")
    assert sum(summary["clips"].values()) == 40 and summary["vocal"].startswith("speech (2 files")


def test_songs_are_used_when_asked(tree, tmp_path):
    cfg, _, _ = tree
    clips = load_ravdess({**cfg, "vocal": "both", "cache_dir": str(tmp_path)})
    vocal = np.concatenate([clips[name].meta["vocal"] for name in SPLITS])
    assert len(vocal) == 41 and (vocal == 2).sum() == 1


def test_split_by_actor_keeps_actors_apart(tree):
    _, clips, _ = tree
    actors = {name: set(clips[name].actors.tolist()) for name in SPLITS}
    assert len(actors["test"]) == 1 and len(actors["val"]) == 1
    training = actors["labeled"] | actors["unlabeled"]
    assert len(training) == 3 and not training & actors["test"] and not training & actors["val"]
    assert not actors["val"] & actors["test"]
    assert len(clips["labeled"]) == round(0.2 * 24) and len(set(clips["labeled"].labels.tolist())) == 5  # balanced


def test_the_paper_protocol_splits_all_clips_2_8_then_8_1_1():
    rng = np.random.default_rng(0)
    labels, actors = rng.integers(0, 8, 1000), rng.integers(0, 24, 1000)
    idx = split_indices(labels, actors, data_settings({"split": "paper"}))
    sizes = {name: len(i) for name, i in idx.items()}
    assert sizes == {"labeled": 200, "unlabeled": 640, "val": 80, "test": 80}
    assert sorted(np.concatenate(list(idx.values())).tolist()) == list(range(1000))  # disjoint, all used
    again = split_indices(labels, actors, data_settings({"split": "paper"}))
    other = split_indices(labels, actors, data_settings({"split": "paper", "seed": 1}))
    assert np.array_equal(again["test"], idx["test"]) and not np.array_equal(other["test"], idx["test"])


def test_the_cache_is_reused_and_another_seed_or_protocol_only_resplits(tree, caplog):
    cfg, clips, _ = tree
    folder = cache_dir(cfg)
    stamp = (folder / "clips.npz").stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger=ravdess.__name__):
        again = load_ravdess({**cfg, "seed": 1, "split": "paper"})
    assert not caplog.records  # nothing decoded, nothing warned again
    assert cache_dir({**cfg, "seed": 1, "split": "paper"}) == folder
    assert (folder / "clips.npz").stat().st_mtime_ns == stamp
    assert sum(len(again[name]) for name in SPLITS) == 40
    with np.load(folder / "clips.npz") as z:  # as the splits were made before: the cache read whole, rows copied
        frames, audio = z["frames"], z["audio"].astype(np.float32) / np.float32(32768.0)
    for name in SPLITS:  # now rows of the memory-mapped cache, read when used: the same values, to the bit
        split, rows = again[name], again[name].meta["clip_ids"]
        assert isinstance(split.frames, FrameArray) and isinstance(split.frames.read.array, np.memmap), name
        assert np.array_equal(split.frames[:], frames[rows]) and split.audio[:].tobytes() == audio[rows].tobytes()
    assert cache_dir({**cfg, "image_size": 48}) != folder  # a setting that changes the clips: a new folder
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_frames_are_the_images_on_screen_at_fixed_times(tmp_path):
    write_video(tmp_path / "v.mp4")
    frames, face = read_frames(tmp_path / "v.mp4", np.array([0.5, 1.0, 1.5, 2.0]), 32, face_crop=False)
    assert face is None and frames.shape == (4, 32, 32, 3)
    grey = frames[:, :3, :3].mean(axis=(1, 2, 3))  # the corner: background, 10 × the frame index
    assert np.allclose(grey, [50, 100, 150, 190], atol=4)  # frames 5, 10, 15 and the last (19) held


def test_face_crop_takes_a_square_around_the_face_or_the_centre(tmp_path):
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5: no cascade, and a clear error instead
        with pytest.raises(MkeError, match="face_crop needs OpenCV's Haar cascade.*opencv-python<5.*face_crop=false"):
            ravdess.decode(ravdess.Scan(tmp_path, [], [], [], ""), data_settings({"face_crop": True}))
        pytest.skip(f"OpenCV {cv2.__version__} has no Haar cascades")
    import matplotlib.cbook

    photo = cv2.resize(cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
                       (256, 300))
    frame = np.full((360, 640, 3), 255, np.uint8)
    frame[30:330, 360:616] = photo  # a real face, right of centre in a 16:9 frame
    x, y, side = ravdess.face_box([frame])
    assert abs(x + side / 2 - (360 + 134)) < 12 and abs(y + side / 2 - (30 + 109)) < 12  # her face's middle
    video = tmp_path / "face.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 360))
    for _ in range(10):
        writer.write(frame)
    writer.release()
    frames, found = read_frames(video, np.array([0.5, 1.0]), 32, face_crop=True)
    expected = cv2.cvtColor(cv2.resize(frame[y:y + side, x:x + side], (32, 32), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_BGR2RGB)
    centre = cv2.cvtColor(cv2.resize(frame[:, 140:500], (32, 32), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    assert found is True and frames.shape == (2, 32, 32, 3)
    off = {name: np.abs(frames[0].astype(int) - ref).mean() for name, ref in (("face", expected), ("centre", centre))}
    assert off["face"] < 16 and off["face"] < off["centre"] / 3, off  # the face's square (a pixel or two off, codec)
    blank = tmp_path / "blank.mp4"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (W, H))
    for i in range(20):
        img = np.zeros((H, W, 3), np.uint8)
        img[:, (W - H) // 2:(W + H) // 2] = 200  # a bright centre square on black, and no face
        writer.write(img)
    writer.release()
    frames, found = read_frames(blank, np.array([1.0]), 32, face_crop=True)
    assert found is False and frames[0, 4:-4, 4:-4].min() > 150  # the centre square, nothing of the sides


def test_wavs_other_than_16_bit_are_an_error_naming_the_file(tmp_path):
    write_wav(tmp_path / "03-01-01-01-01-01-01.wav", tone(300), width=1)
    with pytest.raises(MkeError, match=r"03-01-01-01-01-01-01\.wav is 8-bit PCM.*16-bit"):
        read_wav(tmp_path / "03-01-01-01-01-01-01.wav")
    with wave.open(str(tmp_path / "header.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
    with pytest.raises(ravdess.Unusable, match="empty wav"):
        read_wav(tmp_path / "header.wav")


@pytest.mark.parametrize("root, message", [("", "data.root is not set"), ("nowhere", "is not a folder"),
                                           (".", "holds no Actor_NN folder.*Actor_01")])
def test_a_missing_root_is_a_clear_error(tmp_path, root, message):
    with pytest.raises(MkeError, match=message):
        load_ravdess({"root": str(tmp_path / root) if root else "", "cache_dir": str(tmp_path / "c")})


def test_a_take_without_its_wav_uses_the_videos_own_track(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    import subprocess

    folder = tmp_path / "data" / "Actor_01"
    folder.mkdir(parents=True)
    write_video(tmp_path / "silent.mp4")
    write_wav(tmp_path / "tone.wav", tone(440))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "silent.mp4"),
                    "-i", str(tmp_path / "tone.wav"), "-c:v", "copy", "-c:a", "aac",
                    str(folder / "01-01-02-01-01-01-01.mp4")], check=True)  # H.264's stand-in, with an AAC track
    write_video(folder / "01-01-03-01-01-01-01.mp4")  # audio-video by name, but OpenCV wrote no sound track
    cfg = {"root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "c"), "actors": 1, "clip_seconds": 2.0,
           "face_crop": False}
    arrays, report = ravdess.decode(ravdess.scan_root(cfg, 1), data_settings(cfg))
    assert list(arrays["sounds"]) == ["Actor_01/01-01-02-01-01-01-01.mp4 (own track)"]
    spectrum = np.abs(np.fft.rfft(arrays["audio"][0].astype(float)))
    assert abs(np.argmax(spectrum) * RATE / len(arrays["audio"][0]) - 440) < 5
    assert report["skipped"] == [{"file": "Actor_01/01-01-03-01-01-01-01.mp4",
                                  "reason": "no audio: no audio-only partner 03-01-03-01-01-01-01.wav, and the "
                                            "video has no sound track"}]


def test_video_and_audio_archives_unpacked_side_by_side_are_paired(tmp_path):
    for part in ("video/Actor_01", "audio/Actor_01"):
        (tmp_path / part).mkdir(parents=True)
    write_video(tmp_path / "video/Actor_01/02-01-02-01-01-01-01.mp4")
    write_wav(tmp_path / "audio/Actor_01/03-01-02-01-01-01-01.wav", tone(300))
    cfg = {"root": str(tmp_path), "actors": 1, "clip_seconds": 2.0}
    arrays, report = ravdess.decode(ravdess.scan_root(cfg, 1), data_settings(cfg))
    assert list(arrays["videos"]) == ["video/Actor_01/02-01-02-01-01-01-01.mp4"]
    assert list(arrays["sounds"]) == ["audio/Actor_01/03-01-02-01-01-01-01.wav"]
    assert report["skipped"] == [] and report["missing_actors"] == []


def test_without_imageio_ffmpeg_a_wavless_take_is_skipped_saying_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    folder = tmp_path / "Actor_01"
    folder.mkdir()
    write_video(folder / "01-01-02-01-01-01-01.mp4")
    cfg = {"root": str(tmp_path), "actors": 1, "clip_seconds": 2.0, "face_crop": False}
    with pytest.raises(MkeError, match="no usable RAVDESS clip.*01-01-02-01-01-01-01.mp4.*pip install imageio-ffmpeg"):
        ravdess.decode(ravdess.scan_root(cfg, 1), data_settings(cfg))


@pytest.mark.usefixtures("one_torch_thread")
def test_mke_train_runs_end_to_end_and_reports_what_was_skipped(tree, tmp_path):
    from mke.train.cli import main

    cfg, _, _ = tree
    data = [f"data.{key}={json.dumps(value)}" for key, value in cfg.items()]
    code = main(["--task", "ravdess", *data, "seeds=1", "workers=1", "methods=[UM teacher, MM student]",
                 "teacher.optim.epochs=1", "student.optim.epochs=1", "preprocess.rgb.frames=4",
                 "preprocess.rgb.size=[32, 32]", "preprocess.audio.seconds=2.0", "device=cpu", "--name", "t",
                 "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
    assert code == 0
    metrics = json.loads((tmp_path / "runs" / "t" / "metrics.json").read_text())
    assert metrics["task"] == "ravdess" and metrics["data"]["skipped_count"] == 6
    assert {r["method"] for r in metrics["results"]} == {"UM teacher", "MM student"}
    report = (tmp_path / "runs" / "t" / "report.md").read_text()
    assert "## Data" in report and "- skipped count: 6" in report and NO_PARTNER in report
    assert "- split protocol: actor (" in report


def test_preprocessing_that_disagrees_with_the_clips_is_named(tree):
    from mke.train.config import resolve_config
    from mke.train.tasks import get_task

    cfg, _, _ = tree
    full = resolve_config("ravdess", None, [f"data.{k}={json.dumps(v)}" for k, v in cfg.items()])
    with pytest.raises(MkeError, match="preprocess.rgb.frames=4"):
        get_task("ravdess").prepare(full, progress=False)  # clip_seconds 2.0: 4 images, the YAML's 6


def test_the_reports_data_section_says_what_the_task_summarised():
    from mke.train.report import DATA_LIST_MAX, data_section

    assert data_section({}) == []  # tasks with nothing to say get no section
    skipped = [{"file": f"Actor_01/{i:02d}.mp4", "reason": "corrupt"} for i in range(DATA_LIST_MAX + 2)]
    lines = data_section({"split_protocol": "actor", "clips": {"labeled": 5, "test": 8}, "skipped_count": len(skipped),
                          "skipped": skipped, "missing_actors": []})
    assert lines[:3] == ["", "## Data", ""]
    assert lines[3:6] == ["- split protocol: actor", "- clips: labeled 5, test 8", f"- skipped count: {len(skipped)}"]
    assert lines[6].startswith("- skipped: Actor_01/00.mp4 (corrupt); Actor_01/01.mp4 (corrupt)")
    assert lines[6].endswith("… and 2 more (metrics.json lists all)") and lines[7] == "- missing actors: none"
