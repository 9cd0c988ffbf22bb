"""Task configurations: a YAML file per task, overridden by `key=value` arguments.

Overrides are strict: a key that is not in the task's YAML is an error that names it (with the
nearest known keys), and a value must have the type of the default it replaces. The resolved
config is written beside the results, so every number in a run can be traced to its settings.
"""
from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from mke.runtime.errors import MkeError


def default_config_path(task: str) -> Path:
    path = Path(str(resources.files("mke.configs").joinpath(f"{task}.yaml")))
    if not path.is_file():
        raise MkeError(f"no default config for task '{task}' (looked for {path})")
    return path


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MkeError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MkeError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MkeError(f"config file {path} must hold a mapping at the top level, found {type(data).__name__}")
    return data


def _flat_keys(cfg: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        keys.append(key)
        if isinstance(v, dict):
            keys += _flat_keys(v, key + ".")
    return keys


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _leaves(cfg: dict, prefix: str = ""):
    for k, v in cfg.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def set_key(cfg: dict, key: str, value: Any) -> None:
    """Set `dotted.key` in `cfg` in place; the key must exist and the value match its type."""
    node = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            hint = difflib.get_close_matches(key, _flat_keys(cfg), n=3, cutoff=0.5)
            near = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
            raise MkeError(f"unknown config key '{key}'{near}")
        if i < len(parts) - 1:
            node = node[part]
    default = node[parts[-1]]
    if isinstance(default, dict) and not isinstance(value, dict):
        raise MkeError(f"config key '{key}' is a section; set one of its keys, e.g. {key}.{next(iter(default), 'x')}=...")
    if not _type_ok(default, value):
        raise MkeError(f"config key '{key}' expects {type(default).__name__} (default {default!r}), got {value!r}")
    if isinstance(default, float) and isinstance(value, int):
        value = float(value)
    node[parts[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` with the value read as YAML (`3`, `0.5`, `true`, `[a, b]`, `text`)."""
    if "=" not in item:
        raise MkeError(f"override '{item}' must look like key=value (for example student.epochs=500)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of `cfg` with each `dotted.key=value` applied."""
    out = copy.deepcopy(cfg)
    for item in overrides:
        set_key(out, *parse_override(item))
    return out


def resolve_config(task: str, config_path: str | Path | None, overrides: Iterable[str]) -> dict:
    """The task's defaults, then the user's YAML file (same keys), then `key=value` overrides."""
    cfg = load_yaml(default_config_path(task))
    if config_path is not None:
        for key, value in _leaves(load_yaml(config_path)):
            set_key(cfg, key, value)
    cfg = apply_overrides(cfg, overrides)
    if cfg.get("task") != task:
        raise MkeError(f"config says task '{cfg.get('task')}' but --task is '{task}'")
    return cfg


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
