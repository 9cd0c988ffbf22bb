"""The stages on a small TwoMoon config: resume after an interruption, stale work redone."""
import json

import pytest

from mke.runtime.errors import MkeError
from mke.train import pipeline
from mke.train.config import resolve_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = ["seeds=2", "workers=1", "teacher.optim.epochs=200", "student.optim.epochs=100",
         "methods=[UM teacher, UM student, MM student (no reg), MM student]",
         "regularization.settings={input_noise: {strong: 1.0}}"]


def _cfg(*extra):
    return resolve_config("twomoon", None, QUICK + list(extra))


def _mtimes(root):
    return {p.relative_to(root): p.stat().st_mtime_ns for p in root.rglob("*.pt")}


def test_run_writes_metrics_in_the_documented_schema(tmp_path):
    metrics = pipeline.run_mke(_cfg(), tmp_path / "run", progress=False)
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["task"] == "twomoon" and on_disk["metric"] == "accuracy"
    cells = {(r["method"], r["regularization"], r["strength"]) for r in on_disk["results"]}
    assert ("UM teacher", "none", "none") in cells
    assert ("MM student", "input_noise", "strong") in cells
    assert ("MM student (no reg)", "none", "none") in cells
    for r in on_disk["results"]:
        assert len(r["per_seed"]) == 2 and 0 <= r["mean"] <= 100 and r["std"] >= 0
    for stage in ("teacher", "students"):  # how fast each stage trained, and how long it waited for data
        speed = on_disk["throughput"][stage]
        assert speed["samples_per_s"] > 0 and 0 <= speed["data_wait_share"] < 1
    assert not list((tmp_path / "run").rglob("*.state.pt"))  # training states are gone once the models are saved
    assert "Throughput: teacher " in (tmp_path / "run" / "report.md").read_text()
    assert (tmp_path / "run" / "report.md").read_text().count("| ours |") == 1
    for fig in metrics["figures"]:
        assert (tmp_path / "run" / fig).stat().st_size > 1000


def test_interrupted_run_resumes_from_the_last_finished_unit(tmp_path, monkeypatch):
    root = tmp_path / "run"
    real = pipeline._student_unit
    done = []

    def dies_after_two(*args):
        if len(done) == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-stage
        done.append(args)
        return real(*args)

    monkeypatch.setattr(pipeline, "_student_unit", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_mke(_cfg(), root, progress=False)
    assert not (root / "metrics.json").exists()
    before = _mtimes(root)
    # TwoMoon stacks its seeds (Task.stack_seeds): a unit trains one student of both seeds
    assert all(len(seeds) == 2 for _, _, seeds, _ in done)
    assert len([p for p in before if p.parts[-2] == "students"]) == 2 * 2

    retrained = []
    monkeypatch.setattr(pipeline, "_student_unit", lambda *a: retrained.append(a) or real(*a))
    metrics = pipeline.run_mke(_cfg(), root, progress=False)
    after = _mtimes(root)
    assert all(after[p] == t for p, t in before.items())  # nothing finished was redone
    assert len(retrained) == 4 - 2  # 4 distinct students (both seeds in one unit), minus the 2 already done
    assert all(len(r["per_seed"]) == 2 for r in metrics["results"])


def test_students_of_a_retrained_teacher_are_redone(tmp_path, monkeypatch):
    root = tmp_path / "run"
    pipeline.run_mke(_cfg(), root, progress=False)
    (root / "seed0" / "teacher.json").unlink()  # the teacher will be trained again (new bytes)
    (root / "seed0" / "teacher.pt").write_bytes(b"")
    retrained = []
    real = pipeline._student_unit
    monkeypatch.setattr(pipeline, "_student_unit", lambda *a: retrained.append(a[2]) or real(*a))
    pipeline.run_mke(_cfg(), root, progress=False)
    assert sorted(retrained) == [(0,)] * 4  # UM student and MM student, each without and with noise: seed 0 only


def test_resuming_with_another_config_is_refused(tmp_path):
    root = tmp_path / "run"
    pipeline.run_mke(_cfg(), root, progress=False)
    with pytest.raises(MkeError, match=r"another config \(differs in: student\)"):
        pipeline.run_mke(_cfg("student.hidden_mm=8"), root, progress=False)
    pipeline.run_mke(_cfg("workers=2"), root, progress=False)  # speed settings may change
    pipeline.run_mke(_cfg("train_state.every_s=0"), root, progress=False)
    pipeline.run_mke(_cfg("student.hidden_mm=8"), root, fresh=True, progress=False)


def test_a_run_written_before_a_key_had_its_shared_default_still_resumes(tmp_path):
    import yaml

    root = tmp_path / "run"
    pipeline.run_mke(_cfg(), root, progress=False)
    old = yaml.safe_load((root / "config.yaml").read_text())
    del old["pseudo_labels"]["top_k"], old["report"]["examples"], old["precision"]  # as older runs wrote it
    del old["train_state"]
    (root / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    before = _mtimes(root)
    pipeline.run_mke(_cfg(), root, progress=False)
    assert _mtimes(root) == before
    old["pseudo_labels"]["kind"] = "hard"  # a real difference is still refused, by name
    (root / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    with pytest.raises(MkeError, match=r"another config \(differs in: pseudo_labels\)"):
        pipeline.run_mke(_cfg(), root, progress=False)


def test_a_run_resumed_by_other_code_is_reused_with_a_warning(tmp_path, capsys):
    root = tmp_path / "run"
    pipeline.run_mke(_cfg(), root, progress=False)
    made_by = json.loads((root / "code.json").read_text())["fingerprint"]
    assert made_by == pipeline.code_fingerprint() and len(made_by) == 16
    capsys.readouterr()
    pipeline.run_mke(_cfg(), root, progress=False)
    assert "warning" not in capsys.readouterr().err                        # the same code: reused quietly

    (root / "code.json").write_text(json.dumps({"fingerprint": "0123456789abcdef"}))
    before = _mtimes(root)
    pipeline.run_mke(_cfg(), root, progress=False)
    err = capsys.readouterr().err
    assert "started by other code (fingerprint 0123456789abcdef)" in err and "--fresh" in err
    assert _mtimes(root) == before                                          # reused, not redone
    assert json.loads((root / "code.json").read_text())["fingerprint"] == "0123456789abcdef"  # still says so

    (root / "code.json").unlink()                                           # a run from before fingerprints
    pipeline.run_mke(_cfg(), root, progress=False)
    assert "code older than code fingerprints" in capsys.readouterr().err
    pipeline.run_mke(_cfg(), root, fresh=True, progress=False)
    assert json.loads((root / "code.json").read_text())["fingerprint"] == pipeline.code_fingerprint()


def test_sup_bound_without_labels_on_unlabeled_split_is_a_clear_error():
    from mke.train.data import MKEData
    from mke.train.methods import get_method
    from mke.train.tasks import get_task

    data = get_task("twomoon").build_data(_cfg())
    no_labels = MKEData(data.alpha, data.beta, data.labeled, data.unlabeled.with_targets(None), data.test,
                        data.class_names)
    with pytest.raises(MkeError, match="needs labels on the unlabeled split"):
        pipeline.training_split(get_method("MM student (sup)"), no_labels, None, {"kind": "hard"})


def test_the_same_config_gives_the_same_numbers(tmp_path):
    first = pipeline.run_mke(_cfg(), tmp_path / "a", progress=False)
    second = pipeline.run_mke(_cfg(), tmp_path / "b", progress=False)
    assert [r["per_seed"] for r in first["results"]] == [r["per_seed"] for r in second["results"]]


@pytest.mark.parametrize("override, message", [("student.init=teach", "student.init must be 'scratch' or 'teacher'"),
                                               ("pseudo_labels.tta={flips: true}", "unknown pseudo_labels.tta")])
def test_bad_student_settings_fail_before_any_training(tmp_path, override, message):
    with pytest.raises(MkeError, match=message):
        pipeline.run_mke(_cfg(override), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_device_auto_trains_on_what_this_machine_has(tmp_path):
    import torch

    from mke.train.fit import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(MkeError, match="not one of cpu, cuda, auto"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(MkeError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    metrics = pipeline.run_mke(_cfg("device=auto"), tmp_path / "run", progress=False)  # nyuv2's default
    assert all(len(r["per_seed"]) == 2 for r in metrics["results"])
