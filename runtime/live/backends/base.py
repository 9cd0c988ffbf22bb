"""The contract every inference backend keeps (Polygraphy's runner, cut to what MKE needs).

A runner is made cheaply, then `activate()` loads the model (the context manager does it), `infer`
runs it and `deactivate()` (alias `close()`) frees it. The public methods do the checks once for
every backend — the feeds against the model's own inputs, the outputs against the model spec — so
a backend writes only the `_*_impl` hooks and every backend fails the same way, naming the input or
output and what the model takes. The checks compare names, dtypes and dimensions only (no pass over
the data): they run on every live frame.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Mapping, NamedTuple

import numpy as np

from mke.runtime.errors import MkeError
from mke.runtime.spec import ModelSpec


class TensorMeta(NamedTuple):
    """What the model takes for one input: its numpy dtype and its shape, batch first, with None for a
    dynamic dimension; either is None where the backend cannot say (then it is not checked)."""

    dtype: np.dtype | None
    shape: tuple[int | None, ...] | None

    def __str__(self) -> str:
        shape = "of any shape" if self.shape is None else format_shape(self.shape)
        return f"{self.dtype if self.dtype is not None else 'any dtype'} {shape}"


def format_shape(shape) -> str:
    """(None, 3, 48, 64) → "(?, 3, 48, 64)": a dynamic dimension prints as "?"."""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _shape_test(shape) -> tuple[tuple | None, object]:
    """(the one shape that fits when no dimension is dynamic, else None; a test for any other shape):
    a static shape costs one tuple comparison per frame, a dynamic one a comparison per fixed dimension."""
    if shape is None:
        return None, lambda got: True
    if all(d is not None for d in shape):
        return tuple(shape), lambda got: False
    rank, tail = len(shape), tuple(shape[1:])
    if all(d is not None for d in tail):  # a dynamic batch only
        return None, lambda got: got[1:] == tail and len(got) == rank
    fixed = tuple((i, d) for i, d in enumerate(shape) if d is not None)
    return None, lambda got: len(got) == rank and all(got[i] == d for i, d in fixed)


class Runner(ABC):
    """`spec` is the model spec the file carries; `description` names the backend and device in use;
    `name` is how messages name the model (its file name). Subclasses set `name` in `__init__` and fill
    `_activate_impl` (load; set `spec` and `description`), `_input_metadata_impl`, `_infer_impl` and
    `_deactivate_impl`."""

    spec: ModelSpec
    description: str = ""
    name: str = "model"
    is_active: bool = False

    # --- hooks ---------------------------------------------------------------------------------------

    @abstractmethod
    def _activate_impl(self) -> None: ...

    @abstractmethod
    def _input_metadata_impl(self) -> dict[str, TensorMeta]: ...

    @abstractmethod
    def _infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _deactivate_impl(self) -> None:
        pass

    # --- the contract ----------------------------------------------------------------------------------

    def activate(self) -> "Runner":
        """Load the model; a second call does nothing."""
        if not self.is_active:
            self._activate_impl()
            try:
                self._inputs = dict(self._input_metadata_impl())
            except BaseException:
                self._deactivate_impl()
                raise
            self._input_checks = tuple((name, meta.dtype, _shape_test(meta.shape))
                                       for name, meta in self._inputs.items())
            # the spec writes batch 1 also for dynamic-batch exports: the batch dimension is not compared
            self._output_checks = tuple((o.name, _shape_test([None] + [None if d < 0 else d for d in o.shape[1:]]))
                                        for o in self.spec.outputs)
            self.is_active = True
        return self

    def input_metadata(self) -> dict[str, TensorMeta]:
        """{input name: TensorMeta(dtype, shape)} as the model itself declares them."""
        self._require_active("input_metadata")
        return dict(self._inputs)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{output name: array} for {input name: array}; MkeError when the feeds do not fit the model or
        the outputs do not fit its spec."""
        self._require_active("infer")
        self._check_feeds(feeds)
        outputs = self._infer_impl(feeds)
        self._check_outputs(outputs)
        return outputs

    def deactivate(self) -> None:
        """Free the model and its buffers; a second call does nothing."""
        if self.is_active:
            self.is_active = False
            self._deactivate_impl()

    def close(self) -> None:
        self.deactivate()

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # --- shared checks -----------------------------------------------------------------------------------

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise MkeError(f"{type(self).__name__}.{what} on {self.name} before activate() or after close(): "
                           f"use the runner as a context manager (with open_runner(...) as runner)")

    def _takes(self) -> str:
        return ", ".join(f"'{name}' {meta}" for name, meta in self._inputs.items())

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> None:
        if len(feeds) != len(self._input_checks):
            self._wrong_names(feeds)
        for name, dtype, (pattern, fits) in self._input_checks:
            array = feeds.get(name)
            if array is None and name not in feeds:
                self._wrong_names(feeds)
            try:
                got_dtype, shape = array.dtype, array.shape
            except AttributeError:
                raise MkeError(f"{self.name}: input '{name}' is a {type(array).__name__}, not a numpy array; "
                               f"the model takes {self._inputs[name]}") from None
            if got_dtype is not dtype and dtype is not None and got_dtype != dtype:
                raise MkeError(f"{self.name}: input '{name}' is {got_dtype}, the model takes {self._inputs[name]}")
            if shape != pattern and not fits(shape):
                raise MkeError(f"{self.name}: input '{name}' has shape {format_shape(shape)}, the model takes "
                               f"{self._inputs[name]}")

    def _wrong_names(self, feeds: Mapping[str, np.ndarray]) -> None:
        missing = [name for name in self._inputs if name not in feeds]
        unknown = sorted(set(feeds) - set(self._inputs))
        parts = ([f"input(s) {', '.join(map(repr, missing))} not given"] if missing else []) + \
                ([f"unknown input(s) {', '.join(map(repr, unknown))}"] if unknown else [])
        raise MkeError(f"{self.name}: {'; '.join(parts)}; the model takes {self._takes()}")

    def _check_outputs(self, outputs: Mapping[str, np.ndarray]) -> None:
        for name, (pattern, fits) in self._output_checks:
            array = outputs.get(name)
            if array is None:
                raise MkeError(f"{self.name}: the model returned {sorted(outputs)} but its spec names the output "
                               f"'{name}'")
            shape = array.shape
            if shape != pattern and not fits(shape):
                want = next(o.shape for o in self.spec.outputs if o.name == name)
                raise MkeError(f"{self.name}: output '{name}' has shape {format_shape(shape)} but the spec says "
                               f"{format_shape([None] + [None if d < 0 else d for d in want[1:]])}")
