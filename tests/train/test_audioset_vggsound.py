"""AudioSet and VGGSound read from small files in their exact formats: the segment lists, the class list,
vggsound.csv, the class map, clips found by pattern (missing and empty ones skipped with one warning),
the shared-class indices, and clips decoded (16-bit and 24-bit wavs, an mp4 with an AAC track)."""
import logging
import subprocess
import wave
from importlib import resources

import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.train.datasets import audioset_vggsound as av
from mke.train.datasets import clip_reader
from mke.train.datasets.audioset_vggsound import (DEFAULT_CLASS_MAP, check_class_map, data_settings, load_class_map,
                                                  load_indices, read_class_labels, read_segments, read_vggsound)
from mke.train.datasets.clip_reader import load_clip, load_clips

RATE, W, H, FPS = 44100, 64, 48, 10

SEGMENTS = """\
# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=7, num_segs=7, num_unique_labels=6, num_positive_labels=10
# YTID, start_seconds, end_seconds, positive_labels
accordion01, 30.000, 40.000, "/m/0mkg,/m/09x0r"
-piano00001, 0.000, 10.000, "/m/05r5c"
heli0000001, 239.800, 249.800, "/m/09ct_,/t/dd00134"
speech00001, 10.000, 20.000, "/m/09x0r"
gone0000001, 20.000, 30.000, "/m/0mkg"
empty000001, 0.000, 10.000, "/m/05r5c"
padded00001, 40.000, 50.000, "/m/0k4j"
"""
CLASS_LABELS = """\
index,mid,display_name
0,/m/09x0r,Speech
141,/m/0k4j,Car
153,/m/05r5c,Piano
209,/m/0mkg,Accordion
314,/t/dd00134,Car passing by
339,/m/09ct_,Helicopter
"""
VGGSOUND = ("---g-f_I2yQ,1,playing accordion,train\r\n"
            "-0jeONf82dE,21,\"female speech, woman speaking\",train\r\n"
            "abcdefghijk,30,playing piano,test\r\n"
            "zzzzzzzzzzz,0,car engine starting,train\r\n"
            "missing0000,10,helicopter,test\r\n"
            "corrupt0000,20,helicopter,train\r\n"
            "nosound0000,5,car passing by,test\r\n")
CLASS_MAP = """\
classes:
  - name: "Accordion"
    audioset: {"/m/0mkg": "Accordion"}
    vggsound: ["playing accordion"]
  - name: "Piano"
    audioset: {"/m/05r5c": "Piano"}
    vggsound: "playing piano"
  - name: "Helicopter"
    audioset: {"/m/09ct_": "Helicopter"}
    vggsound: ["helicopter"]
  - name: "Car"
    audioset:
      "/m/0k4j": "Car"
      "/t/dd00134": "Car passing by"
    vggsound: ["car passing by", "car engine starting", "female speech"]
"""


def tone(freq, seconds, rate=RATE, channels=1):
    t = np.arange(int(round(seconds * rate))) / rate
    x = np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return np.stack([x] * channels, axis=1)


def write_wav(path, samples, rate=RATE, width=2):
    """A PCM wav with the stdlib: 16-bit, or 24-bit (the int16 values scaled by 256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 2:
            w.writeframes(samples.astype("<i2").tobytes())
        else:
            wide = samples.astype("<i4") * 256
            w.writeframes(wide.view(np.uint8).reshape(-1, 4)[:, :3].tobytes())


def write_video(path, seconds=2.0, audio_hz=None, tmp=None):
    """An mp4 (OpenCV, mp4v) whose background grey is 10 × the frame index; with `audio_hz`, an AAC track of
    that tone muxed in by imageio-ffmpeg's FFmpeg."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    silent = path if audio_hz is None else tmp / f"{path.stem}.silent.mp4"
    writer = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"mp4v"), float(FPS), (W, H))
    assert writer.isOpened()
    for i in range(int(round(seconds * FPS))):
        writer.write(np.full((H, W, 3), 10 * i, np.uint8))
    writer.release()
    if audio_hz is not None:
        import imageio_ffmpeg

        sound = tmp / f"{path.stem}.wav"
        write_wav(sound, tone(audio_hz, seconds))
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(silent), "-i", str(sound),
                        "-c:v", "copy", "-c:a", "aac", str(path)], check=True)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def records():
    handler = Records()
    loggers = [logging.getLogger(m.__name__) for m in (av, clip_reader)]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.messages
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def tree(tmp_path):
    """data.root with both datasets' lists and clips (dummy bytes: nothing here decodes them) and a class map."""
    root = tmp_path / "av"
    (root / "audioset").mkdir(parents=True)
    (root / "vggsound").mkdir()
    (root / "audioset" / "balanced_train_segments.csv").write_text(SEGMENTS)
    (root / "audioset" / "class_labels_indices.csv").write_text(CLASS_LABELS)
    (root / "vggsound" / "vggsound.csv").write_bytes(VGGSOUND.encode())
    (tmp_path / "classes.yaml").write_text(CLASS_MAP.replace(', "female speech"', ""))
    audio, video = root / "audioset" / "audio", root / "vggsound" / "video"
    for name in ("accordion01_30.wav", "-piano00001_0.wav", "heli0000001_239.wav", "padded00001_000040.wav",
                 "speech00001_10.wav"):
        write_wav(audio / name, tone(440, 0.1))
    (audio / "empty000001_0.wav").write_bytes(b"")
    for name in ("---g-f_I2yQ_000001.mp4", "abcdefghijk_000030.mp4", "zzzzzzzzzzz_000000.mp4", "corrupt0000_000020.mp4",
                 "nosound0000_000005.mp4"):
        (video / name).parent.mkdir(parents=True, exist_ok=True)
        (video / name).write_bytes(b"not decoded here")
    return {"root": str(root), "class_map": str(tmp_path / "classes.yaml")}


# --- the lists -------------------------------------------------------------------------------------------

def test_segment_lists_parse_with_their_header_spaces_and_quoted_mids(tmp_path):
    path = tmp_path / "eval_segments.csv"
    path.write_text(SEGMENTS)
    segs = read_segments(path)
    assert len(segs) == 7 and segs[0].line == 4
    assert (segs[0].ytid, segs[0].start_s, segs[0].end_s, segs[0].mids) == ("accordion01", 30.0, 40.0,
                                                                             ("/m/0mkg", "/m/09x0r"))
    assert segs[1].ytid == "-piano00001" and segs[2].start_s == 239.8 and segs[2].mids == ("/m/09ct_", "/t/dd00134")
    path.write_text("YTID,start_seconds,end_seconds,positive_labels\nx,0,10,/m/0mkg,/m/05r5c\n")  # no '#', unquoted
    assert read_segments(path)[0].mids == ("/m/0mkg", "/m/05r5c")


@pytest.mark.parametrize("line, message", [
    ("abc, 30.000, 40.000", "line 4 has 3 fields; expected AudioSet's segment lists"),
    ("abc, thirty, 40.000, \"/m/0mkg\"", "line 4: start 'thirty' and end '40.000' must be seconds"),
    ("abc, 40.000, 30.000, \"/m/0mkg\"", "line 4: .* do not make a segment"),
    ("abc, 30, 40, \"playing accordion\"", "line 4: label 'playing accordion' is not an AudioSet MID"),
])
def test_a_bad_segment_line_is_named(tmp_path, line, message):
    path = tmp_path / "balanced_train_segments.csv"
    path.write_text(SEGMENTS.split("accordion01")[0] + line + "\n")
    with pytest.raises(MkeError, match=f"{path}.*{message}"):
        read_segments(path)


def test_the_class_list_keeps_quoted_names_whole(tmp_path):
    path = tmp_path / "class_labels_indices.csv"
    path.write_text('index,mid,display_name\n0,/m/09x0r,Speech\n1,/m/05zppz,"Male speech, man speaking"\n')
    assert read_class_labels(path) == {"/m/09x0r": "Speech", "/m/05zppz": "Male speech, man speaking"}
    path.write_text("index,mid,display_name\n0,Speech,/m/09x0r\n")
    with pytest.raises(MkeError, match="line 2: expected index,mid,display_name"):
        read_class_labels(path)


def test_vggsound_rows_parse_with_quoted_labels_leading_dashes_and_crlf(tmp_path):
    path = tmp_path / "vggsound.csv"
    path.write_bytes(VGGSOUND.encode())
    rows = read_vggsound(path)
    assert len(rows) == 7
    assert (rows[0].ytid, rows[0].start_s, rows[0].label, rows[0].split) == ("---g-f_I2yQ", 1, "playing accordion",
                                                                             "train")
    assert rows[1].label == "female speech, woman speaking" and rows[2].split == "test"
    path.write_text("abc,30,female speech, woman speaking,test\n")  # a label's commas left unquoted
    assert read_vggsound(path)[0].label == "female speech, woman speaking"
    path.write_text("abc,30,helicopter,train\nabc,30,helicopter,validation\n")
    with pytest.raises(MkeError, match=r"vggsound.csv line 2: split 'validation' must be train or test"):
        read_vggsound(path)
    path.write_text("abc,3.5,helicopter,train\n")
    with pytest.raises(MkeError, match="line 1: start '3.5' must be whole seconds"):
        read_vggsound(path)


# --- the class map ---------------------------------------------------------------------------------------

def test_the_default_class_map_ships_and_follows_its_stated_rule():
    shipped = resources.files("mke.train.datasets").joinpath(DEFAULT_CLASS_MAP.name)
    assert shipped.is_file()  # package data (*.yaml)
    cmap = load_class_map()
    assert len(cmap) == 63 and len(set(cmap.names)) == 63
    for c in cmap.classes:  # one MID and one label each; the label is the AudioSet name, or "playing " + it
        (mid, display), = c.audioset
        label, = c.vggsound
        assert c.name == display and label in (display.lower(), "playing " + display.lower())
    accordion = cmap.names.index("Accordion")
    assert cmap.classes[accordion].mids == ("/m/0mkg",) and cmap.vggsound_class("playing accordion") == accordion
    assert cmap.audioset_target(["/m/0mkg", "/m/09x0r"]).tolist() == [int(k == accordion) for k in range(63)]
    assert cmap.vggsound_class("dog barking") is None


def test_a_class_map_may_join_several_mids_and_labels(tmp_path):
    (tmp_path / "m.yaml").write_text(CLASS_MAP)
    cmap = load_class_map(tmp_path / "m.yaml")
    assert cmap.names == ("Accordion", "Piano", "Helicopter", "Car")
    assert cmap.audioset_target(["/t/dd00134"]).tolist() == [0, 0, 0, 1] == cmap.audioset_target(["/m/0k4j"]).tolist()
    assert cmap.vggsound_class("car engine starting") == cmap.vggsound_class("car passing by") == 3
    assert cmap.vggsound_class("playing piano") == 1  # a single label may be given without a list


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('"playing piano"', '"playing accordion"'),
     r"entry 2 \('Piano'\): VGGSound label 'playing accordion' is already in entry 1 \('Accordion'\)"),
    (lambda s: s.replace('"/m/09ct_"', '"/m/0mkg"'), r"entry 3 .*MID '/m/0mkg' is already in entry 1"),
    (lambda s: s.replace("    vggsound: [\"helicopter\"]", "    vgsound: [\"helicopter\"]"),
     r"entry 3 has key 'vgsound' \(did you mean 'vggsound'\?\)"),
    (lambda s: s.replace('"/m/05r5c"', '"piano"'), r"entry 2 \('Piano'\): 'piano' is not an AudioSet MID"),
    (lambda s: s.replace('name: "Helicopter"', 'name: "Piano"'), r"entry 3 .*name 'Piano' is already in entry 2"),
    (lambda s: "classes: []\n", "non-empty list `classes:`"),
    (lambda s: s + "  - [oops\n", r"is not valid YAML \(line"),
])
def test_a_malformed_class_map_is_named(tmp_path, edit, message):
    (tmp_path / "m.yaml").write_text(edit(CLASS_MAP))
    with pytest.raises(MkeError, match=f"class map .*m.yaml.*{message}"):
        load_class_map(tmp_path / "m.yaml")


def test_the_class_map_is_checked_against_both_datasets_lists(tmp_path, records):
    (tmp_path / "m.yaml").write_text(CLASS_MAP.replace('"/m/0k4j": "Car"', '"/m/0k4x": "Car"'))
    known = {"/m/0k4j": "Car", "/t/dd00134": "Car passing by", "/m/0mkg": "Accordion", "/m/05r5c": "Piano",
             "/m/09ct_": "Helicopter"}
    with pytest.raises(MkeError, match=r"class 'Car': MID /m/0k4x is not in AudioSet's .*\('Car' is /m/0k4j there\)"):
        check_class_map(load_class_map(tmp_path / "m.yaml"), known)
    (tmp_path / "m.yaml").write_text(CLASS_MAP.replace('"Accordion"}', '"Squeezebox"}'))
    labels = {"playing accordion", "playing piano", "helicopter", "car passing by", "car engine starting",
              "female speech, woman speaking"}
    with pytest.raises(MkeError, match=r"class 'Car': no row of vggsound.csv has the label 'female speech' "
                                       r"\(nearest: female speech, woman speaking\)"):
        check_class_map(load_class_map(tmp_path / "m.yaml"), known, labels)
    assert any("/m/0mkg 'Squeezebox' (AudioSet: 'Accordion')" in m for m in records)  # names only warned about


# --- finding clips and indexing them ---------------------------------------------------------------------

def test_the_indices_hold_the_shared_classes_found_on_disk(tree, records):
    idx = load_indices(tree)
    a, v = idx.audioset, idx.vggsound
    assert idx.class_map.names == a.class_names == v.class_names == ("Accordion", "Piano", "Helicopter", "Car")
    assert a.files.tolist() == ["audioset/audio/accordion01_30.wav", "audioset/audio/-piano00001_0.wav",
                                "audioset/audio/heli0000001_239.wav", "audioset/audio/padded00001_000040.wav"]
    assert a.targets.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]]
    assert a.start_s.tolist() == [30.0, 0.0, 239.8, 40.0] and a.sources.tolist() == ["balanced_train_segments.csv"] * 4
    assert all(p.is_file() for p in a.paths())
    assert a.summary | {"skipped": None} == {
        "segments": 7, "duplicates": 0, "outside_classes": 1, "with_shared_class": 6, "clips": 4,
        "per_class": {"Accordion": 1, "Piano": 1, "Helicopter": 1, "Car": 2}, "classes_without_clips": [],
        "skipped_count": 2, "skipped": None}
    assert a.summary["skipped"] == [{"file": "audioset/audio/gone0000001_20.wav", "reason": "missing"},
                                    {"file": "audioset/audio/empty000001_0.wav", "reason": "empty file (0 bytes)"}]
    assert v.files.tolist() == ["vggsound/video/---g-f_I2yQ_000001.mp4", "vggsound/video/abcdefghijk_000030.mp4",
                                "vggsound/video/zzzzzzzzzzz_000000.mp4", "vggsound/video/corrupt0000_000020.mp4",
                                "vggsound/video/nosound0000_000005.mp4"]
    assert v.labels.tolist() == [0, 1, 3, 2, 3] and v.splits.tolist() == ["train", "test", "train", "train", "test"]
    assert v.split("test").tolist() == [1, 4] and v.targets()[2].tolist() == [0, 0, 0, 1]
    assert v.vggsound_labels[2] == "car engine starting" and v.start_s.tolist() == [1, 30, 0, 20, 5]
    assert v.summary["outside_classes"] == 1 and v.summary["clips_per_split"] == {"train": 3, "test": 2}
    assert v.summary["skipped"] == [{"file": "vggsound/video/missing0000_000010.mp4", "reason": "missing"}]
    located = [m for m in records if "skipped" in m]
    assert len(located) == 2  # one warning a dataset, with the count and the names
    assert located[0].startswith("AudioSet: skipped 2 of 6 clips") and "1 missing, 1 corrupt" in located[0]
    assert "gone0000001_20.wav (missing)" in located[0] and "empty000001_0.wav (empty file (0 bytes))" in located[0]
    assert located[1].startswith("VGGSound: skipped 1 of 6 clips") and "missing0000_000010.mp4" in located[1]
    assert any("VGGSound: no train clip of 1 shared classes (Piano)" in m for m in records)


def test_a_warning_names_a_few_skipped_clips_and_counts_the_rest(tmp_path, records):
    rows = [{"ytid": f"id{i:09d}", "start": 0, "start_ms": 0, "label": "x", "split": "train"} for i in range(12)]
    located = av.locate_clips(tmp_path, rows, ["{ytid}_{start:06d}.mp4"])
    av.warn_skipped("VGGSound", located.skipped, 12, tmp_path)
    assert located.files == [None] * 12 and len(located.skipped) == 12
    assert len(records) == 1 and "skipped 12 of 12" in records[0] and "id000000004_000000.mp4" in records[0]
    assert "id000000005_000000.mp4" not in records[0] and records[0].endswith("… and 7 more")


def test_patterns_may_hold_subfolders_and_be_tried_in_order(tree, tmp_path):
    root = tmp_path / "av"
    moved = root / "vggsound" / "by_split"
    for name, split, label in (("abcdefghijk_000030.mp4", "test", "playing piano"),
                               ("---g-f_I2yQ_000001.mp4", "train", "playing accordion")):
        (moved / split / label).mkdir(parents=True, exist_ok=True)
        (root / "vggsound" / "video" / name).rename(moved / split / label / name)
    cfg = {**tree, "vggsound": {"clips": "vggsound/by_split", "pattern": "{split}/{label}/{ytid}_{start:06d}.mp4"}}
    v = load_indices(cfg).vggsound
    assert v.files.tolist() == ["vggsound/by_split/train/playing accordion/---g-f_I2yQ_000001.mp4",
                                "vggsound/by_split/test/playing piano/abcdefghijk_000030.mp4"]
    cfg["audioset"] = {"pattern": ["{ytid}_{start_ms}_{end_ms}.wav", "{ytid}_{start}.wav"]}
    write_wav(root / "audioset" / "audio" / "heli0000001_239800_249800.wav", tone(440, 0.1))
    assert "audioset/audio/heli0000001_239800_249800.wav" in load_indices(cfg).audioset.files.tolist()


@pytest.mark.parametrize("cfg, message", [
    ({"root": ""}, "data.root is not set.*--task vggsound data.root="),
    ({"audioset": {"segments": "nowhere.csv"}}, r"AudioSet segment list .*nowhere.csv does not exist .*"
                                                r"data.audioset.segments=nowhere.csv"),
    ({"vggsound": {"csv": "v.csv"}}, r"VGGSound list .*v.csv does not exist"),
    ({"vggsound": {"clips": "videos"}}, r"VGGSound clips folder .*videos does not exist"),
    ({"vggsound": {"pattern": "{id}.mp4"}}, r"data.vggsound.pattern '\{id\}.mp4' names \{id\}; a pattern may use "
                                            r"\{ytid\}, \{start\}"),
    ({"vggsound": {"pattern": "{ytid}_{start:06s}.mp4"}}, r"cannot be formatted"),
    ({"vggsound": {"paterns": "x"}},
     r"data.vggsound.paterns is not a setting \(did you mean data.vggsound.pattern\?\)"),
    ({"audioset": {"pattern": "{ytid}_{split}.wav"}}, r"names \{split\}"),
    ({"audioset": {"pattern": "no_{start}.wav"}}, r"does not name \{ytid\}"),
])
def test_wrong_settings_and_missing_files_are_clear_errors(tree, cfg, message):
    with pytest.raises(MkeError, match=message):
        load_indices({**tree, **cfg})


def test_no_clip_on_disk_is_an_error_showing_the_expected_name(tree, tmp_path):
    with pytest.raises(MkeError, match=r"no VGGSound clip of the shared classes .*named like "
                                       r"vggsound/video/---g-f_I2yQ_1.mkv"):
        load_indices({**tree, "vggsound": {"pattern": "{ytid}_{start}.mkv"}})


def test_settings_default_to_the_documented_layout():
    s = data_settings({})
    assert s["audioset"]["pattern"] == ["{ytid}_{start}.wav", "{ytid}_{start:06d}.wav"]
    assert s["vggsound"]["pattern"] == ["{ytid}_{start:06d}.mp4", "{ytid}_{start}.mp4"]
    assert s["audioset"]["segments"] == ["audioset/balanced_train_segments.csv"] and s["class_map"] == ""


# --- decoding clips --------------------------------------------------------------------------------------

def test_a_wav_is_mono_at_the_target_rate_padded_to_the_window(tmp_path):
    write_wav(tmp_path / "a.wav", tone(440, 2.0, channels=2))
    clip = load_clip(tmp_path / "a.wav", sample_rate=16000, seconds=3.0)
    assert clip.audio.dtype == np.float32 and clip.audio.shape == (48000,) and clip.frames is None
    assert clip.padded_s == pytest.approx(1.0, abs=1e-3) and not clip.audio[32100:].any()
    spectrum = np.abs(np.fft.rfft(clip.audio[:32000]))
    assert abs(np.argmax(spectrum) * 16000 / 32000 - 440) < 1
    assert np.abs(clip.audio[1000:31000]).max() == pytest.approx(8000 / 32768, rel=0.02)
    later = load_clip(tmp_path / "a.wav", sample_rate=16000, seconds=1.0, start_s=1.5)
    assert later.padded_s == pytest.approx(0.5, abs=1e-3)


def test_other_wav_flavours_go_through_ffmpeg(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    write_wav(tmp_path / "wide.wav", tone(300, 1.0), width=3)  # 24-bit: `wave` reads it, this reader does not
    clip = load_clip(tmp_path / "wide.wav", sample_rate=8000, seconds=1.0)
    assert abs(np.argmax(np.abs(np.fft.rfft(clip.audio))) * 8000 / 8000 - 300) < 2
    assert np.abs(clip.audio[500:7500]).max() == pytest.approx(8000 / 32768, rel=0.02)


def test_an_mp4_gives_its_sound_and_the_pictures_at_the_times_asked(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    write_video(tmp_path / "v.mp4", seconds=2.0, audio_hz=660, tmp=tmp_path)
    clip = load_clip(tmp_path / "v.mp4", sample_rate=16000, seconds=2.0, frame_times_s=[0.5, 1.0, 1.5],
                     image_size=32)
    assert clip.frames.shape == (3, 32, 32, 3) and clip.frames.dtype == np.uint8
    assert np.allclose(clip.frames[:, :4, :4].mean(axis=(1, 2, 3)), [50, 100, 150], atol=4)
    middle = clip.audio[4000:28000]  # AAC's priming and padding left aside
    assert abs(np.argmax(np.abs(np.fft.rfft(middle))) * 16000 / len(middle) - 660) < 2


def test_corrupt_and_soundless_clips_are_skipped_with_one_warning(tmp_path, records):
    pytest.importorskip("imageio_ffmpeg")
    write_video(tmp_path / "good.mp4", audio_hz=440, tmp=tmp_path)
    write_video(tmp_path / "silent.mp4")  # OpenCV writes no sound track
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    batch = load_clips(tmp_path, ["corrupt.mp4", "good.mp4", "silent.mp4"], what="VGGSound", sample_rate=8000,
                       seconds=2.0, frame_times_s=[1.0], image_size=16)
    assert batch.kept.tolist() == [1] and batch.audio.shape == (1, 16000) and batch.frames.shape == (1, 1, 16, 16, 3)
    assert [s["file"] for s in batch.skipped] == ["corrupt.mp4", "silent.mp4"]
    assert batch.skipped[1]["reason"] == "no sound track" and "corrupt" in batch.skipped[0]["reason"]
    assert len(records) == 1 and records[0].startswith("VGGSound: skipped 2 of 3 clips") and "corrupt.mp4" in records[0]
    with pytest.raises(MkeError, match="no VGGSound clip .* could be decoded: 1 of 1 skipped"):
        load_clips(tmp_path, ["silent.mp4"], what="VGGSound")
