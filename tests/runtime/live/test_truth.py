"""--truth for a multilabel model: per-class scores at the moments a file names, scored by mAP (as
scikit-learn computes average precision) and by exact matches of the decided classes."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from mke.runtime.errors import MkeError
from mke.runtime.live.predictions import decode
from mke.runtime.live.sinks.truth import TruthSink, average_precision, mean_average_precision, read_truth
from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec

CLASSES = ["dog", "siren", "rain"]


def test_average_precision_is_scikit_learns_ties_included():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(50):
        truth = rng.integers(0, 2, 40)
        truth[trial % 40] = 1
        scores = rng.integers(0, 6, 40) / 5.0 if trial % 2 else rng.random(40)   # ties in half the trials
        assert average_precision(scores, truth) == pytest.approx(sklearn.average_precision_score(truth, scores))
    # by hand: ranked 0.9 (hit), 0.8 (miss), 0.1 (hit) → (1/1 + 2/3) / 2
    assert average_precision(np.array([0.1, 0.9, 0.8]), np.array([1, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)


def test_map_leaves_out_classes_that_never_happen():
    truth = np.array([[1, 0, 0], [0, 0, 1]])
    scores = np.array([[0.9, 0.5, 0.2], [0.1, 0.6, 0.3]])
    assert mean_average_precision(scores, truth) == pytest.approx(1.0)
    assert mean_average_precision(scores, np.zeros((2, 3))) is None


def _spec():
    return ModelSpec(task="events", kind="multilabel", classes=CLASSES, colors=[[0, 0, 0]] * 3,
                     inputs=[InputSpec("audio", "audio", [1, 1, 64, 100])],
                     outputs=[OutputSpec("logits", [1, 3])])


def _write(path, clips, **extra):
    path.write_text(json.dumps({"task": "multilabel", "class_names": ["rain", "dog", "siren"], "clips": clips, **extra}))
    return path


def test_multilabel_truth_is_read_by_target_or_by_class_ids_in_the_models_order(tmp_path):
    f = _write(tmp_path / "t.json", [{"eval_s": 1.0, "target": [1, 0, 1]}, {"eval_s": 2.0, "classes": [1]}])
    moments, truth = read_truth(f, CLASSES, "multilabel")
    assert moments.tolist() == [1.0, 2.0]
    assert truth.tolist() == [[0, 1, 1], [1, 0, 0]]          # file order rain, dog, siren → the model's
    with pytest.raises(MkeError, match="multilabel truth"):
        read_truth(f, CLASSES, "classification")
    bad = _write(tmp_path / "b.json", [{"eval_s": 1.0, "class": 2}])
    with pytest.raises(MkeError, match='"target": \\[0/1 per class\\]'):
        read_truth(bad, CLASSES, "multilabel")


def test_the_sink_scores_the_frames_nearest_each_moment(tmp_path):
    f = _write(tmp_path / "t.json", [{"eval_s": 1.0, "target": [0, 1, 0]},     # dog
                                     {"eval_s": 2.0, "target": [1, 0, 1]},     # rain + siren
                                     {"eval_s": 3.0, "target": [1, 0, 0]},     # rain
                                     {"eval_s": 9.0, "target": [0, 1, 0]}])    # never reached: missed
    sink = TruthSink(f, CLASSES, kind="multilabel")
    logits = {0.0: [-3, -3, -3], 1.0: [2, -2, -2], 1.04: [-2, 2, -2], 2.0: [-2, 3, 1], 3.0: [-1, -2, 2]}
    for i, (t, z) in enumerate(logits.items()):
        prediction = decode({"logits": np.array([z], np.float32)}, _spec())
        sink.write(SimpleNamespace(timestamp_s=10.0 + t, index=i), prediction, None, None)
    r = sink.result()
    assert (r["moments"], r["scored"], r["missed"]) == (4, 3, 1)
    # moment 1 s: dog on (exact); 2 s: siren + rain on (exact); 3 s: rain on, not dog (exact) → 3 of 3
    assert r["correct"] == 3 and r["exact"] == 100.0
    # per class over the 3 moments: dog ranks its one moment first (AP 1), siren too (1); rain (true at
    # 2 s and 3 s) scores 0.73 at 3 s, 0.27 at 2 s and 0.12 at 1 s: AP 1
    assert r["map"] == pytest.approx(1.0)
