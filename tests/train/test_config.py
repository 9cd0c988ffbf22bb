import pytest

from mke.runtime.errors import MkeError
from mke.train.config import apply_overrides, resolve_config


def test_defaults_load_and_overrides_apply_with_types():
    cfg = resolve_config("twomoon", None, ["seeds=3", "student.optim.lr=0.05", "pseudo_labels.kind=soft"])
    assert cfg["seeds"] == 3
    assert cfg["student"]["optim"]["lr"] == 0.05
    assert cfg["pseudo_labels"]["kind"] == "soft"


def test_integer_for_float_key_becomes_float():
    cfg = apply_overrides({"a": {"lr": 0.1}}, ["a.lr=1"])
    assert cfg["a"]["lr"] == 1.0 and isinstance(cfg["a"]["lr"], float)


def test_unknown_key_names_it_and_suggests_the_nearest():
    with pytest.raises(MkeError, match=r"unknown config key 'student.optim.epoch'.*student.optim.epochs"):
        resolve_config("twomoon", None, ["student.optim.epoch=3"])


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(MkeError, match=r"'seeds' expects int"):
        resolve_config("twomoon", None, ["seeds=many"])


def test_setting_a_section_to_a_scalar_is_refused():
    with pytest.raises(MkeError, match=r"'student' is a section"):
        resolve_config("twomoon", None, ["student=3"])


def test_malformed_override():
    with pytest.raises(MkeError, match="key=value"):
        resolve_config("twomoon", None, ["seeds"])


def test_user_yaml_is_checked_like_overrides(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("seeds: 4\nstudent:\n  optim:\n    epochs: 10\n")
    cfg = resolve_config("twomoon", good, ["seeds=5"])
    assert (cfg["seeds"], cfg["student"]["optim"]["epochs"]) == (5, 10)  # command line wins
    bad = tmp_path / "bad.yaml"
    bad.write_text("studnet:\n  hidden_mm: 8\n")
    with pytest.raises(MkeError, match="unknown config key 'studnet.hidden_mm'"):
        resolve_config("twomoon", bad, [])
    with pytest.raises(MkeError, match="does not exist"):
        resolve_config("twomoon", tmp_path / "missing.yaml", [])
    broken = tmp_path / "broken.yaml"
    broken.write_text("seeds: [1,\n")
    with pytest.raises(MkeError, match="not valid YAML"):
        resolve_config("twomoon", broken, [])


def test_shared_defaults_lie_under_every_task_and_can_be_overridden():
    from mke.train.config import shared_defaults

    defaults = shared_defaults()
    for task in ("twomoon", "rgbd", "nyuv2"):
        cfg = resolve_config(task, None, [])
        assert cfg["report"]["examples"] == defaults["report"]["examples"]
        assert set(cfg["pseudo_labels"]) >= set(defaults["pseudo_labels"])
    twomoon = resolve_config("twomoon", None, ["pseudo_labels.top_k=2"])
    assert twomoon["pseudo_labels"]["top_k"] == 2 and twomoon["pseudo_labels"]["batch_size"] == 0
    assert resolve_config("rgbd", None, [])["pseudo_labels"]["top_k"] == 2  # the task's own value wins
    with pytest.raises(MkeError, match="'pseudo_labels.top_k' expects int"):
        resolve_config("twomoon", None, ["pseudo_labels.top_k=many"])


def test_a_section_replaced_whole_keeps_the_shared_defaults():
    cfg = resolve_config("rgbd", None, ["pseudo_labels={kind: hard}"])
    assert cfg["pseudo_labels"] == {"kind": "hard", "confidence_weight": False, "top_k": 0, "tta": {},
                                    "batch_size": 0}


def test_an_older_config_is_completed_with_the_values_the_code_used():
    from mke.train.config import with_defaults

    old = {"task": "twomoon", "pseudo_labels": {"kind": "soft", "tta": {"flip": True}}, "report": {"example_seed": 3}}
    cfg = with_defaults(old)
    assert cfg["pseudo_labels"] == {"kind": "soft", "tta": {"flip": True}, "confidence_weight": False, "top_k": 0,
                                    "batch_size": 0}
    assert cfg["report"] == {"example_seed": 3, "examples": 4} and cfg["precision"] == "fp32"
    assert old["report"] == {"example_seed": 3}  # the argument is left as it was


def test_the_defaults_file_is_not_a_task():
    with pytest.raises(MkeError, match="no default config for task 'defaults'"):
        resolve_config("defaults", None, [])


def test_optimizer_settings_are_typed_with_their_defaults_in_one_place():
    from mke.train.fit import OptimSettings

    assert OptimSettings.of({"lr": 0.1, "epochs": 2}) == OptimSettings(0.1, 2, "sgd", 0, 0.0, 0.0, "constant")
    with pytest.raises(MkeError, match=r"unknown optimizer setting 'teacher.optim.momentun' \(did you mean 'momentum'"):
        OptimSettings.of({"lr": 0.1, "epochs": 2, "momentun": 0.9}, "teacher.optim")
    with pytest.raises(MkeError, match="student.optim needs lr"):
        OptimSettings.of({"epochs": 2}, "student.optim")
