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
