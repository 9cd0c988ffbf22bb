"""One small contract for every inference backend: load on construction, infer(feeds) → outputs, close()."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Mapping

import numpy as np

from mke.runtime.spec import ModelSpec


class Runner(ABC):
    """`spec` is the model spec the file carries; `description` names the backend and device in use."""

    spec: ModelSpec
    description: str = ""

    @abstractmethod
    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None:
        pass

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
