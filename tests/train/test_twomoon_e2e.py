"""The TwoMoon study end to end on fewer seeds: knowledge expansion must show."""
import pytest

from mke.train.config import resolve_config
from mke.train.pipeline import run_mke
from mke.train.report import find


@pytest.mark.slow
def test_mm_student_expands_the_teachers_knowledge(tmp_path):
    strong = resolve_config("twomoon", None, [])["regularization"]["settings"]["input_noise"]["strong"]
    cfg = resolve_config("twomoon", None, [
        "seeds=3", "workers=1", "regularization.with_none=false",
        "methods=[UM teacher, UM student, MM student (no reg), MM student, MM student (sup)]",
        f"regularization.settings={{input_noise: {{strong: {strong}}}}}",  # the shipped strong strength
    ])
    metrics = run_mke(cfg, tmp_path / "run", progress=False)

    def mean(method, reg="input_noise", strength="strong"):
        return find(metrics, method, reg, strength)["mean"]

    teacher = find(metrics, "UM teacher")["mean"]
    mm, um, sup = mean("MM student"), mean("UM student"), mean("MM student (sup)")
    no_reg = find(metrics, "MM student (no reg)")["mean"]
    assert 60 <= teacher <= 80
    assert mm >= teacher + 5, (mm, teacher)
    assert mm >= um + 3, (mm, um)
    assert mm > no_reg, (mm, no_reg)
    assert sup >= 85 and sup >= mm
