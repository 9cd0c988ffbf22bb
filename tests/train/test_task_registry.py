"""Tasks by registry: a task is one class registered beside itself; the stages, the figures and
mke-export take it from there with no list or task name edited anywhere else."""
import subprocess
import sys
import textwrap

import pytest
import torch

import mke.train.tasks as tasks
from mke.runtime.errors import MkeError
from mke.train.config import with_defaults
from mke.train.data import MKEData, Split
from mke.train.methods import Regularization
from mke.train.models.mlp import ModalityMLP
from mke.train.tasks import PLANNED, get_task, register_task, registered_tasks, task_names
from mke.train.tasks.base import Task

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@register_task
class BlobsTask(Task):
    """Two Gaussian blobs seen through two coordinates: a task that lives in this file alone."""

    name = "blobs_in_a_test"
    title = "blobs (a, b)"
    live_inputs = ("v4l2://0",)
    live_audio = "mic://"

    def build_data(self, cfg):
        g = torch.Generator().manual_seed(cfg["data"]["seed"])

        def split(n, both=True):
            labels = torch.randint(0, 2, (n,), generator=g)
            points = torch.randn(n, 2, generator=g) + 2.0 * labels[:, None].float()
            inputs = {"a": points[:, :1], "b": points[:, 1:]} if both else {"a": points[:, :1]}
            return Split(inputs, labels)

        return MKEData(alpha="a", beta="b", labeled=split(20, both=False), unlabeled=split(60), test=split(40),
                       class_names=["left", "right"])

    def build_model(self, cfg, role, modalities, reg: Regularization):
        return ModalityMLP({m: 1 for m in modalities}, 8, 2, dropout=reg.dropout, hidden_noise=reg.hidden_noise)

    def input_spec(self, cfg, modality):
        from mke.runtime.spec import InputSpec

        return InputSpec(modality, "vector", [1, 1], layout="NC", preprocess={"kind": "vector"})


def blobs_config(**extra) -> dict:
    """The task's config: what it sets, over configs/defaults.yaml (as `configs/<name>.yaml` would be)."""
    return with_defaults({
        "task": "blobs_in_a_test", "seeds": 1, "workers": 1, "device": "cpu", "data": {"seed": 0},
        "teacher": {"optim": {"lr": 0.05, "epochs": 30}}, "student": {"optim": {"lr": 0.05, "epochs": 30}},
        "pseudo_labels": {"kind": "soft"}, "methods": ["UM teacher", "MM student"],
        "regularization": {"settings": {"input_noise": {"strong": 1.0}}},
        "report": {"headline": {"regularization": "input_noise", "strength": "strong"}}, **extra})


def test_a_task_in_its_own_file_runs_through_the_stages_and_export(tmp_path):
    from mke.export.exporter import Options, export_run
    from mke.train.pipeline import run_mke

    metrics = run_mke(blobs_config(), tmp_path / "run", progress=False)
    assert metrics["task"] == "blobs_in_a_test" and metrics["metric"] == "accuracy"
    assert {r["method"] for r in metrics["results"]} == {"UM teacher", "MM student"}
    out = tmp_path / "exports"
    report = export_run(tmp_path / "run", Options(out=out, repeats=2, tensorrt=False), log=lambda m: None)
    assert report["task"] == "blobs_in_a_test"
    text = (out / "export_report.md").read_text()
    assert f"`mke-live {out / 'student.onnx'} --input v4l2://0 --audio mic://`" in text  # what the task declared


def test_get_task_imports_the_module_of_that_name_only():
    probe = textwrap.dedent("""
        import sys
        from mke.train.tasks import get_task
        assert get_task("twomoon").name == "twomoon"
        print(sorted(m for m in sys.modules if m.startswith("mke.train.tasks.")))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['mke.train.tasks.base', 'mke.train.tasks.twomoon']"  # no segmentation stack


def test_a_module_registering_another_name_is_found_by_walking_the_package(tmp_path, monkeypatch):
    (tmp_path / "walk_probe_module.py").write_text(textwrap.dedent("""
        from mke.train.tasks import register_task
        from mke.train.tasks.twomoon import TwoMoonTask

        @register_task
        class FoundByWalking(TwoMoonTask):
            name = "found_by_walking"
            title = "found by walking"
    """))
    monkeypatch.setattr(tasks, "__path__", [*tasks.__path__, str(tmp_path)])
    try:
        assert get_task("found_by_walking").title == "found by walking"
        assert "found_by_walking" in registered_tasks()
    finally:  # this session's other tests see the package as it is
        tasks._TASKS.pop("found_by_walking", None)
        sys.modules.pop("mke.train.tasks.walk_probe_module", None)


def test_every_built_task_is_registered_and_planned_ones_say_so(monkeypatch):
    built = registered_tasks()
    assert {"twomoon", "rgbd", "nyuv2", "av", "ravdess", "events", "vggsound"} <= set(built)
    assert all(built[name].name == name for name in built)
    monkeypatch.setitem(PLANNED, "lidar_future", "a task declared before it is built")
    with pytest.raises(MkeError, match="task 'lidar_future' is not built yet: a task declared before it is built"):
        get_task("lidar_future")
    assert task_names()[-1] == "lidar_future"
    with pytest.raises(MkeError, match=r"unknown task 'rgdb' \(did you mean 'rgbd'\?\); tasks: .*twomoon"):
        get_task("rgdb")
    with pytest.raises(MkeError, match="unknown task 'segmentation'"):
        get_task("segmentation")  # a module of the package that registers no task of that name


def test_a_second_class_under_a_registered_name_is_refused():
    class Impostor(Task):
        name = "twomoon"

    get_task("twomoon")
    with pytest.raises(MkeError, match="task 'twomoon' is registered twice"):
        register_task(Impostor)
    with pytest.raises(MkeError, match="needs a `name` that is a Python identifier"):
        register_task(type("Nameless", (Task,), {"name": "two moon"}))


def test_tasks_print_the_live_commands_of_their_models(tmp_path):
    import shlex

    from mke.train.config import resolve_config
    from mke.train.datasets.builtin_rgbd import cache_dir

    rgbd = get_task("rgbd")
    cfg = resolve_config("rgbd", None, [f"data.cache_dir={tmp_path}"])
    model = "exports/rgbd/student.onnx"
    assert rgbd.live_commands(cfg, model) == [f"mke-live {model} --input realsense://",
                                              f"mke-live {model} --input sim://"]
    recording = cache_dir(cfg["data"]) / "replay.db3"  # where the rendered rooms' recording goes
    recording.parent.mkdir(parents=True)
    recording.write_bytes(b"")
    assert rgbd.live_commands(cfg, model)[0] == f"mke-live {model} --input {shlex.quote('file://' + str(recording))}"
    assert get_task("nyuv2").live_commands(resolve_config("nyuv2", None, []), model) == [
        f"mke-live {model} --input realsense://"]
    assert get_task("twomoon").live_commands(resolve_config("twomoon", None, []), model) == []


def test_printed_live_commands_are_ones_mke_live_accepts():
    import shlex

    from mke.runtime.cli import build_parser

    for line in BlobsTask().live_commands(blobs_config(), "exports/my run/student.onnx") + \
            get_task("rgbd").live_commands(with_defaults({"data": {"source": "manifest"}}), "student.onnx"):
        argv = shlex.split(line)
        assert argv[0] == "mke-live"
        args = build_parser().parse_args(argv[1:])
        assert str(args.model) in ("exports/my run/student.onnx", "student.onnx")
        assert args.input == argv[argv.index("--input") + 1]
