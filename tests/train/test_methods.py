import pytest

from mke.runtime.errors import MkeError
from mke.train.config import resolve_config
from mke.train.methods import get_method, plan_students, regularization_settings


def test_twomoon_plan_trains_each_distinct_setting_once():
    cfg = resolve_config("twomoon", None, [])
    jobs = plan_students(cfg["methods"], cfg["regularization"])
    # UM student, MM student, MM (sup) × (none + 3 kinds × weak/strong); MM (no reg) is MM at none
    assert len(jobs) == 3 * 7
    no_reg = next(j for j in jobs if ("MM student (no reg)", "none", "none") in j.cells)
    assert {("MM student", "input_noise", "none"), ("MM student", "dropout", "none")} <= set(no_reg.cells)
    slugs = [j.slug for j in jobs]
    assert len(set(slugs)) == len(slugs)


def test_unregularized_methods_get_no_regularization():
    jobs = plan_students(["MM student (no reg)"], {"settings": {"dropout": {"strong": 0.3}}})
    assert len(jobs) == 1 and jobs[0].reg.dropout == 0.0


def test_bad_methods_and_settings_are_named():
    with pytest.raises(MkeError, match="did you mean 'MM student'"):
        get_method("MM studnet")
    with pytest.raises(MkeError, match="input_nosie.*input_noise"):
        regularization_settings({"settings": {"input_nosie": {"weak": 1.0}}})
    with pytest.raises(MkeError, match="dropout.strong is a rate"):
        regularization_settings({"settings": {"dropout": {"strong": 1.5}}})
    with pytest.raises(MkeError, match="regularized but regularization.settings is empty"):
        plan_students(["MM student"], {"settings": {}})
