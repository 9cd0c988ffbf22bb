"""mke.runtime.memory: NumPy's huge-page advice is turned off only where the kernel compacts for it."""
from __future__ import annotations

import numpy as np

from mke.runtime.memory import huge_pages_off, thp_defrag


def _defrag(tmp_path, text: str):
    path = tmp_path / "defrag"
    path.write_text(text)
    return path


def test_the_selected_defrag_mode_is_read(tmp_path):
    assert thp_defrag(_defrag(tmp_path, "always defer defer+madvise [madvise] never\n")) == "madvise"
    assert thp_defrag(_defrag(tmp_path, "[always] defer defer+madvise madvise never\n")) == "always"
    assert thp_defrag(_defrag(tmp_path, "garbage\n")) is None
    assert thp_defrag(tmp_path / "absent") is None


def test_advice_stays_where_huge_pages_come_without_compaction(tmp_path):
    assert huge_pages_off(_defrag(tmp_path, "always defer defer+madvise madvise [never]\n")) is False
    assert huge_pages_off(_defrag(tmp_path, "always [defer] defer+madvise madvise never\n")) is False
    assert huge_pages_off(tmp_path / "absent") is False  # not Linux, or no THP: nothing to do


def test_advice_is_turned_off_where_faults_compact(tmp_path):
    core = getattr(np, "_core", None) or np.core
    before = core.multiarray._set_madvise_hugepage(True)  # returns the previous setting
    try:
        assert huge_pages_off(_defrag(tmp_path, "always defer defer+madvise [madvise] never\n")) is True
        assert core.multiarray._set_madvise_hugepage(True) is False  # it was off
    finally:
        core.multiarray._set_madvise_hugepage(before)
