"""The pipeline's behaviour: model/source fit checked before anything starts, stale frames dropped and
counted, faults survived, a lost device retried then ended with status 3, Ctrl-C ending cleanly."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mke.runtime.cli import main
from mke.runtime.errors import MkeError
from mke.runtime.live.backends import open_runner
from mke.runtime.live.faults import FaultPlan
from mke.runtime.live.pipeline import LivePipeline, PipelineOptions
from mke.runtime.live.sinks.files import JsonlSink
from mke.runtime.live.sources import SourceContext, open_source
from mke.runtime.live.sources.sim import SimCamera
from mke.runtime.spec import InputSpec, ModelSpec, OutputSpec
from tiny_models import write_model

pytest.importorskip("pybullet")   # the sim source renders rooms with it


def sim(*extra):
    return ["--sensor", "sim", "--headless", "--stats-every", "0", *extra]


def test_a_depth_model_on_a_camera_is_refused_before_anything_starts(rgbd_onnx, tmp_path, capsys):
    code = main([str(rgbd_onnx), "--sensor", "camera", "--camera", "0", "--headless",
                 "--save", str(tmp_path / "v.mp4"), "--jsonl", str(tmp_path / "p.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "needs 'rgb' (rgb), 'depth' (depth), but camera 0 gives only rgb" in err
    assert "give --input realsense://, file://REC.db3 or sim://" in err    # the depth modality's hint
    assert list(tmp_path.iterdir()) == []


def test_a_model_of_vectors_has_no_live_sensor(tmp_path, capsys):
    from onnx import helper

    spec = ModelSpec(task="twomoon", kind="classification", classes=["a", "b"], colors=[[0, 0, 0], [9, 9, 9]],
                     inputs=[InputSpec("x", "vector", [1, 2], layout="NC", preprocess={"kind": "vector"})],
                     outputs=[OutputSpec("logits", [1, 2])])
    model = write_model(tmp_path / "moon.onnx", spec, [helper.make_node("Identity", ["x"], ["logits"])], [])
    assert main([str(model), *sim()]) == 2
    assert "takes 'x' (vector): no live sensor gives that" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--sensor", "sim", "--serial", "123"], "--serial applies to --sensor realsense, not --sensor sim"),
    (["--sensor", "sim", "--inject-faults", "nan_dept=0.1"], "unknown fault 'nan_dept' (did you mean 'nan_depth'?)"),
    (["--sensor", "sim", "--inject-faults", "drop=2"], "drop is a probability in 0..1, got 2.0"),
    (["--sensor", "sim", "--alpha", "3"], "--alpha is an opacity in 0..1"),
    ([], "say which source to run on"),
    (["--sensor", "files"], "--sensor files needs --video FILE"),
    (["--sensor", "sim", "--backend", "tensorrt"], "--backend tensorrt cannot run student.onnx"),
])
def test_option_mistakes_are_one_line_errors(rgbd_onnx, args, message, capsys):
    assert main([str(rgbd_onnx), "--headless", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_camera_that_is_not_there_lists_what_was_found(rgb_onnx, capsys):
    assert main([str(rgb_onnx), "--sensor", "camera", "--camera", "/dev/video97", "--headless"]) == 2
    err = capsys.readouterr().err
    assert "cannot open camera /dev/video97 (RealSense cameras:" in err and "--sensor sim" in err


def test_faults_are_survived_and_counted(rgbd_onnx, tmp_path):
    stats_path, jsonl = tmp_path / "s.json", tmp_path / "p.jsonl"
    wav = tmp_path / "a.wav"
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.sin(np.arange(16000 * 8) / 5.0) * 8000).astype("<i2").tobytes())
    code = main([str(rgbd_onnx), *sim("--fast", "--frames", "200", "--wav", str(wav), "--jsonl", str(jsonl),
                                      "--stats-json", str(stats_path), "--inject-faults",
                                      "zero_depth=0.1,nan_depth=0.1,drop=0.1,underrun=0.1,seed=3")])
    stats = json.loads(stats_path.read_text())
    injected = stats["faults"]["injected"]
    assert code == 0 and stats["frames"] == 200 and stats["errors"] == 0
    assert min(injected.values()) > 5                                   # every kind of fault happened
    unprocessed = stats["captured"] - stats["frames"]   # read after the 200th result, before the stop
    assert injected["dropped"] - unprocessed <= stats["dropped"]["source"] <= injected["dropped"]
    assert injected["underrun"] - unprocessed <= stats["audio_underruns"] <= injected["underrun"]
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]     # NaN depth never reaches the output
    assert len(lines) == 200 and all(np.isfinite(sum(r["classes"].values())) for r in lines)
    assert sum(r["audio_underrun"] for r in lines) == stats["audio_underruns"]


def test_a_lost_device_is_retried_then_ends_with_status_3_and_finished_files(rgbd_onnx, tmp_path, capsys):
    jsonl = tmp_path / "p.jsonl"
    code = main([str(rgbd_onnx), *sim("--fast", "--retries", "2", "--jsonl", str(jsonl), "--inject-faults", "lose_at=7")])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("failed; reopening it") == 2 and "is lost: gave up after 2 retries" in err
    assert "mke-live: device lost after 7 frames" in err
    assert len(jsonl.read_text().splitlines()) == 7


class SlowRunner:
    """The real ONNX Runtime runner, slowed to 40 ms a frame: a model slower than its camera."""

    def __init__(self, runner):
        self.runner, self.spec = runner, runner.spec

    def infer(self, feeds):
        time.sleep(0.04)
        return self.runner.infer(feeds)


def test_a_model_slower_than_the_camera_gets_the_newest_frame_and_the_rest_count_as_dropped(rgbd_onnx):
    source = SimCamera(size=(64, 48), fps=100.0, real_time=True)
    with open_runner(rgbd_onnx) as runner, source:
        pipeline = LivePipeline(source, SlowRunner(runner), options=PipelineOptions(max_frames=15, stats_every_s=0),
                                log=lambda m: None)
        summary = pipeline.run()
    assert summary["frames"] == 15 and summary["dropped"]["stale"] > 10
    assert summary["captured"] >= summary["frames"] + summary["dropped"]["stale"]
    assert summary["latency_ms"]["p50"] < 80      # the frame inferred is at most one frame old, plus the model


def test_ctrl_c_ends_the_run_cleanly_with_finished_files_and_a_summary(rgbd_onnx, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "mke.runtime.cli", str(rgbd_onnx), *sim(), "--save",
                             str(out / "v.mp4"), "--jsonl", str(out / "p.jsonl"), "--stats-json", str(out / "s.json")],
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline()]
        while "source:" not in lines[-1] and lines[-1] and len(lines) < 20:   # started once the source is open
            lines.append(proc.stderr.readline())
        assert "source:" in lines[-1], lines
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "mke-live: interrupted after" in err and "wrote" in err
    stats = json.loads((out / "s.json").read_text())
    assert stats["exit"] == "interrupted" and stats["frames"] > 5
    assert len((out / "p.jsonl").read_text().splitlines()) == stats["frames"]
    assert sorted(p.name for p in out.iterdir()) == ["p.jsonl", "s.json", "v.mp4"]


def test_an_aborted_file_leaves_nothing_behind(tmp_path):
    sink = JsonlSink(tmp_path / "p.jsonl")
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_the_benchmark_reports_end_to_end_and_model_only_side_by_side(rgbd_onnx, tmp_path, capsys):
    result_path = tmp_path / "b.json"
    assert main([str(rgbd_onnx), *sim("--benchmark", "--frames", "20", "--rounds", "2", "--stats-json",
                                      str(result_path))]) == 0
    table = capsys.readouterr().out
    for row in ("| model-only FPS (the same runner and session) |", "| **end-to-end / model-only** (pipeline overhead; rounds ",
                "| **preprocessing share of frame time** |", "| end-to-end FPS, the source as read |",
                "| source-only FPS, the source as read (SDK playback / decoder + preprocessing) |"):
        assert row in table
    assert "load average" in table
    result = json.loads(result_path.read_text())
    assert len(result["rounds"]) == 2 and result["preloaded_frames"] == 20 and result["errors"] == 0
    for row in result["rounds"]:
        # the target compares the pipeline on preloaded frames with the model alone; the source as read is beside it
        assert row["ratio"] == pytest.approx(row["memory_e2e_fps"] / row["model_fps"])
        assert row["source_ratio"] == pytest.approx(row["e2e_fps"] / row["model_fps"])
        assert row["pipeline_efficiency"] == pytest.approx(row["e2e_fps"] / min(row["model_fps"], row["source_fps"]))
        assert 0 < row["preprocess_share"] < 1 and 0 < row["source_preprocess_share"] < 1
        assert row["memory_source_fps"] > 0 and row["load_avg_1min"] >= 0
    assert result["meets"]["e2e_over_model"] == (result["median"]["ratio"] >= 0.9)


def test_preloaded_frames_are_the_sources_own_looped_and_read_only(tmp_path):
    from mke.runtime.live.frame import Status
    from mke.runtime.live.sources.memory import Preloaded

    direct = SimCamera(size=(64, 48), seed=3, real_time=False)
    direct.open()
    try:
        expected = [direct.read(5.0)[1] for _ in range(3)]
    finally:
        direct.close()
    memory = Preloaded(SimCamera(size=(64, 48), seed=3, real_time=False), frames=3)
    memory.open()
    got = [memory.read(1.0) for _ in range(7)]
    assert all(status is Status.OK for status, _ in got)
    assert [f.index for _, f in got] == list(range(7))             # each repetition is a new frame
    for i, (_, frame) in enumerate(got):
        np.testing.assert_array_equal(frame.rgb, expected[i % 3].rgb)
        np.testing.assert_array_equal(frame.depth, expected[i % 3].depth)
    with pytest.raises(ValueError):
        got[0][1].rgb[0, 0, 0] = 1                                  # shared between repetitions: read-only
    assert "3 frames decoded once into memory" in memory.describe()


def test_every_result_is_decoded_in_the_output_thread_also_without_sinks(rgbd_onnx, monkeypatch):
    import threading

    from mke.runtime.live import pipeline as pipeline_module

    threads = []
    real_decode = pipeline_module.decode

    def recording_decode(outputs, spec):
        threads.append(threading.current_thread().name)
        return real_decode(outputs, spec)

    monkeypatch.setattr(pipeline_module, "decode", recording_decode)
    runner = open_runner(rgbd_onnx)
    with SimCamera(size=(64, 48), real_time=False) as source:
        summary = LivePipeline(source, runner, options=PipelineOptions(max_frames=6, stats_every_s=0),
                               log=lambda m: None).run()
    assert summary["frames"] == 6 and threads == ["mke-output"] * 6


def test_the_class_map_is_numpys_argmax_ties_and_nan_included():
    from mke.runtime.live.predictions import segment

    def check(scores):
        labels, counts = segment(scores)
        np.testing.assert_array_equal(labels, scores.argmax(0))
        np.testing.assert_array_equal(counts, np.bincount(scores.argmax(0).ravel(), minlength=scores.shape[0]))
        return labels

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float16, np.float64):
        check(rng.standard_normal((7, 30, 40)).astype(dtype))              # one maximum per pixel
        check(rng.integers(-2, 2, (7, 30, 40)).astype(dtype))              # many ties: the lowest class wins
    scores = rng.standard_normal((5, 30, 40)).astype(np.float32)
    scores[3, 2, 2] = scores[1, 7, 7] = np.nan                              # NaN wins, as in np.argmax
    check(scores)
    check(rng.integers(-5, 5, (7, 30, 40)).astype(np.int32))               # not floating point
    check(rng.standard_normal((1, 8, 8)).astype(np.float32))               # one class
    assert check(rng.standard_normal((300, 4, 4))).dtype == np.uint16       # ids beyond uint8
    assert segment(rng.standard_normal((7, 4, 4)).astype(np.float32))[0].dtype == np.uint8


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_an_engine_without_tensorrt_says_what_to_do(tmp_path, capsys):
    engine = tmp_path / "student.fp16.trt10.3.0.orin.engine"
    engine.write_bytes(b"MKETRT01")
    assert main([str(engine), *sim()]) == 2
    assert "TensorRT is not installed here: run the .onnx model with ONNX Runtime" in capsys.readouterr().err


@pytest.mark.skip(reason="needs a CUDA GPU with TensorRT 10 and pycuda (a Jetson); none here")
def test_tensorrt_engine_runs_live():
    pass


def test_camera_uris():
    def camera(uri):
        source = open_source(uri, SourceContext())
        return source.kind, source.target

    assert camera("0") == ("device", 0)
    assert camera("v4l2:///dev/video2") == ("device", "/dev/video2")
    assert camera("rtsp://cam.local/stream?profile=2") == ("stream", "rtsp://cam.local/stream?profile=2")
    assert camera("file:///tmp/a.mp4") == ("file", "/tmp/a.mp4")
    assert camera("clip.mp4") == ("file", "clip.mp4")


def test_fault_plans_parse():
    plan = FaultPlan.parse("zero_depth=0.1, drop=0.05,lose_at=30,seed=2")
    assert (plan.zero_depth, plan.drop, plan.lose_at, plan.seed, plan.nan_depth) == (0.1, 0.05, 30, 2, 0.0)
    with pytest.raises(MkeError, match="expected key=value"):
        FaultPlan.parse("drop")
