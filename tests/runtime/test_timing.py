import time

import pytest

from mke.runtime.errors import MkeError
from mke.runtime.timing import interleaved_latency


def test_interleaved_timing_orders_callables_by_cost_and_counts_runs():
    calls = []
    result = interleaved_latency({"slow": lambda: (calls.append("s"), time.sleep(0.004)),
                                  "fast": lambda: calls.append("f")}, repeats=10, warmup=2)
    assert result["slow"].median_ms > result["fast"].median_ms + 2
    assert result["fast"].runs == 10 and calls.count("s") == calls.count("f") == 12
    assert calls[4:6] == ["s", "f"] and calls[6:8] == ["f", "s"]  # the order rotates each round


def test_bad_timing_requests_are_refused():
    with pytest.raises(MkeError, match="at least one"):
        interleaved_latency({})
    with pytest.raises(MkeError, match="repeats"):
        interleaved_latency({"a": lambda: None}, repeats=0)
