"""The multilabel chain on built-in events: `mke-train --task events` on tiny data, `mke-export --fp16 --int8`
(agreement counted per class, the calibration draw stratified by the events the teacher hears), then
`mke-live` on the events' replay pair with `--truth replay.json`: per-class scores in the JSONL and mAP
at the clips' moments."""
import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

from mke.export.cli import main as export_main  # noqa: E402
from mke.runtime.cli import main as live_main  # noqa: E402
from mke.train.cli import main as train_main  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TINY = ["seeds=1", "workers=1", "data.clips={labeled: 16, unlabeled: 24, val: 2, test: 16}", "data.image={size: 32}",
        "data.replay={clips: 4, fps: 10, size: 64}", "teacher.optim.epochs=3", "student.optim.epochs=2",
        "methods=[UM teacher, MM student]", "model.branches.audio={arch: cnn, widths: [4, 8, 8, 8], pool: max}"]


def metrics_of(metrics, method):
    return next(r["mean"] for r in metrics["results"] if r["method"] == method)


@pytest.fixture(scope="module")
def events_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    cache = root / "cache"
    assert train_main(["--task", "events", "--name", "ev", "--runs-dir", str(root / "runs"), "--no-progress",
                       *TINY, f"data.cache_dir={cache}"]) == 0
    replay = next(cache.glob("events-*/replay.json"))
    return root / "runs" / "ev", replay


def test_export_and_live_of_a_multilabel_student(events_run, tmp_path):
    run, replay = events_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metric"] == "map" and (run / "figures" / "class_ap.png").is_file()

    out = tmp_path / "exports"
    assert export_main([str(run), "--out", str(out), "--fp16", "--int8", "--repeats", "2", "--calib-samples", "16",
                        "--budget", "100"]) == 0
    report = json.loads((out / "export_report.json").read_text())
    student = [a for a in report["artifacts"] if a["model"] == "student"]
    fp32 = next(a for a in student if (a["format"], a["precision"]) == ("onnx", "fp32"))
    assert fp32["parity"]["max_abs_diff"] < 1e-3 and fp32["parity"]["agreement"] == pytest.approx(100.0)
    assert fp32["metric"] == pytest.approx(metrics_of(metrics, "MM student"), abs=1e-3)
    int8 = next(a for a in student if a["precision"] == "int8" and a["format"] == "onnx")
    # per class: 16 clips × 10 classes decided, so agreement moves in steps of 1/160
    assert (int8["parity"]["agreement"] * 160 / 100) == pytest.approx(round(int8["parity"]["agreement"] * 1.6))

    jsonl, stats = tmp_path / "live.jsonl", tmp_path / "stats.json"
    assert live_main([str(out / "student.onnx"), "--input", f"file://{replay.with_name('replay.mp4')}",
                      "--audio", f"file://{replay.with_name('replay.wav')}", "--fast", "--headless",
                      "--truth", str(replay), "--jsonl", str(jsonl), "--stats-json", str(stats),
                      "--stats-every", "0"]) == 0
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert lines and all(len(r["scores"]) == 10 and "top" in r for r in lines)
    truth = json.loads(stats.read_text())["truth"]
    assert truth["moments"] == 4 and truth["scored"] == 4 and 0.0 <= truth["map"] <= 1.0
