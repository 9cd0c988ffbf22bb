"""mke-train under torchrun: the collectives with real processes over gloo, and a small RGB-D run on
2 processes that gives the metrics of 1 process (docs/scale.md states the tolerance and why) and, on 2
nodes of 1 process each through torchrun's c10d rendezvous, the metrics of the 2 processes exactly."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mke.train import distributed

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="this PyTorch has no torch.distributed gloo backend")

BIN = Path(sys.executable).parent
TOLERANCE_MIOU = 1.0  # points of mIoU: docs/scale.md, "1 process vs 2" (measured here: 0.20 and 0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _helpers_on_rank(rank: int, size: int, port: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(size), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(size)})
    me = distributed.init("cpu")
    assert distributed.init("cpu") == me  # idempotent: one process group
    seen = {"world": [me.rank, me.size, me.local_rank, me.main],
            "gathered": distributed.all_gather_object({"rank": me.rank}),
            "broadcast": distributed.broadcast_object(f"from {me.rank}"),
            "mean": distributed.reduce_mean(torch.tensor([float(me.rank), 10.0 * me.rank])).tolist(),
            "backend": torch.distributed.get_backend()}
    distributed.barrier()
    distributed.shutdown()
    Path(out, f"rank{rank}.json").write_text(json.dumps(seen))


def test_the_helpers_with_two_real_processes(tmp_path):
    torch.multiprocessing.spawn(_helpers_on_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert seen["world"] == [rank, 2, rank, rank == 0]
        assert seen["gathered"] == [{"rank": 0}, {"rank": 1}]
        assert seen["broadcast"] == "from 0"
        assert seen["mean"] == [0.5, 5.0]
        assert seen["backend"] == "gloo"


def test_without_torchrun_this_process_is_a_world_of_one(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.world() == distributed.World(0, 1, 0) and distributed.world().main
    assert distributed.init("cpu") == distributed.World(0, 1, 0)
    assert not torch.distributed.is_initialized()
    t = torch.tensor([1.0, 2.0])
    assert distributed.reduce_mean(t) is t
    assert distributed.all_gather_object(3) == [3] and distributed.broadcast_object("x") == "x"
    distributed.barrier()


def test_a_bad_torchrun_environment_is_named(monkeypatch):
    from mke.runtime.errors import MkeError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(MkeError, match="RANK=5 is outside"):
        distributed.world()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity masks on this system")
def test_each_machine_shares_the_cores_it_is_given(monkeypatch):
    """Threads per process: the cores of this process's affinity mask over the torchrun processes of
    its machine (LOCAL_WORLD_SIZE), whatever the other machines have."""
    cores = os.sched_getaffinity(0)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert distributed.cores_per_process() == len(cores)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(len(cores)))
    assert distributed.cores_per_process() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * len(cores)))
    assert distributed.cores_per_process() == 1  # never 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    os.sched_setaffinity(0, {min(cores)})  # this thread on one core, as under taskset or a cpuset
    try:
        assert distributed.cores_per_process() == 1
    finally:
        os.sched_setaffinity(0, cores)


# A small RGB-D run: 80×60 rooms, every global batch of 8 divides by 2 ranks (no padding); no per-sample
# augmentation and no class weights, whose draws and normalisation follow the ranks' half batches
# (docs/scale.md); SGD, which does not blow float rounding up as Adam's normalised steps do.
# workers=2: one thread per training in one process (a single unit runs inline with cores / workers
# threads), as each of the 2 ranks has.
RGBD = ["seeds=1", "workers=2", "data.width=80", "data.height=60", "data.labeled={rooms: 4, frames: 32}",
        "data.unlabeled={rooms: 4, frames: 32}", "data.test={rooms: 2, frames: 8}", "data.recording.frames=0",
        "preprocess.rgb.size=[60, 80]", "preprocess.depth.size=[60, 80]",
        "teacher.optim={name: sgd, lr: 0.05, momentum: 0.9, epochs: 3, batch_size: 8, schedule: cosine}",
        "student.optim={name: sgd, lr: 0.05, momentum: 0.9, epochs: 3, batch_size: 8, schedule: cosine}",
        "teacher.augment={}", "loss.class_weighting=none", "precision=fp32", "methods=[UM teacher, MM student (no reg)]"]


def _cells(metrics: dict) -> dict:
    return {r["method"]: r["mean"] for r in metrics["results"]}


def mke_train(args: list[str], procs: int, **kw) -> subprocess.CompletedProcess:
    """`mke-train ARGS` as a user runs it: directly, or under torchrun with `procs` processes."""
    if procs == 1:
        cmd = [str(BIN / "mke-train"), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
               "--no-python", str(BIN / "mke-train"), *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, **kw)


def _env() -> dict:
    return {k: v for k, v in os.environ.items()
            if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")}


def mke_train_on_nodes(args: list[str], nodes: int, timeout: float) -> list[tuple[int, str, str]]:
    """`mke-train ARGS` on `nodes` "machines" of 1 process each, as a user starts it on each machine of a
    multi-node run: one torchrun agent a node, all meeting through the c10d rendezvous on this machine's
    loopback. Each agent (and its rank) is confined to its own equal share of this process's cores, as
    on a machine of that many cores: its rank trains with the threads of a rank of `--nproc-per-node
    nodes` on this machine. (exit status, stdout, stderr) of each agent. A node that never arrives fails the others after the
    rendezvous' join_timeout; whatever still runs after `timeout` s is killed."""
    endpoint = f"127.0.0.1:{_free_port()}"
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // nodes)
    agents = []
    try:
        for node in range(nodes):
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", "--nproc-per-node=1",
                   "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=mke-test",
                   "--rdzv-conf=join_timeout=60", "--local-addr=127.0.0.1",
                   "--no-python", str(BIN / "mke-train"), *args]
            mine = set(cores[node * share:(node + 1) * share])
            agents.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           start_new_session=True, preexec_fn=lambda c=mine: os.sched_setaffinity(0, c)))
        deadline = time.monotonic() + timeout
        outs = [agent.communicate(timeout=max(1.0, deadline - time.monotonic())) for agent in agents]
        return [(agent.returncode, out, err) for agent, (out, err) in zip(agents, outs)]
    finally:
        for agent in agents:
            if agent.poll() is None:  # timed out: the agent and its worker are in their own session
                os.killpg(agent.pid, signal.SIGKILL)
                agent.communicate()


@pytest.fixture(scope="module")
def rgbd_runs(tmp_path_factory):
    """The small RGB-D run trained by 1 process and by 2 (torchrun --standalone), in one runs folder."""
    root = tmp_path_factory.mktemp("rgbd_runs")
    common = ["--task", "rgbd", "--runs-dir", str(root), "--no-progress", f"data.cache_dir={root / 'cache'}", *RGBD]
    one = mke_train([*common, "--name", "one"], 1, timeout=300)
    assert one.returncode == 0, one.stderr
    two = mke_train([*common, "--name", "two"], 2, timeout=300)
    assert two.returncode == 0, two.stderr
    return root, two


def test_two_processes_give_the_metrics_of_one(rgbd_runs):
    root, two = rgbd_runs
    assert "data-parallel on 2 processes" in two.stdout
    assert "workers=2 is ignored under torchrun" in two.stdout + two.stderr
    assert two.stdout.count("report:") == 1  # rank 0 alone reports
    m1 = json.loads((root / "one" / "metrics.json").read_text())
    m2 = json.loads((root / "two" / "metrics.json").read_text())
    c1, c2 = _cells(m1), _cells(m2)
    assert set(c1) == set(c2) == {"UM teacher", "MM student (no reg)"}
    for method in c1:
        assert abs(c1[method] - c2[method]) <= TOLERANCE_MIOU, (method, c1[method], c2[method])
    for stage in ("teacher", "students"):  # both measured their speed, all ranks' samples counted
        assert m2["throughput"][stage]["samples_per_s"] > 0 and 0 <= m2["throughput"][stage]["data_wait_share"] < 1
    result = json.loads((root / "two" / "seed0" / "teacher.json").read_text())
    assert result["throughput"]["samples"] == 3 * 32  # 3 epochs of 32 frames, counted over both ranks
    # the ranks trained one model: rank 1 wrote no file of its own, no training state is left behind
    assert not list((root / "two").rglob("*.state.pt"))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="2 nodes of their own cores need 2 cores and affinity masks")
def test_two_nodes_give_the_metrics_of_two_processes(rgbd_runs):
    """2 torchrun agents ("machines") of 1 process each, through the c10d rendezvous: every rank is
    LOCAL_RANK 0 of a machine of 1 process and only global rank 0 writes. Each node renders its
    share of the built-in data into a cache folder of their own (data.cache_dir, shared as across
    machines) and labels its shards of D_u. Same world size, ranks and threads per rank as the
    2-process run, and a 2-rank gloo sum is the same whichever rank adds: the same run to the last
    digit (docs/scale.md, "Across machines")."""
    root, _ = rgbd_runs
    args = ["--task", "rgbd", "--runs-dir", str(root), "--no-progress", f"data.cache_dir={root / 'cache-nodes'}",
            "--name", "nodes", *RGBD]
    agents = mke_train_on_nodes(args, 2, timeout=300)
    for rc, out, err in agents:
        assert rc == 0, err[-3000:]
    stdout = "".join(out for _, out, _ in agents)
    assert stdout.count("data-parallel on 2 processes") == 1 and stdout.count("report:") == 1  # global rank 0 alone
    two = json.loads((root / "two" / "metrics.json").read_text())
    nodes = json.loads((root / "nodes" / "metrics.json").read_text())
    assert _cells(nodes) == _cells(two)
    assert nodes["pseudo_labels"]["score_on_unlabeled"] == two["pseudo_labels"]["score_on_unlabeled"]
    # the ranks of both nodes rendered one cache: the same files as the one rendered by 1 process
    rendered = sorted(p.relative_to(root / "cache") for p in (root / "cache").rglob("*.npz"))
    assert rendered and rendered == sorted(p.relative_to(root / "cache-nodes") for p in (root / "cache-nodes").rglob("*.npz"))
    for path in rendered:
        assert (root / "cache" / path).read_bytes() == (root / "cache-nodes" / path).read_bytes(), path
    assert not list((root / "nodes").rglob("*.state.pt")) and not list((root / "nodes").rglob("*.shard-*"))


class Plain(torch.nn.Module):
    def __init__(self, batch_norm: bool = False):
        super().__init__()
        norm = [torch.nn.BatchNorm1d(8)] if batch_norm else []
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), *norm, torch.nn.ReLU(), torch.nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


class OwnLoss(torch.nn.Module):
    """A network that computes its whole training loss itself, with a part only that loss uses (as DMD)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        self.aux = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.body(x)

    def training_loss(self, inputs, targets, weights, kind):
        return kind.loss(self(**inputs), targets, weights, None) + 0.1 * self.aux(inputs["x"]).pow(2).mean()


MODELS = {"plain": Plain, "own_loss": OwnLoss, "batch_norm": lambda: Plain(batch_norm=True)}


def _new_small(name: str) -> torch.nn.Module:
    torch.manual_seed(1)
    return MODELS[name]()


def _initial(name: str) -> dict:
    return {k: v.tolist() for k, v in _new_small(name).state_dict().items()}


def _fit_small(name: str):
    from mke.train.data import Split
    from mke.train.fit import fit
    from mke.train.methods import NO_REG

    g = torch.Generator().manual_seed(0)
    split = Split({"x": torch.randn(32, 4, generator=g)}, torch.randint(0, 3, (32,), generator=g))
    model = _new_small(name)
    optim = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "epochs": 3, "batch_size": 8, "schedule": "cosine"}
    fit(model, split, optim, NO_REG, seed=0)
    return {k: v.tolist() for k, v in model.state_dict().items()}


def _fit_on_rank(rank: int, size: int, port: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(size), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(size)})
    torch.set_num_threads(1)
    distributed.init("cpu")
    weights = {name: _fit_small(name) for name in MODELS}
    distributed.shutdown()
    Path(out, f"rank{rank}.json").write_text(json.dumps(weights))


def test_data_parallel_fit_takes_the_one_process_steps(tmp_path, monkeypatch):
    """Shares of each global batch on 2 ranks + DDP's gradient average = the 1-process gradient, for a
    plain model, one with its own training loss and one with batch norm (statistics, running ones
    included, over the global batch: mke.train.sync_batchnorm) — float rounding only."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(1)
    alone = {name: _fit_small(name) for name in MODELS}
    torch.multiprocessing.spawn(_fit_on_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # one model: every rank holds the same weights
    for model in MODELS:
        for key, value in alone[model].items():
            got, want = torch.tensor(ranks[0][model][key]), torch.tensor(value)
            assert torch.allclose(got, want, atol=1e-5), (model, key, (got - want).abs().max())
        assert any(ranks[0][model][k] != v for k, v in _initial(model).items())  # it did train
