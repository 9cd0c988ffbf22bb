"""Data that does not fit in memory: the built-in rooms written straight to disk (the same bytes as the
in-memory writer, on any number of processes or ranks), read memory-mapped, and lazy splits whose
batches — preprocessed by DataLoader workers — are the in-memory batches to the last bit."""
import hashlib

import numpy as np
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.config import resolve_config
from mke.train.data import LazyInputs, LoaderSettings, Split, TensorRows
from mke.train.datasets import builtin_rgbd
from mke.train.datasets.builtin_rgbd import cache_dir, load_builtin_rgbd
from mke.train.datasets.frame_cache import npz_memmaps

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["data.width=64", "data.height=48", "data.labeled={rooms: 2, frames: 5}", "data.unlabeled={rooms: 3, frames: 10}",
        "data.test={rooms: 1, frames: 3}", "data.recording.frames=0", "preprocess.rgb.size=[24, 32]",
        "preprocess.depth.size=[24, 32]"]

# sha256 (first 16 hex digits) of each array of TINY's splits as the writer before issue 16 stored them
# (np.savez of the rooms stacked in memory), measured on this project's CPU machine on 2026-12-02.
BEFORE = {
    "labeled/rgb": "b228ce662b72047b", "labeled/depth_mm": "973f73864bf7f9ae", "labeled/labels": "f00e0444238a4691",
    "labeled/intrinsics": "a8f2a067b40f2e8d", "labeled/up": "ef204bc2180d637d", "labeled/room": "6598ec09c0b8943e",
    "unlabeled/rgb": "a04558f9e169c03e", "unlabeled/depth_mm": "5ba5ec8ceff6ec55",
    "unlabeled/labels": "99aef03b7bf44acf", "unlabeled/intrinsics": "ef4ae3c0e34bcf23",
    "unlabeled/up": "f2709d07469e62c7", "unlabeled/room": "48f4ecf3c9006327",
    "test/rgb": "7d05656dc479e52a", "test/depth_mm": "66af61c2eb4de4c7", "test/labels": "b372597a233bcb93",
    "test/intrinsics": "e00bf33fe1d0b4df", "test/up": "c777293fe2253676", "test/room": "9d908ecfb6b256de",
}


def _digests(folder) -> dict:
    out = {}
    for name in builtin_rgbd.SPLITS:
        with np.load(folder / f"{name}.npz") as z:
            for key in z.files:
                out[f"{name}/{key}"] = hashlib.sha256(np.ascontiguousarray(z[key]).tobytes()).hexdigest()[:16]
    return out


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    cfg = resolve_config("rgbd", None, TINY + [f"data.cache_dir={tmp_path_factory.mktemp('cache')}"])
    cfg["device"] = "cpu"
    load_builtin_rgbd(cfg["data"], progress=False)
    return cfg


def test_the_streamed_cache_holds_the_arrays_the_in_memory_writer_stored(tiny_cfg):
    folder = cache_dir(tiny_cfg["data"])
    assert sorted(p.name for p in folder.iterdir()) == ["data.json", "labeled.npz", "test.npz", "unlabeled.npz"]
    digests = _digests(folder)
    assert list(digests) == list(BEFORE)  # the same arrays, in the same order, in each .npz
    assert digests == BEFORE
    # and the same as rendering the rooms in memory and stacking them, here and now
    rendered = builtin_rgbd._render_data(["unlabeled"], tiny_cfg["data"], progress=False, workers=1)
    stacked = builtin_rgbd._stack_rooms(rendered["unlabeled"])
    with np.load(folder / "unlabeled.npz") as z:
        for key, array in stacked.items():
            np.testing.assert_array_equal(z[key], array, err_msg=key)
            assert z[key].dtype == array.dtype


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _render_rank(rank: int, world: int, port: int, data_cfg: dict) -> None:
    """One torchrun-like rank: the process group over gloo, then the cache built together."""
    import os

    from mke.train import distributed

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    distributed.init("cpu")
    try:
        builtin_rgbd.build_cache(data_cfg, progress=False, workers=1)
    finally:
        distributed.shutdown()


def test_two_ranks_render_their_rooms_into_one_cache_with_the_same_bytes(tiny_cfg, tmp_path):
    data = {**tiny_cfg["data"], "cache_dir": str(tmp_path)}
    torch.multiprocessing.spawn(_render_rank, args=(2, _free_port(), data), nprocs=2)
    folder = cache_dir(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no building folder left behind
    assert sorted(p.name for p in folder.iterdir()) == ["data.json", "labeled.npz", "test.npz", "unlabeled.npz"]
    assert _digests(folder) == BEFORE


def test_the_npz_is_read_memory_mapped_and_old_caches_read_alike(tmp_path):
    arrays = {"rgb": np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3), "up": np.eye(3)[:2],
              "empty": np.zeros((0, 3), np.float32)}
    with open(tmp_path / "old.npz", "wb") as f:
        np.savez(f, **arrays)  # how caches were written before: np.savez, uncompressed
    np.savez_compressed(tmp_path / "small.npz", **arrays)
    for name, mapped in [("old.npz", True), ("small.npz", False)]:
        got = npz_memmaps(tmp_path / name)
        assert list(got) == list(arrays)
        for key, array in arrays.items():
            np.testing.assert_array_equal(got[key], array)
            assert got[key].dtype == array.dtype
        assert isinstance(got["rgb"], np.memmap) == mapped
    got = npz_memmaps(tmp_path / "old.npz")
    got["rgb"][0, 0, 0] = 99  # copy-on-write: the array may change, the file does not
    assert np.load(tmp_path / "old.npz")["rgb"][0, 0, 0, 0] == 0


def test_loaded_frames_stay_on_disk(tiny_cfg):
    frames = load_builtin_rgbd(tiny_cfg["data"], progress=False)
    assert all(isinstance(frames[s].rgb, np.memmap) for s in builtin_rgbd.SPLITS)
    assert isinstance(frames["unlabeled"].depth_mm, np.memmap) and isinstance(frames["test"].labels, np.memmap)


def _task_data(cfg, *overrides):
    from mke.train.config import apply_overrides
    from mke.train.tasks.rgbd import RGBDTask

    cfg = apply_overrides(cfg, list(overrides))
    return RGBDTask().build_data(cfg)


def test_a_lazy_split_batches_exactly_as_the_in_memory_one(tiny_cfg):
    eager = _task_data(tiny_cfg)
    lazy = _task_data(tiny_cfg, "loader.in_memory_mb=0", "loader.num_workers=1")
    assert eager.unlabeled.lazy is None and isinstance(eager.unlabeled.inputs["rgb"], torch.Tensor)
    assert isinstance(lazy.unlabeled.inputs["rgb"], LazyInputs) and lazy.unlabeled.lazy.num_workers == 1
    assert lazy.unlabeled.inputs["depth"].shape == eager.unlabeled.inputs["depth"].shape
    for split in ("labeled", "unlabeled", "test"):
        for name, tensor in getattr(eager, split).inputs.items():
            assert torch.equal(getattr(lazy, split).inputs[name][:], tensor), (split, name)
    g_eager, g_lazy = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(2):  # two passes: the loader and its worker are reused, the draws go on alike
        pairs = list(zip(eager.unlabeled.batches(4, True, g_eager), lazy.unlabeled.batches(4, True, g_lazy)))
        assert len(pairs) == 3
        for a, b in pairs:
            assert all(torch.equal(a.inputs[m], b.inputs[m]) for m in a.inputs) and torch.equal(a.targets, b.targets)
    assert torch.equal(g_eager.get_state(), g_lazy.get_state())
    ranks = [list(lazy.unlabeled.batches(4, True, torch.Generator().manual_seed(3), rank=r, world=2)) for r in range(2)]
    first = next(eager.unlabeled.batches(4, True, torch.Generator().manual_seed(3)))
    assert torch.equal(torch.cat([ranks[0][0].inputs["rgb"], ranks[1][0].inputs["rgb"]]), first.inputs["rgb"])


def test_lazy_splits_concatenate_and_cut_lazily(tiny_cfg):
    eager = _task_data(tiny_cfg)
    lazy = _task_data(tiny_cfg, "loader.in_memory_mb=0", "loader.num_workers=-1")  # -1: made in this process
    assert lazy.unlabeled.lazy.num_workers == 0
    both = Split.concat([lazy.labeled, lazy.unlabeled.select(("rgb",))])
    want = Split.concat([eager.labeled, eager.unlabeled.select(("rgb",))])
    assert isinstance(both.inputs["rgb"], LazyInputs) and len(both) == len(want) == 15
    index = torch.tensor([14, 0, 7, 5, 4])
    assert torch.equal(both.take(index).inputs["rgb"], want.take(index).inputs["rgb"])
    part = lazy.unlabeled.part(2, 7)
    assert isinstance(part.inputs["depth"], LazyInputs)
    assert torch.equal(part.inputs["depth"][:], eager.unlabeled.inputs["depth"][2:7])
    mixed = LazyInputs.cat([eager.test.inputs["rgb"], lazy.test.inputs["rgb"]])
    assert torch.equal(mixed[:], torch.cat([eager.test.inputs["rgb"]] * 2))
    with pytest.raises(MkeError, match="cannot concatenate inputs"):
        LazyInputs.cat([lazy.test.inputs["rgb"], LazyInputs([TensorRows(torch.zeros(2, 1))])])


def test_a_teacher_trains_to_the_same_weights_on_lazy_data(tiny_cfg):
    from mke.train.fit import fit
    from mke.train.methods import NO_REG, augmentation
    from mke.train.tasks.rgbd import RGBDTask

    task = RGBDTask()
    cfg = {**tiny_cfg, "model": {**tiny_cfg["model"], "encoder": "tiny", "decoder_width": 8}}
    optim = {"name": "adamw", "lr": 0.003, "epochs": 2, "batch_size": 5}
    weights = []
    for data in (_task_data(tiny_cfg), _task_data(tiny_cfg, "loader.in_memory_mb=0", "loader.num_workers=1")):
        torch.manual_seed(0)
        model = task.build_model(cfg, "teacher", ("rgb",), NO_REG)
        fit(model, data.unlabeled.select(("rgb",)), optim, augmentation("teacher", {"flip": True}), seed=0, task=task)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_loader_settings_follow_the_machine():
    cfg = resolve_config("rgbd", None, [])
    cfg["device"] = "cpu"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        auto = LoaderSettings.of(cfg)
        assert (auto.num_workers, auto.pin_memory, auto.persistent_workers, auto.prefetch_factor) == (2, False, True, 2)
        torch.set_num_threads(1)
        assert LoaderSettings.of(cfg).num_workers == 1  # at least one
    finally:
        torch.set_num_threads(threads)
    none = LoaderSettings.of({**cfg, "loader": {**cfg["loader"], "num_workers": -1}})
    assert (none.num_workers, none.persistent_workers, none.prefetch_factor) == (0, False, None)
    with pytest.raises(MkeError, match="loader.pin_memory must be auto, always or never"):
        LoaderSettings.of({**cfg, "loader": {**cfg["loader"], "pin_memory": "yes"}})
