"""Caches are built in a temporary folder and renamed into place whole: a crash leaves nothing, an
incomplete cache is replaced, and a cache another process finished first is kept."""
import json

import pytest

from mke.runtime.fileio import building_cache, cache_complete


def _fill(tmp, text="new"):
    (tmp / "a.bin").write_text(text)
    (tmp / "data.json").write_text(json.dumps({"files": {"a.bin": len(text)}}))


def test_a_finished_cache_is_renamed_into_place_and_a_crash_leaves_nothing(tmp_path):
    folder = tmp_path / "caches" / "thing-123"
    with building_cache(folder) as tmp:
        assert tmp.parent == folder.parent and tmp.name.startswith(".thing-123.")
        _fill(tmp)
    assert cache_complete(folder) and (folder / "a.bin").read_text() == "new"
    with pytest.raises(RuntimeError):
        with building_cache(tmp_path / "caches" / "other-456") as tmp:
            _fill(tmp)
            raise RuntimeError("generation failed")
    assert sorted(p.name for p in (tmp_path / "caches").iterdir()) == ["thing-123"]


def test_an_incomplete_cache_is_replaced_and_a_complete_one_kept(tmp_path):
    folder = tmp_path / "thing-1"
    folder.mkdir()
    (folder / "a.bin").write_text("half")                     # a crash's leftover: no data.json
    with building_cache(folder) as tmp:
        _fill(tmp, "whole")
    assert (folder / "a.bin").read_text() == "whole"
    with building_cache(folder) as tmp:                       # finished by another process meanwhile
        _fill(tmp, "again")
    assert (folder / "a.bin").read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing-1"]   # no .part or .stale left
