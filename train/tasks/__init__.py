"""Tasks by name: a task module registers its class with `@register_task`, beside the class.

`get_task(name)` imports `mke.train.tasks.<name>` first, so `mke-train --task twomoon` never loads the
segmentation stack; only a name that module does not register makes it import the package's other
modules to look (a module may register several tasks, or a task under another name). A new task is
one module here and its `configs/<name>.yaml`: no list to edit. Tasks planned but not built yet are
declared in PLANNED, with what they will be.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil

from mke.runtime.errors import MkeError
from mke.train.label_kinds import LABEL_KINDS
from mke.train.tasks.base import Task

PLANNED: dict[str, str] = {
}
_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make `cls` the task `cls.name` for `get_task` and `mke-train --task`."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name.isidentifier():
        raise MkeError(f"task class {cls.__qualname__} needs a `name` that is a Python identifier, got {name!r}")
    if cls.kind not in LABEL_KINDS:
        raise MkeError(f"task class {cls.__qualname__} has the kind {cls.kind!r}; known: {', '.join(LABEL_KINDS)}")
    known = _TASKS.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise MkeError(f"task '{name}' is registered twice: {known.__module__}.{known.__qualname__} and "
                       f"{cls.__module__}.{cls.__qualname__}")
    _TASKS[name] = cls
    return cls


def _import_module_named(name: str) -> None:
    """Import `mke.train.tasks.<name>` if there is such a module (its own import errors propagate)."""
    if name.isidentifier() and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        importlib.import_module(f"{__name__}.{name}")


def _import_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def registered_tasks() -> dict[str, type[Task]]:
    """Every task the package's modules register, by name (imports them all)."""
    _import_all()
    return dict(sorted(_TASKS.items()))


def task_names() -> list[str]:
    """Built tasks, then the planned ones."""
    built = list(registered_tasks())
    return built + [name for name in PLANNED if name not in built]


def get_task(name: str) -> Task:
    if name not in _TASKS:
        _import_module_named(name)
    if name not in _TASKS:
        _import_all()
    if name in _TASKS:
        return _TASKS[name]()
    if name in PLANNED:
        raise MkeError(f"task '{name}' is not built yet: {PLANNED[name]}")
    hint = difflib.get_close_matches(name, task_names(), n=1)
    raise MkeError(f"unknown task '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                   + f"; tasks: {', '.join(task_names())}")
