"""The built-in audio-visual events: deterministic multilabel clips, class-balanced splits, masked and
confusable events that really are so, an atomic cache, and a replay pair that lines up with the test clips."""
import json
import shutil
import wave

import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.train.datasets.builtin_events import (CLASS_NAMES, CONFUSABLE, EVENT_FIELDS, MASKED_BELOW, SPLITS,
                                               cache_dir, clip_scene, data_settings, generate, load_events,
                                               plan_classes, render_at, replay_paths)
from mke.train.datasets.frame_arrays import FrameArray

TINY = {"clips": {"labeled": 12, "unlabeled": 24, "val": 6, "test": 12}, "image": {"size": 32},
        "replay": {"clips": 3, "fps": 10, "size": 64}}   # 54 clips
MEDIUM = {"clips": {"labeled": 1, "unlabeled": 200, "val": 1, "test": 1}, "image": {"size": 32},
          "replay": {"clips": 0}}                       # enough clips to count masked events


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = {**TINY, "cache_dir": str(tmp_path_factory.mktemp("cache"))}
    return cfg, load_events(cfg, progress=False, workers=2)   # made in a process pool


@pytest.fixture(scope="module")
def medium():
    return generate(data_settings(MEDIUM), workers=2)["unlabeled"]


def _events(split, row):
    """(class, onset, offset, audible, faint) of each event of one clip."""
    keep = split.events["event_class"][row] >= 0
    return list(zip(*(split.events[k][row][keep].tolist() for k in ("event_class", "onset_s", "offset_s", "audible",
                                                                    "faint"))))


def test_the_same_seed_gives_the_same_clips_whatever_the_workers_and_another_seed_others(tiny):
    _, cached = tiny
    fresh = generate(data_settings(TINY), workers=1)
    for name in SPLITS:
        assert np.array_equal(fresh[name]["frames"], cached[name].frames), name
        assert np.array_equal(fresh[name]["audio"] / np.float32(32768), cached[name].audio), name
        assert np.array_equal(fresh[name]["labels"], cached[name].labels), name
        for key in EVENT_FIELDS:
            assert np.array_equal(fresh[name][key], cached[name].events[key]), (name, key)
    other = generate(data_settings({**TINY, "seed": 1}), workers=1)
    assert not np.array_equal(other["test"]["audio"], fresh["test"]["audio"])
    assert not np.array_equal(other["test"]["labels"], fresh["test"]["labels"])


def test_clips_have_the_documented_shapes(tiny):
    _, data = tiny
    assert {name: len(data[name]) for name in SPLITS} == TINY["clips"]
    test = data["test"]
    assert test.frames.dtype == np.uint8 and test.frames.shape[1:] == (4, 32, 32, 3)
    assert np.allclose(test.frame_times_s, [0.5, 1.0, 1.5, 2.0])
    assert test.audio.dtype == np.float32 and test.audio.shape[1] == 2 * 16000 == 2 * test.sample_rate
    assert isinstance(test.frames, np.memmap) and isinstance(test.audio, FrameArray)  # read from disk when used
    audio = np.asarray(test.audio)
    assert np.abs(audio).max() <= 1.0 and audio.std() > 1e-3
    assert test.labels.dtype == np.float32 and test.labels.shape == (12, 10)
    assert set(np.unique(test.labels)) <= {0.0, 1.0}
    assert test.class_names == CLASS_NAMES == ("speech", "dog", "bird", "bell", "siren", "phone", "alarm", "engine",
                                               "rain", "fan")
    for key, dtype in EVENT_FIELDS.items():
        assert test.events[key].dtype == dtype and test.events[key].shape == (12, 3), key


def test_each_clip_holds_one_to_three_events_which_its_label_vector_names(tiny):
    _, data = tiny
    for name in SPLITS:
        split = data[name]
        counts = split.labels.sum(1)
        assert counts.min() >= 1 and counts.max() <= 3, name
        for row in range(len(split)):
            events = _events(split, row)
            classes = [e[0] for e in events]
            assert len(set(classes)) == len(classes) == counts[row]
            assert np.flatnonzero(split.labels[row]).tolist() == sorted(classes)
            for _, onset, offset, _, _ in events:
                assert 0 <= onset and offset <= 2.0 + 1e-6 and offset - onset >= 0.6 - 1e-6
                assert any(onset <= t <= offset for t in split.frame_times_s)  # a frame shows every event


def test_the_classes_are_dealt_evenly():
    rng = np.random.default_rng(0)
    clips = plan_classes(3000, (1, 3), rng)
    per_class = np.bincount(np.concatenate(clips), minlength=10)
    assert per_class.max() - per_class.min() <= 1
    sizes = np.bincount([len(c) for c in clips], minlength=4)[1:]
    assert sizes.min() > 0.9 * 1000 and sizes.max() < 1.1 * 1000    # 1, 2, 3 events equally often
    assert all(len(set(c)) == len(c) for c in clips)
    pairs = {(a, b) for c in clips for a in c for b in c if a < b}
    assert len(pairs) == 45                                           # every two classes meet somewhere


def test_every_split_is_class_balanced(tiny):
    _, data = tiny
    for name in SPLITS:
        counts = data[name].labels.sum(0)
        assert counts.max() - counts.min() <= 1, (name, counts)


def test_a_frame_shows_each_event_while_it_happens_and_not_after(tiny):
    _, data = tiny
    s = data_settings(TINY)
    split = data["test"]
    for row in range(len(split)):
        events = _events(split, row)
        clip_id = int(split.meta["clip_ids"][row])
        scene = clip_scene(clip_id, *([e[k] for e in events] for k in range(3)), s)
        for j, t in enumerate(split.frame_times_s):   # the scene drawn again gives the stored frames exactly
            assert np.array_equal(render_at(scene, s, clip_id, t), split.frames[row, j])
        for sprite in scene.sprites:
            if not sprite.active:
                continue
            others = [sp for sp in scene.sprites if sp is not sprite]
            for t in split.frame_times_s:
                with_it = render_at(scene, s, clip_id, t).astype(float)
                scene.sprites, kept = others, scene.sprites
                without = render_at(scene, s, clip_id, t).astype(float)
                scene.sprites = kept
                changed = np.abs(with_it - without).max(axis=2) > 40
                if sprite.start_s <= t <= sprite.stop_s:
                    assert changed.mean() > 0.02, (row, sprite.name, t)   # a sprite covers a visible patch
                else:
                    assert not changed.any(), (row, sprite.name, t)


def test_masked_events_exist_are_buried_in_the_sound_and_are_plainly_visible(medium):
    present = medium["event_class"] >= 0
    masked = present & (medium["audible"] < MASKED_BELOW)
    several = present.sum(1) >= 2
    assert masked.sum() >= 0.08 * several.sum()               # default settings: about one clip in six of these
    assert not masked[~several].any()                         # masking needs a louder event
    assert masked[present & ~medium["faint"]].mean() < 0.1    # masking is made on purpose, rarely by chance
    for row, slot in zip(*np.nonzero(masked)):
        others = [k for k in range(3) if present[row, k] and k != slot]
        assert max(medium["level_db"][row, k] for k in others) - medium["level_db"][row, slot] >= 15
    s = data_settings(MEDIUM)
    for row, slot in list(zip(*np.nonzero(masked)))[:5]:   # its sprite is as plain as any other
        keep = present[row]
        classes, onsets, offsets = (medium[k][row][keep].tolist() for k in ("event_class", "onset_s", "offset_s"))
        clip_id = int(medium["clip_ids"][row])
        scene = clip_scene(clip_id, classes, onsets, offsets, s)
        name = CLASS_NAMES[medium["event_class"][row, slot]]
        sprite = next(sp for sp in scene.sprites if sp.active and sp.name == name)
        t = next(t for t in (0.5, 1.0, 1.5, 2.0) if sprite.start_s <= t <= sprite.stop_s)
        with_it = render_at(scene, s, clip_id, t).astype(float)
        scene.sprites = [sp for sp in scene.sprites if sp is not sprite]
        without = render_at(scene, s, clip_id, t).astype(float)
        assert (np.abs(with_it - without).max(axis=2) > 40).mean() > 0.02


def test_the_audibility_measure_tells_a_buried_tone_from_a_clear_one():
    from mke.train.datasets.builtin_events import _audible
    from mke.train.datasets.event_sounds import coloured_noise

    t = np.arange(32000) / 16000
    tone = 0.01 * np.sin(2 * np.pi * 1000 * t)
    loud = 0.3 * coloured_noise(32000, 0.5, np.random.default_rng(0), 16000, band=(300, 6000))
    quiet = 0.001 * coloured_noise(32000, 0.5, np.random.default_rng(1), 16000, band=(300, 6000))
    assert _audible([tone], tone + loud, 16000)[0] < MASKED_BELOW < 0.9 < _audible([tone], tone + quiet, 16000)[0]


def _separability(a: str, b: str, n: int = 40) -> float:
    """Cross-validated accuracy of a logistic regression telling sounds of a from b, each alone in a clip
    at the data's levels over the data's background noise, by their log-mel band statistics (mean,
    deviation, maximum over time)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mke.runtime.audio_features import log_mel
    from mke.train.datasets.event_sounds import GENERATORS, coloured_noise

    params = {"sample_rate": 16000, "seconds": 2.0, "hop_length": 320, "n_mels": 64}
    audio = data_settings({})["audio"]
    x = []
    for name in (a, b):
        for i in range(n):
            rng = np.random.default_rng([CLASS_NAMES.index(name), i])
            clip = 10 ** (rng.uniform(*audio["noise_db"]) / 20) * coloured_noise(
                32000, rng.uniform(*audio["noise_color"]), rng, 16000)
            m = int(rng.uniform(0.6, 2.0) * 16000)
            clip[:m] += 10 ** (rng.uniform(*audio["level_db"]) / 20) * GENERATORS[name](m, 16000, rng)
            mel = log_mel(clip[None], params)[0]
            x.append(np.concatenate([mel.mean(1), mel.std(1), mel.max(1)]))
    y = np.repeat([0, 1], n)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return float(cross_val_score(model, np.array(x), y, cv=5).mean())


def test_the_confusable_pairs_sound_alike_but_look_nothing_alike():
    from mke.train.datasets.event_sights import DRAWERS, _style

    for a, b in CONFUSABLE:
        assert _separability(a, b) < 0.85, (a, b)                 # other pairs: at or near 1.0
        looks = []
        for name in (a, b):
            canvas = np.full((160, 160, 3), 200, np.uint8)
            DRAWERS[name](canvas, np.array([80.0, 80.0]), 14.0, 0.5, _style(name, np.random.default_rng(0)), True)
            looks.append(canvas.astype(float))
        assert np.abs(looks[0] - looks[1]).max(axis=2).__gt__(60).mean() > 0.2, (a, b)
    for a, b in (("siren", "bell"), ("dog", "bird"), ("rain", "engine")):
        assert _separability(a, b) > 0.95, (a, b)


def test_the_cache_is_read_not_generated_again(tiny):
    cfg, data = tiny
    folder = cache_dir(cfg)
    stamp = (folder / "unlabeled.npz").stat().st_mtime_ns
    again = load_events(cfg, progress=False)
    assert (folder / "unlabeled.npz").stat().st_mtime_ns == stamp
    assert np.array_equal(again["test"].frames, data["test"].frames)
    meta = json.loads((folder / "data.json").read_text())
    assert meta["clips"] == TINY["clips"]
    assert meta["summary"]["test"]["per_class"]["dog"] == data["test"].labels[:, 1].sum()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_an_incomplete_cache_is_generated_again(tiny, tmp_path):
    cfg, data = tiny
    mine = {**cfg, "cache_dir": str(tmp_path)}
    shutil.copytree(cache_dir(cfg), cache_dir(mine))
    (cache_dir(mine) / "val.npz").unlink()               # a file gone
    with open(cache_dir(mine) / "test.npz", "r+b") as f:   # another cut short
        f.truncate(1000)
    again = load_events(mine, progress=False, workers=1)
    assert np.array_equal(again["test"].audio, data["test"].audio) and len(again["val"]) == len(data["val"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache_dir(mine).name]


def test_a_corrupt_cache_file_is_named(tiny, tmp_path):
    cfg, _ = tiny
    mine = {**cfg, "cache_dir": str(tmp_path)}
    shutil.copytree(cache_dir(cfg), cache_dir(mine))
    path = cache_dir(mine) / "labeled.npz"
    path.write_bytes(b"\0" * path.stat().st_size)  # the size it should have, none of the content
    with pytest.raises(MkeError, match="labeled.npz is unreadable.*delete"):
        load_events(mine, progress=False)


def test_the_replay_pair_lines_up_with_the_test_clips(tiny):
    import cv2

    cfg, data = tiny
    paths = replay_paths(cfg)
    index = json.loads(paths["index"].read_text())
    clips = index["clips"]
    assert [c["start_s"] for c in clips] == [0.0, 2.0, 4.0] and [c["eval_s"] for c in clips] == [2.0, 4.0, 6.0]
    assert index["class_names"] == list(CLASS_NAMES) and index["task"] == "multilabel"
    test = data["test"]
    for c in clips:
        assert c["target"] == test.labels[c["test_index"]].astype(int).tolist()
        assert c["classes"] == [e["class"] for e in sorted(c["events"], key=lambda e: e["class"])]
        assert all(c["start_s"] <= e["onset_s"] < e["offset_s"] <= c["end_s"] + 1e-3 for e in c["events"])
    # the true events of each second: every event in the seconds it overlaps, nothing else
    assert len(index["seconds"]) == 6
    for sec, classes in enumerate(index["seconds"]):
        clip = clips[sec // 2]
        assert classes == sorted({e["class"] for e in clip["events"] if e["onset_s"] < sec + 1 and e["offset_s"] > sec})
        assert index["second_names"][sec] == [CLASS_NAMES[k] for k in classes]

    video = cv2.VideoCapture(str(paths["video"]))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 6.5 * 10 and video.get(cv2.CAP_PROP_FPS) == 10
    frames = []
    while (got := video.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    video.release()
    assert len(frames) == 65 and frames[0].shape == (64, 64, 3)
    originals = test.frames[[c["test_index"] for c in clips]]    # (3, 4, 32, 32, 3)

    def shown(v):   # the (clip, frame) video frame v is closest to, and how much closer than to any other
        small = cv2.resize(frames[v], (32, 32), interpolation=cv2.INTER_AREA).astype(float)
        errors = np.abs(originals.astype(float) - small).mean(axis=(2, 3, 4))
        first, second = np.sort(errors.ravel())[:2]
        return tuple(int(i) for i in np.unravel_index(errors.argmin(), errors.shape)), float(first), float(second)

    # the video frame at a training frame's time (0.5, 1.0, 1.5, 2.0 s into its clip) is that frame, up to
    # the codec (which smooths the sensor noise away: about 4 grey levels of 255 on average)
    for v, expected in ((5, (0, 0)), (10, (0, 1)), (20, (0, 3)), (25, (1, 0)), (40, (1, 3)), (60, (2, 3)),
                        (64, (2, 3))):
        where, error, runner_up = shown(v)
        assert where == expected and error < 6 and error < 0.8 * runner_up, (v, where, error, runner_up)
    with wave.open(str(paths["audio"]), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 6.5 * 16000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    expected = np.round(test.audio[clips[1]["test_index"]] * 32768).astype(np.int16)
    assert np.array_equal(pcm[32000:64000], expected)  # clip 1 occupies [2 s, 4 s) exactly


@pytest.mark.parametrize("bad, message", [
    ({"events": [0, 3]}, "events must lie within"),
    ({"events": [1, 4]}, "events must lie within"),
    ({"events": [1.5, 2]}, "events must be .*integers"),
    ({"clips": {"labeled": 0}}, "every split at least 1 clip"),
    ({"clips": {"train": 10}}, "unknown key.*train"),
    ({"min_event_s": 0.3}, "min_event_s"),
    ({"audio": {"level_db": [-20, 0]}}, "level_db"),
    ({"audio": {"sample_rate": 8000}}, "sample_rate"),
    ({"image": {"scale": [0.3, 0.7]}}, "image.scale"),
])
def test_bad_settings_are_named(bad, message):
    with pytest.raises(MkeError, match=message):
        data_settings(bad)
