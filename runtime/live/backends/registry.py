"""Backends by name and model-file suffix, registered by the module that implements them.

A backend module calls `register_backend` (usually as a decorator on its factory) at import time;
the modules of this package are imported on the first lookup, so a new backend is one new file
here — or one `register_backend` call anywhere (a plugin, a test) before `open_runner` runs.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mke.runtime.errors import MkeError

Factory = Callable[[Path, int], object]  # (model path, CPU threads; 0 = the backend's choice) → an inactive Runner


@dataclass(frozen=True)
class Backend:
    """`suffixes` are the model files it runs; `default` makes it the one those suffixes pick when
    no backend is forced (one default per suffix)."""

    name: str
    factory: Factory
    suffixes: tuple[str, ...]
    default: bool = False
    help: str = ""


_PACKAGE = __name__.rsplit(".", 1)[0]
_BACKENDS: dict[str, Backend] = {}
_DEFAULTS: dict[str, str] = {}  # suffix → the backend it picks
_NOT_BACKENDS = {"base", "registry"}
_discovered = False
_lock = threading.RLock()


def register_backend(name: str, *, suffixes: tuple[str, ...] | list[str], default: bool = False, help: str = ""):
    """Decorator: register `factory(path, threads) -> Runner` as backend `name` for model files with
    `suffixes` (".onnx"); with `default=True` those suffixes pick it when no backend is forced."""
    suffixes = tuple(s.lower() for s in suffixes)
    if not name or not suffixes or not all(s.startswith(".") for s in suffixes):
        raise MkeError(f"backend {name!r}: give a name and model-file suffixes that start with '.', got {suffixes}")

    def register(factory: Factory) -> Factory:
        if not factory.__module__.startswith(_PACKAGE + "."):
            _discover()  # the built-in backends first: a plugin cannot take their names or suffixes unnoticed
        if name in _BACKENDS and _BACKENDS[name].factory is not factory:
            raise MkeError(f"backend {name!r} is registered twice (by {_BACKENDS[name].factory.__module__} and "
                           f"{factory.__module__}); pick another name")
        if default:
            taken = [s for s in suffixes if _DEFAULTS.get(s, name) != name]
            if taken:
                raise MkeError(f"backend {name!r} wants to be the default for {', '.join(taken)}, which "
                               f"{_DEFAULTS[taken[0]]!r} already is; register it with default=False")
            _DEFAULTS.update(dict.fromkeys(suffixes, name))
        _BACKENDS[name] = Backend(name, factory, suffixes, default, help)
        return factory

    return register


def _discover() -> None:
    """Import every backend module of this package once, so that each registers itself."""
    global _discovered
    if _discovered:
        return
    with _lock:
        if not _discovered:
            for module in pkgutil.iter_modules(importlib.import_module(_PACKAGE).__path__):
                if module.name not in _NOT_BACKENDS and not module.name.startswith("_"):
                    importlib.import_module(f"{_PACKAGE}.{module.name}")
            _discovered = True


def backends() -> dict[str, Backend]:
    """Every registered backend by name, in registration order."""
    _discover()
    return dict(_BACKENDS)


def backend_names() -> list[str]:
    """The names `--backend` accepts."""
    return list(backends())


def backend_for(path: Path, forced: str | None = None) -> Backend:
    """The backend that runs `path`: `forced` when given (and able to run such a file), else the
    default of the file's suffix."""
    table = backends()
    suffix = Path(path).suffix.lower()
    if forced is not None:
        if forced not in table:
            raise MkeError(f"--backend must be one of {', '.join(table)}, got {forced!r}")
        backend = table[forced]
        owner = _DEFAULTS.get(suffix)
        if owner is not None and suffix not in backend.suffixes:
            raise MkeError(f"--backend {forced} cannot run {Path(path).name}: a {suffix} file is for {owner}")
        return backend
    if suffix not in _DEFAULTS:
        raise MkeError(f"{path}: cannot tell the backend from the suffix {suffix or '(none)'}; expected "
                       f"{', '.join(_DEFAULTS)} or --backend {{{', '.join(table)}}}")
    return table[_DEFAULTS[suffix]]
