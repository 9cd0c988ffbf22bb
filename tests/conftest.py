import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def venv_bin() -> Path:
    """The folder holding this interpreter's console scripts (mke-train, mke-export, mke-live)."""
    return Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one thread is several times faster than two contending."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
