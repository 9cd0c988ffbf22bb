"""Audio-visual splits larger than `loader.in_memory_mb` are lazy (`split_inputs`, shared with the
segmentation tasks): clips stay in their memory-mapped cache, the int16 sound is made float32 clip by
clip, and the inputs, batches and targets are those of the in-memory split to the last bit."""
import copy

import numpy as np
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.config import apply_overrides, resolve_config
from mke.train.data import LazyInputs, split_inputs
from mke.train.datasets import builtin_av
from mke.train.datasets.frame_arrays import FrameArray, rows_of
from mke.train.datasets.frame_cache import npz_memmaps
from mke.train.tasks import get_task
from mke.train.tasks.audiovisual import PreprocessedClips

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, RATE = 6, 16000


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A built-in av split's `.npz` as the generator writes it (np.savez, uncompressed): random images and
    sound with the int16 extremes in it."""
    folder = tmp_path_factory.mktemp("av")
    rng = np.random.default_rng(0)
    audio = rng.integers(-32768, 32768, (N, 2 * RATE), dtype=np.int16)
    audio[0, :2], audio[1, :2] = (-32768, 32767), (0, -1)
    arrays = {"frames": rng.integers(0, 256, (N, 4, 32, 32, 3), dtype=np.uint8), "audio": audio,
              "labels": np.arange(N, dtype=np.int64) % 8, "actors": np.arange(N, dtype=np.int64),
              "snr_db": rng.uniform(6, 20, N)}
    with open(folder / "test.npz", "wb") as f:
        np.savez(f, **arrays)
    return folder, arrays


@pytest.fixture(scope="module")
def clips(cache):
    folder, _ = cache
    return builtin_av._read_split(folder, "test", builtin_av.data_settings({}))


def config(*overrides):
    cfg = resolve_config("av", None, ["device=cpu", *overrides])
    return cfg


def test_the_cache_is_read_memory_mapped_and_the_sound_per_clip_as_it_was_whole(cache, clips):
    _, arrays = cache
    assert isinstance(clips.frames, np.memmap) and isinstance(clips.audio, FrameArray)
    assert isinstance(clips.audio.read.array, np.memmap) and clips.audio.shape == (N, 2 * RATE)
    whole = arrays["audio"].astype(np.float32) / np.float32(32768.0)   # how the loaders converted it before
    assert clips.audio.dtype == np.float32 and np.asarray(clips.audio).tobytes() == whole.tobytes()
    for i in range(N):
        assert clips.audio[i].tobytes() == whole[i].tobytes()
    assert clips.audio[0, 0] == -1.0 and clips.audio[0, 1] == np.float32(32767 / 32768)
    assert np.array_equal(clips.frames, arrays["frames"]) and clips.meta["snr_db"].tolist() == arrays["snr_db"].tolist()
    assert clips.clip_seconds == 2.0 and len(clips) == N


def test_rows_of_picks_rows_without_copying_and_checks_pcm(cache):
    folder, arrays = cache
    mapped = npz_memmaps(folder / "test.npz")
    rows = np.array([4, 1, 1, 5])
    frames = rows_of(mapped["frames"], rows, name="some frames")
    assert frames.shape == (4, 4, 32, 32, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[:], arrays["frames"][rows]) and np.array_equal(frames[[3, 0]], arrays["frames"][[5, 4]])
    audio = rows_of(mapped["audio"], rows, pcm=True)
    assert audio[:].tobytes() == (arrays["audio"][rows].astype(np.float32) / np.float32(32768.0)).tobytes()
    with pytest.raises(MkeError, match=r"some frames: PCM audio must be int16, got uint8"):
        rows_of(mapped["frames"], pcm=True, name="some frames")


def before(clips_arrays, cfg, task):
    """The inputs as `_samples` made them before they could be lazy: the cache read whole, the sound
    converted at once, each clip preprocessed and stacked."""
    frames = clips_arrays["frames"]
    audio = clips_arrays["audio"].astype(np.float32) / np.float32(32768.0)
    rgb, sound = task.input_modality("rgb"), task.input_modality("audio")
    rgb_params, sound_params = task.input_params(cfg, "rgb"), task.input_params(cfg, "audio")
    return {"rgb": torch.from_numpy(np.stack([rgb(clip, rgb_params) for clip in frames])),
            "audio": torch.from_numpy(np.stack([sound(track[None], sound_params, rate=RATE) for track in audio]))}


def test_a_split_above_in_memory_mb_is_lazy_and_batches_as_the_in_memory_one(cache, clips):
    _, arrays = cache
    task = get_task("av")
    cfg = config()
    eager = task._samples(clips, cfg, ("rgb", "audio"))
    want = before(arrays, cfg, task)
    for name, tensor in want.items():
        assert isinstance(eager.inputs[name], torch.Tensor) and eager.inputs[name].dtype == tensor.dtype
        assert torch.equal(eager.inputs[name], tensor), name
    assert eager.lazy is None and torch.equal(eager.targets, torch.from_numpy(arrays["labels"]))

    lazy_cfg = apply_overrides(cfg, ["loader.in_memory_mb=0", "loader.num_workers=1",
                                     "loader.persistent_workers=false"])
    lazy = task._samples(clips, lazy_cfg, ("rgb", "audio"))
    assert lazy.lazy is not None and lazy.lazy.num_workers == 1
    for name, tensor in want.items():
        inputs = lazy.inputs[name]
        assert isinstance(inputs, LazyInputs) and isinstance(inputs.sources[0], PreprocessedClips)
        assert inputs.shape == tensor.shape and inputs.dtype == tensor.dtype
        assert torch.equal(inputs[:], tensor) and torch.equal(inputs[torch.tensor([5, 2])], tensor[[5, 2]]), name
    assert torch.equal(lazy.targets, eager.targets)
    made = list(lazy.batches(4, True, torch.Generator().manual_seed(3)))     # by a DataLoader worker
    pairs = list(zip(eager.batches(4, True, torch.Generator().manual_seed(3)), made, strict=True))
    assert len(pairs) == 2
    for a, b in pairs:
        assert all(torch.equal(a.inputs[m], b.inputs[m]) for m in a.inputs) and torch.equal(a.targets, b.targets)
    here = apply_overrides(lazy_cfg, ["loader.num_workers=-1"])              # -1: made in this process
    inline = task._samples(clips, here, ("audio",))
    assert inline.lazy.num_workers == 0 and inline.modalities == ("audio",)
    for a, b in zip(eager.batches(4, True, torch.Generator().manual_seed(3)),
                    inline.batches(4, True, torch.Generator().manual_seed(3)), strict=True):
        assert torch.equal(a.inputs["audio"], b.inputs["audio"])


def test_in_memory_mb_is_the_line_between_tensors_and_lazy_inputs(clips):
    task = get_task("av")
    cfg = config()
    sources = {name: PreprocessedClips(clips, field, task.input_modality(name), task.input_params(cfg, name))
               for name, field in (("rgb", "frames"), ("audio", "audio"))}
    per_clip = 4 * 3 * 32 * 32 * 4 + 1 * 40 * 101 * 4              # float32 (4, 3, 32, 32) and (1, 40, 101)
    at = copy.deepcopy(cfg)
    at["loader"]["in_memory_mb"] = N * per_clip / 2 ** 20                # exactly the split's size: in memory
    assert all(isinstance(t, torch.Tensor) for t in split_inputs(sources, at).values())
    at["loader"]["in_memory_mb"] = (N * per_clip - 1) / 2 ** 20          # a byte less: lazy
    assert all(isinstance(t, LazyInputs) for t in split_inputs(sources, at).values())


def test_a_split_without_the_field_is_named(clips):
    task = get_task("av")
    cfg = config()
    frameless = copy.copy(clips)
    frameless.frames = None
    with pytest.raises(MkeError, match="the test split has no frames"):
        PreprocessedClips(frameless, "frames", task.input_modality("rgb"), task.input_params(cfg, "rgb"))
