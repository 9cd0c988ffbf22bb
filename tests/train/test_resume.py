"""A training killed mid-epoch continues from its last finished epoch and ends where an uninterrupted
one ends: exactly in one process, and for a 2-process torchrun run killed with SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mke.train import train_state
from mke.train.data import Split
from mke.train.fit import OptimSettings, Throughput, fit
from mke.train.methods import Regularization

OPTIM = {"name": "adamw", "lr": 0.01, "epochs": 5, "batch_size": 8, "schedule": "cosine"}
BIN = os.path.dirname(sys.executable)
REG = Regularization(kind="input_noise", strength="strong", input_noise=0.3, dropout=0.2)


class Net(torch.nn.Module):
    """Batch norm (running statistics), dropout (global RNG) and a 4-D input (channels-last path)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.drop = torch.nn.Dropout(0.2)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.bn(self.conv(x)))).mean((2, 3)))


def _model():
    torch.manual_seed(7)
    return Net()


def _split():
    g = torch.Generator().manual_seed(3)
    return Split({"x": torch.randn(36, 2, 6, 6, generator=g)}, torch.randint(0, 3, (36,), generator=g))


class Killed(Exception):
    pass


def test_a_resumed_training_ends_exactly_where_an_uninterrupted_one_ends(tmp_path):
    whole = fit(_model(), _split(), OPTIM, REG, seed=1)

    state = tmp_path / "net.state.pt"

    def killed_after_epoch_2(epoch, loss):
        if epoch == 1:
            raise Killed  # the process dies after the state of epoch 2 was written

    with pytest.raises(Killed):
        fit(_model(), _split(), OPTIM, REG, seed=1, state_path=state, on_epoch=killed_after_epoch_2)
    model = _model()
    fingerprint = train_state.fingerprint(model, OptimSettings.of(OPTIM), REG, 1, 36, "fp32")
    assert train_state.read(state, fingerprint)["epoch"] == 2
    torch.manual_seed(12345)  # whatever ran in between: the state brings back the RNG
    epochs = []
    speed = Throughput()
    resumed = fit(model, _split(), OPTIM, REG, seed=1, state_path=state, throughput=speed,
                  on_epoch=lambda e, loss: epochs.append(e))
    assert epochs == [2, 3, 4]
    assert speed.samples == 3 * 36  # only the epochs it ran
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_state_of_other_settings_is_not_resumed(tmp_path, capsys):
    state = tmp_path / "net.state.pt"
    train_state.write(state, {"fingerprint": "0000", "epoch": 3})
    epochs = []
    fit(_model(), _split(), OPTIM, REG, seed=1, state_path=state, on_epoch=lambda e, loss: epochs.append(e))
    assert epochs == [0, 1, 2, 3, 4]
    assert "not resuming" in capsys.readouterr().err
    assert torch.load(state, weights_only=True)["epoch"] == 5  # overwritten by this training's own


# ---------------------------------------------------------------- a 2-process run killed with SIGKILL

pytestmark_dist = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this PyTorch has no torch.distributed gloo backend")

RGBD = ["seeds=1", "workers=1", "data.width=80", "data.height=60", "data.labeled={rooms: 4, frames: 32}",
        "data.unlabeled={rooms: 4, frames: 16}", "data.test={rooms: 2, frames: 8}", "data.recording.frames=0",
        "preprocess.rgb.size=[60, 80]", "preprocess.depth.size=[60, 80]", "teacher.optim.epochs=8",
        "student.optim.epochs=1", "teacher.optim.batch_size=8", "student.optim.batch_size=8",
        "teacher.augment={flip: true}", "precision=fp32", "methods=[UM teacher]", "train_state.every_s=0"]


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                out.append(int(stat))
    return out


def _kill_run(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and its ranks (each rank leads a session of its own: torchrun starts them so)."""
    for pid in _children(proc.pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.killpg(proc.pid, signal.SIGKILL)


def _torchrun(args):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--no-python",
            os.path.join(BIN, "mke-train"), *args], env


@pytestmark_dist
def test_a_killed_two_process_run_resumes_from_its_last_epoch(tmp_path):
    common = ["--task", "rgbd", "--runs-dir", str(tmp_path), "--no-progress", f"data.cache_dir={tmp_path / 'cache'}",
              *RGBD]
    cmd, env = _torchrun([*common, "--name", "whole"])
    whole = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr

    cmd, env = _torchrun([*common, "--name", "killed"])
    state = tmp_path / "killed" / "seed0" / "teacher.state.pt"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not state.is_file():  # the first epoch's state: the kill lands in a later epoch
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before writing a state"
            time.sleep(0.05)
        _kill_run(proc)  # torchrun and both ranks, mid-epoch, without a chance to clean up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            _kill_run(proc)
    written = torch.load(state, weights_only=True)
    assert 1 <= written["epoch"] < 8 and written["world"] == 2

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    said = again.stdout + again.stderr  # torchrun may pass the ranks' stderr on to its stdout
    assert "resuming teacher.state.pt after epoch " in said, said
    resumed_at = int(said.split("resuming teacher.state.pt after epoch ")[1].split()[0])
    assert resumed_at >= written["epoch"]
    assert not state.exists()  # deleted once the teacher's checkpoint was written
    one = json.loads((tmp_path / "whole" / "metrics.json").read_text())["results"][0]
    two = json.loads((tmp_path / "killed" / "metrics.json").read_text())["results"][0]
    # same ranks, the state restores every rank's RNG: the same training to the last digit (gloo's
    # 2-rank sums are deterministic); docs/scale.md states it
    assert two["per_seed"] == one["per_seed"]


def _plain_model():
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(72, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


class Flat(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _plain_model()

    def forward(self, x):
        return self.net(x)


SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 4, "batch_size": 12, "schedule": "cosine"}
NO_T = Regularization()


def _two_ranks_then_killed(rank: int, port: int, state: str) -> None:
    from mke.train import distributed

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": "2",
                       "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"})
    torch.set_num_threads(1)
    distributed.init("cpu")

    def killed_after_epoch_2(epoch, loss):
        if epoch == 1:
            raise Killed

    try:
        fit(Flat(), _split(), SGD, NO_T, seed=1, state_path=state, on_epoch=killed_after_epoch_2)
    except Killed:
        pass
    distributed.shutdown()


@pytestmark_dist
def test_a_state_written_by_two_ranks_resumes_in_one_process(tmp_path, monkeypatch):
    import socket

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "flat.state.pt"
    torch.multiprocessing.spawn(_two_ranks_then_killed, args=(port, str(state)), nprocs=2)
    written = torch.load(state, weights_only=True)
    assert (written["epoch"], written["world"], len(written["rng"])) == (2, 2, 2)
    torch.set_num_threads(1)
    epochs = []
    resumed = fit(Flat(), _split(), SGD, NO_T, seed=1, state_path=state, on_epoch=lambda e, loss: epochs.append(e))
    whole = fit(Flat(), _split(), SGD, NO_T, seed=1)
    assert epochs == [2, 3]
    # model, optimizer and schedule carry over; no noise or dropout here, so only float rounding differs
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
