"""Task configurations: a YAML file per task over the shared defaults, overridden by `key=value`.

`configs/defaults.yaml` holds the defaults every task shares; `configs/<task>.yaml` is merged over it
(its values win, its own keys add to them). Code reads the merged config as `cfg[...]`: a default
lives in one of these two files, never in a `cfg.get(key, default)`. Overrides are strict: a key that
is not in the merged config is an error that names it (with the nearest known keys), and a value must
have the type of the default it replaces. The resolved config is written beside the results, so
every number in a run can be traced to its settings.
"""
from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from mke.runtime.errors import MkeError


DEFAULTS = "defaults"  # configs/defaults.yaml: under every task's YAML


def default_config_path(task: str) -> Path:
    path = Path(str(resources.files("mke.configs").joinpath(f"{task}.yaml")))
    if task == DEFAULTS or not path.is_file():
        raise MkeError(f"no default config for task '{task}' (looked for {path})")
    return path


def shared_defaults() -> dict:
    """configs/defaults.yaml: the settings every task shares unless its own YAML sets them."""
    return load_yaml(Path(str(resources.files("mke.configs").joinpath(f"{DEFAULTS}.yaml"))))


def merge_under(cfg: dict, defaults: dict) -> dict:
    """A copy of `cfg` with every key of `defaults` it lacks, recursively into the sections both
    have; `cfg`'s values and key order come first."""
    out = copy.deepcopy(cfg)
    for key, value in defaults.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge_under(out[key], value)
    return out


def with_defaults(cfg: dict) -> dict:
    """`cfg` completed from configs/defaults.yaml: a config written before a key had its default
    there (an older run's config.yaml), or one whose section an override replaced whole
    (`pseudo_labels={kind: hard}`), gets the value the code has always used for it."""
    return merge_under(cfg, shared_defaults())


def task_config(task: str) -> dict:
    """The task's YAML merged over the shared defaults: what overrides may change."""
    return with_defaults(load_yaml(default_config_path(task)))


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
    """The shared defaults under the task's YAML, then the user's YAML file (same keys), then
    `key=value` overrides."""
    cfg = task_config(task)
    if config_path is not None:
        for key, value in _leaves(load_yaml(config_path)):
            set_key(cfg, key, value)
    cfg = with_defaults(apply_overrides(cfg, overrides))
    if cfg.get("task") != task:
        raise MkeError(f"config says task '{cfg.get('task')}' but --task is '{task}'")
    return cfg


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
