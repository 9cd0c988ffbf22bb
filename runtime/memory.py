"""Large NumPy arrays without transparent-huge-page advice where the kernel would compact for it.

NumPy advises the kernel to back every array of 4 MB or more with transparent huge pages
(madvise MADV_HUGEPAGE). Where the kernel's THP defrag setting is `madvise` or `always` (the default
of Debian and of this project's VMs), each fault of such a page may compact memory synchronously,
and with the page cache full that is slow: measured on a 2-core VM (Intel Xeon, THP `madvise`),
first touching 2 GB of NumPy array took 20.0 s with the advice and 1.0 s without; building the
built-in RGB-D splits in a new process 20.9 s and 2.4 s — paid by every training worker, the
report and the export. `huge_pages_off()` turns NumPy's advice off for this process on such
kernels and leaves it on where huge pages come without compaction (defrag `defer`, `never`).
"""
from __future__ import annotations

from pathlib import Path

THP_DEFRAG = Path("/sys/kernel/mm/transparent_hugepage/defrag")
COMPACTING = ("always", "madvise")  # the settings under which an madvised fault compacts at once


def thp_defrag(path: Path = THP_DEFRAG) -> str | None:
    """The kernel's selected THP defrag mode (the bracketed word), or None where it cannot be read."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def huge_pages_off(path: Path = THP_DEFRAG) -> bool:
    """Stop NumPy's huge-page advice if the kernel compacts on such faults; True when it was stopped."""
    if thp_defrag(path) not in COMPACTING:
        return False
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # NumPy 2 / 1
    core.multiarray._set_madvise_hugepage(False)
    return True
