"""Audio beside the frames: a WAV with a video file, and a real microphone capture through sounddevice
(PortAudio → ALSA) from an ALSA PCM of type `file` declared in an asoundrc under a temporary HOME."""
import json
import os
import subprocess
import sys
import threading
import time
import wave

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from mke.runtime.cli import main  # noqa: E402
from mke.runtime.live.audio.ring import AudioRing  # noqa: E402
from mke.runtime.live.audio.signal import level_db, resample, to_channels  # noqa: E402

SINE_DB = 20 * np.log10(0.3 / np.sqrt(2))   # a 0.3-amplitude sine, in dBFS


def write_video(path, seconds, fps=30, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[..., 2] = 255                                  # red, in OpenCV's BGR order
    for _ in range(int(seconds * fps)):
        writer.write(frame)
    writer.release()
    return path


def sine(rate, seconds, channels, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    return np.repeat((0.3 * np.sin(2 * np.pi * freq * t))[:, None], channels, axis=1).astype(np.float32)


def write_wav(path, samples, rate):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def test_resampling_and_downmixing_keep_pitch_and_level():
    stereo = sine(48000, 1.0, 2).T
    mono = resample(to_channels(stereo, 1), 48000, 16000)
    assert mono.shape == (1, 16000)
    spectrum = np.abs(np.fft.rfft(mono[0]))
    assert np.argmax(spectrum) == 440                      # 1 Hz bins over one second
    assert level_db(mono) == pytest.approx(SINE_DB, abs=0.2)


def test_the_ring_returns_the_window_ending_at_a_time_and_flags_missing_audio():
    ring = AudioRing(rate=1000, channels=1, seconds=2.0)
    ring.write(np.arange(1500, dtype=np.float32)[:, None], end_time=10.0)   # sample k arrived at 10 - (1499-k)/1000
    window, underrun = ring.window(9.5, 100)
    assert not underrun and window[0, -1] == 999 and window[0, 0] == 900
    window, underrun = ring.window(10.3, 100)                                # 300 ms past the newest sample
    assert underrun and np.all(window[0, -250:] == 0)
    ring.write(np.ones((3000, 1), np.float32), end_time=13.0)                # more than the ring holds
    window, underrun = ring.window(13.0, 2000)
    assert not underrun and np.all(window == 1)


@pytest.mark.parametrize("sources", [lambda v, w: ["--sensor", "files", "--video", str(v), "--wav", str(w)],
                                     lambda v, w: ["--input", f"file://{v}", "--audio", f"file://{w}"]],
                         ids=["alias", "uri"])
def test_video_and_wav_files_give_each_frame_the_audio_that_ends_at_it(av_onnx, tmp_path, sources):
    video = write_video(tmp_path / "v.mp4", seconds=2.0)
    sound = np.concatenate([sine(44100, 1.0, 2), np.zeros((44100, 2), np.float32)])   # 1 s tone, 1 s silence
    wav = write_wav(tmp_path / "a.wav", sound, 44100)
    out = tmp_path / "p.jsonl"
    assert main([str(av_onnx), *sources(video, wav), "--fast", "--headless",
                 "--jsonl", str(out), "--stats-every", "0"]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 60
    for r in lines:
        if 0.55 <= r["t"] <= 0.95:       # the 0.5 s window lies inside the tone
            assert r["top"][0][0] == "loud" and r["audio_db"] == pytest.approx(SINE_DB, abs=0.5)
        if r["t"] >= 1.55:               # … inside the silence: the picture wins
            assert r["top"][0][0] == "red" and r["audio_db"] == -100.0



def test_truth_scores_the_top_class_at_the_moments_a_file_names(av_onnx, tmp_path):
    """--truth: the tone's second is "loud", the silent second "red"; a moment past the video is missed."""
    video = write_video(tmp_path / "v.mp4", seconds=2.0)
    wav = write_wav(tmp_path / "a.wav", np.concatenate([sine(16000, 1.0, 1), np.zeros((16000, 1), np.float32)]), 16000)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"class_names": ["red", "loud"],   # the file's own order: mapped by name
                                 "clips": [{"eval_s": 0.9, "class": 1}, {"eval_s": 1.9, "class": 0},
                                           {"eval_s": 1.5, "class": 1}, {"eval_s": 9.0, "class": 0}]}))
    stats = tmp_path / "stats.json"
    assert main([str(av_onnx), "--input", str(video), "--audio", str(wav), "--fast", "--headless",
                 "--truth", str(truth), "--stats-json", str(stats), "--stats-every", "0"]) == 0
    result = json.loads(stats.read_text())["truth"]
    assert (result["moments"], result["scored"], result["missed"], result["correct"]) == (4, 3, 1, 2)
    assert result["accuracy"] == pytest.approx(66.67)


def test_a_truth_file_of_other_classes_is_refused_before_anything_runs(av_onnx, tmp_path):
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"class_names": ["cat", "dog"], "clips": [{"eval_s": 1.0, "class": 1}]}))
    video = write_video(tmp_path / "v.mp4", seconds=0.5)
    wav = write_wav(tmp_path / "a.wav", sine(16000, 0.5, 1), 16000)
    assert main([str(av_onnx), "--input", str(video), "--audio", str(wav), "--headless",
                 "--truth", str(truth)]) == 2


@pytest.fixture
def alsa_fifo_mic(tmp_path):
    """HOME with an .asoundrc whose default capture device reads a FIFO; the test writes PCM into it.

    The file plugin reads its infile as fast as asked, so the FIFO paces it: the writer below feeds
    48 kHz stereo float32 in real time, as a microphone would deliver it."""
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(
        f'pcm.mkein {{ type file slave.pcm "null" file "/dev/null" infile "{fifo}" format "raw" }}\n'
        'pcm.!default { type plug slave.pcm "mkein" }\n')
    fd = os.open(fifo, os.O_RDWR)   # held open: readers never block on open and never see end-of-file
    stop = threading.Event()

    def feed(seconds_of_tone, seconds_total):
        rate, block = 48000, 480
        tone = sine(rate, seconds_of_tone, 2)
        start = time.monotonic()
        for k in range(int(seconds_total * rate / block)):
            if stop.is_set():
                return
            chunk = tone[k * block:(k + 1) * block]
            if len(chunk) < block:
                chunk = np.zeros((block, 2), np.float32)
            os.write(fd, chunk.astype("<f4").tobytes())
            time.sleep(max(0.0, start + (k + 1) * block / rate - time.monotonic()))

    yield home, feed
    stop.set()
    os.close(fd)


@pytest.mark.parametrize("sources", [lambda v: ["--sensor", "camera", "--camera", str(v), "--mic", "--mic-rate", "48000",
                                                 "--mic-channels", "2"],
                                     lambda v: ["--input", str(v), "--audio", "mic://?rate=48000&channels=2"]],
                         ids=["alias", "uri"])
def test_microphone_capture_through_sounddevice_and_alsa(av_onnx, alsa_fifo_mic, tmp_path, sources):
    pytest.importorskip("sounddevice")
    home, feed = alsa_fifo_mic
    video = write_video(tmp_path / "v.mp4", seconds=4.0)
    out = tmp_path / "p.jsonl"
    env = dict(os.environ, HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "mke.runtime.cli", str(av_onnx), *sources(video), "--headless",
                             "--jsonl", str(out), "--stats-every", "0"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        started = [proc.stderr.readline() for _ in range(2)]   # the model line, then the source line once open
        assert "source:" in started[-1], started
        writer = threading.Thread(target=feed, args=(2.5, 6.0), daemon=True)   # 2.5 s of tone, then silence
        writer.start()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(started) + err
    assert proc.returncode == 0, err
    assert "microphone 'default' at 48000 Hz, 2 ch" in err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) >= 60                                        # 4 s of video at 30 FPS, real time
    loud = [r for r in lines if r["top"][0][0] == "loud"]
    assert len(loud) >= 20                                          # the tone reached the model …
    assert np.median([r["audio_db"] for r in loud]) == pytest.approx(SINE_DB, abs=1.0)   # … resampled, downmixed
    assert lines[-1]["top"][0][0] == "red" and lines[-1]["audio_db"] < -60               # and then the silence did
