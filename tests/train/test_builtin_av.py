"""The built-in audio-visual data: real speech, deterministic clips, speaker-disjoint splits, an atomic
cache, and a replay pair that lines up with the test clips."""
import json
import shutil
import wave

import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.train.datasets.builtin_av import (SPLITS, cache_dir, data_settings, generate, load_av, replay_paths)
from mke.train.datasets.frame_arrays import FrameArray
from mke.train.datasets.speech import Utterance, Voice, synthesize

TINY = {"actors": 6, "statements": 1, "repetitions": 1, "val_actors": 1, "test_actors": 1,
        "image": {"size": 16}, "replay": {"clips": 3, "fps": 10, "size": 64}}  # 6 × 8 = 48 clips


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = {**TINY, "cache_dir": str(tmp_path_factory.mktemp("cache"))}
    return cfg, load_av(cfg, progress=False)


def test_two_voices_say_a_word_audibly_and_differently():
    (male, female), rate = synthesize([Utterance("seven", Voice("en-gb-x-rp", "m3", 150, 40)),
                                       Utterance("seven", Voice("en-us", "f1", 190, 65))])
    assert rate == 22050
    for x in (male, female):
        assert x.dtype == np.float32 and 0.2 < len(x) / rate < 1.5  # one spoken word, silence trimmed
        assert np.sqrt(np.mean(x ** 2)) > 0.01 and np.abs(x).max() <= 1.0
    assert len(male) != len(female) or not np.allclose(male, female)


def test_an_unknown_voice_is_named():
    with pytest.raises(MkeError, match="no voice 'xx-nowhere"):
        synthesize([Utterance("one", Voice("xx-nowhere", "m1"))])


def test_the_same_seed_gives_the_same_clips_and_another_seed_others(tiny):
    _, cached = tiny  # made by another process's synthesis, through the cache
    fresh, _ = generate(data_settings(TINY))
    for name in SPLITS:
        assert np.array_equal(fresh[name]["frames"], cached[name].frames), name
        assert np.array_equal(fresh[name]["audio"] / np.float32(32768), cached[name].audio), name
        assert np.array_equal(fresh[name]["labels"], cached[name].labels), name
        for key, values in cached[name].meta.items():
            assert np.array_equal(fresh[name][key], values), (name, key)
    other, _ = generate(data_settings({**TINY, "seed": 1}))
    assert not np.array_equal(other["test"]["audio"], fresh["test"]["audio"])


def test_clips_have_the_ravdess_shape(tiny):
    _, data = tiny
    test = data["test"]
    assert test.frames.dtype == np.uint8 and test.frames.shape[1:] == (4, 16, 16, 3)
    assert np.allclose(test.frame_times_s, [0.5, 1.0, 1.5, 2.0])
    assert test.audio.dtype == np.float32 and test.audio.shape[1] == 2 * 16000 == 2 * test.sample_rate
    assert isinstance(test.frames, np.memmap) and isinstance(test.audio, FrameArray)  # read from disk when used
    audio = np.asarray(test.audio)
    assert np.abs(audio).max() <= 1.0 and audio.std() > 1e-3
    assert test.class_names == ("zero", "one", "two", "three", "four", "five", "six", "seven")
    assert test.labels.dtype == np.int64 and test.actors.dtype == np.int64
    assert sum(len(data[name]) for name in SPLITS) == 48
    assert len(data["labeled"]) == round(0.2 * 48)  # D_l : D_u = 2 : 8


def test_no_speaker_and_no_scan_is_in_two_splits(tiny):
    _, data = tiny
    actors = {name: set(data[name].actors.tolist()) for name in SPLITS}
    scans = {name: set(data[name].meta["scans"].tolist()) for name in SPLITS}
    assert len(actors["test"]) == 1 and len(actors["val"]) == 1
    training = actors["labeled"] | actors["unlabeled"]
    assert not training & actors["test"] and not training & actors["val"] and not actors["val"] & actors["test"]
    for a in SPLITS:
        for b in SPLITS:
            assert a == b or not scans[a] & scans[b], (a, b)


def test_the_report_names_the_held_out_speakers_and_the_clips_of_each_split(tiny):
    from mke.train.tasks import get_task

    cfg, data = tiny
    summary = get_task("av").data_summary({"data": cfg})
    test, val = (data[name].actors[0] + 1 for name in ("test", "val"))
    assert summary["split_protocol"].startswith(f"speaker (test speakers {test} and val speakers {val} held out")
    assert "over the other 4)" in summary["split_protocol"]
    assert summary["clips"] == {name: len(data[name]) for name in SPLITS}


def test_every_split_is_class_balanced(tiny):
    _, data = tiny
    for name in SPLITS:
        counts = np.bincount(data[name].labels, minlength=8)
        assert counts.max() - counts.min() <= 1, (name, counts)


def test_the_cache_is_read_not_generated_again(tiny):
    cfg, data = tiny
    folder = cache_dir(cfg)
    stamp = (folder / "unlabeled.npz").stat().st_mtime_ns
    again = load_av(cfg, progress=False)
    assert (folder / "unlabeled.npz").stat().st_mtime_ns == stamp
    assert np.array_equal(again["test"].frames, data["test"].frames)
    assert json.loads((folder / "data.json").read_text())["clips"]["test"] == len(data["test"])
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_the_replay_pair_lines_up_with_the_test_clips(tiny):
    import cv2

    cfg, data = tiny
    paths = replay_paths(cfg)
    index = json.loads(paths["index"].read_text())
    assert [c["start_s"] for c in index["clips"]] == [0.0, 2.0, 4.0] and index["clips"][-1]["end_s"] == 6.0
    assert [c["eval_s"] for c in index["clips"]] == [2.0, 4.0, 6.0]
    assert index["seconds"] == [c["class"] for c in index["clips"] for _ in range(2)]
    assert index["second_names"][0] == index["class_names"][index["seconds"][0]]
    video = cv2.VideoCapture(str(paths["video"]))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 6.5 * 10 and video.get(cv2.CAP_PROP_FPS) == 10  # + the last eval frame
    frames = []
    while (got := video.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    video.release()
    assert len(frames) == 65 and frames[0].shape == (64, 64, 3)
    clip_frames = data["test"].frames[[c["test_index"] for c in index["clips"]]]   # (3, 4, 16, 16, 3)

    def shown(v):   # which (clip, image) the video frame v shows: the nearest original (the codec is lossy)
        small = cv2.resize(frames[v], clip_frames.shape[3:1:-1], interpolation=cv2.INTER_AREA).astype(float)
        errors = np.abs(clip_frames.astype(float) - small).mean(axis=(2, 3, 4))
        return tuple(int(i) for i in np.unravel_index(errors.argmin(), errors.shape))

    # an image is shown from the moment it is taken (0.5, 1.0, 1.5, 2.0 s into its clip) until the next one
    assert [shown(v) for v in (0, 5, 10, 15, 20, 24, 25, 40, 60, 64)] == \
        [(0, 0), (0, 0), (0, 1), (0, 2), (0, 3), (0, 3), (1, 0), (1, 3), (2, 3), (2, 3)]
    with wave.open(str(paths["audio"]), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 6.5 * 16000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    second = index["clips"][1]
    assert second["class"] == data["test"].labels[second["test_index"]]
    expected = np.round(data["test"].audio[second["test_index"]] * 32768).astype(np.int16)
    assert np.array_equal(pcm[32000:64000], expected)  # clip 1 occupies [2 s, 4 s) exactly


def test_an_incomplete_cache_is_generated_again(tiny, tmp_path):
    cfg, data = tiny
    mine = {**cfg, "cache_dir": str(tmp_path)}
    shutil.copytree(cache_dir(cfg), cache_dir(mine))
    (cache_dir(mine) / "val.npz").unlink()              # a file gone
    with open(cache_dir(mine) / "test.npz", "r+b") as f:  # another cut short
        f.truncate(1000)
    again = load_av(mine, progress=False)
    assert np.array_equal(again["test"].audio, data["test"].audio) and len(again["val"]) == len(data["val"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache_dir(mine).name]


def test_a_corrupt_cache_file_is_named(tiny, tmp_path):
    cfg, _ = tiny
    mine = {**cfg, "cache_dir": str(tmp_path)}
    shutil.copytree(cache_dir(cfg), cache_dir(mine))
    path = cache_dir(mine) / "labeled.npz"
    path.write_bytes(b"\0" * path.stat().st_size)  # the size it should have, none of the content
    with pytest.raises(MkeError, match="labeled.npz is unreadable.*delete"):
        load_av(mine, progress=False)


@pytest.mark.parametrize("bad, message", [
    ({"actors": 3, "val_actors": 1, "test_actors": 2}, "at least one training actor"),
    ({"image": {"sizes": 32}}, "unknown key.*sizes"),
    ({"audio": {"snr_db": [10, -5]}}, "snr_db must be"),
    ({"labeled_share": 1.5}, "labeled_share"),
])
def test_bad_settings_are_named(bad, message):
    with pytest.raises(MkeError, match=message):
        data_settings(bad)
