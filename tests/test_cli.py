"""The three console scripts, run as a user runs them."""
import subprocess

import pytest


def run(venv_bin, *args, cwd=None):
    return subprocess.run([str(venv_bin / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", ["mke-train", "mke-export", "mke-live"])
def test_every_command_answers_help(venv_bin, command):
    out = run(venv_bin, command, "--help")
    assert out.returncode == 0 and "usage:" in out.stdout and len(out.stdout) > 200


def test_live_errors_are_one_line_with_exit_2(venv_bin, tmp_path):
    out = run(venv_bin, "mke-live", str(tmp_path / "missing.onnx"), "--sensor", "sim", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"mke-live: error: model file {tmp_path / 'missing.onnx'} does not exist\n"


def test_live_lists_its_sources(venv_bin):
    out = run(venv_bin, "mke-live", "--list-inputs")
    assert out.returncode == 0 and out.stdout.startswith("--input URI")
    for form in ("realsense://[SERIAL]", "file://REC.db3", "v4l2:///dev/video0", "csi://0", "rtsp://", "sim://",
                 "mic://[DEVICE]", "file://X.wav"):
        assert form in out.stdout


def test_export_of_something_that_is_not_a_run_is_a_one_line_error(venv_bin, tmp_path):
    out = run(venv_bin, "mke-export", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == f"mke-export: error: {tmp_path / 'nowhere'} is not an mke-train run (no config.yaml there)"
    assert not (tmp_path / "exports").exists()


def test_train_errors_are_one_line_with_exit_2(venv_bin, tmp_path):
    out = run(venv_bin, "mke-train", "--task", "twomoon", "seeds=2", "studnet.hidden_mm=3", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith("mke-train: error: unknown config key 'studnet.hidden_mm' (did you mean 'student.hidden_mm'")
    assert not (tmp_path / "runs").exists()  # nothing was started
    out = run(venv_bin, "mke-train", "--task", "twomon", cwd=tmp_path)
    assert out.returncode == 2 and "did you mean 'twomoon'" in out.stderr
    for task in ("ravdess", "vggsound"):   # a dataset the user has: say where
        out = run(venv_bin, "mke-train", "--task", task, cwd=tmp_path)
        assert out.returncode == 2 and "data.root" in out.stderr and out.stderr.count("\n") == 1


def test_list_tasks_and_print_config(venv_bin):
    out = run(venv_bin, "mke-train", "--list-tasks")
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert out.returncode == 0 and {"twomoon", "rgbd", "nyuv2"} <= set(lines)
    assert "TwoMoon" in lines["twomoon"] and "not built yet" not in lines["rgbd"]
    assert {"av", "ravdess", "events", "vggsound"} <= set(lines)
    assert not any("not built yet" in line for line in lines.values())
    out = run(venv_bin, "mke-train", "--task", "twomoon", "--print-config", "seeds=4")
    assert out.returncode == 0 and "seeds: 4" in out.stdout
    assert "top_k: 0" in out.stdout and "examples: 4" in out.stdout  # configs/defaults.yaml, merged under
