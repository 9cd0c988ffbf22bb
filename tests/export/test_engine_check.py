"""A TensorRT engine is held to a tolerance against PyTorch, like every other artifact: FP16 engines
within 0.2 points of the metric, INT8 engines within the budget; outside it the file is removed and
the export fails (the engines themselves need a GPU; the rule is checked here on their parity)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mke.export.exporter import FORMATS, Artifact, Options, check_engine
from mke.export.verify import Parity
from mke.runtime.errors import MkeError


def _engine(tmp_path: Path, key: str, metric: float) -> Artifact:
    path = tmp_path / f"student{FORMATS[key].suffix}"
    path.write_bytes(b"engine")
    art = Artifact("student", FORMATS[key], path)
    art.parity = Parity(max_abs_diff=0.01, agreement=99.0, metric=metric, reference_metric=40.0)
    return art


def test_engines_within_tolerance_are_kept(tmp_path):
    for key, metric in (("engine-fp16", 39.85), ("engine-int8", 39.2)):
        art = _engine(tmp_path, key, metric)
        check_engine(art, "miou", Options(out=tmp_path, budget=1.0))
        assert art.path.is_file()


@pytest.mark.parametrize("key, metric, budget, tolerance", [("engine-fp16", 39.7, 1.0, "0.2"),
                                                            ("engine-int8", 38.5, 1.0, "1.0"),
                                                            ("engine-int8", 39.6, 0.3, "0.3")])
def test_an_engine_outside_its_tolerance_is_removed_and_fails_the_export(tmp_path, key, metric, budget, tolerance):
    art = _engine(tmp_path, key, metric)
    with pytest.raises(MkeError, match=rf"loses {40.0 - metric:.2f} points of miou .*tolerance {tolerance}\); removed"):
        check_engine(art, "miou", Options(out=tmp_path, budget=budget))
    assert not art.path.exists()
