"""A built-in dataset's `data:` settings: its DATA_DEFAULTS overlaid with the config, each value of its
default's kind and checked, so a wrong field is named before anything is generated."""
from __future__ import annotations

import numpy as np

from mke.runtime.errors import MkeError


def overlay_settings(data_cfg: dict, defaults: dict) -> dict:
    """`defaults` overlaid with `data_cfg` (nested dicts merged; keys outside `defaults`, such as cache_dir
    or source, are left out), each value of its default's kind (`typed`)."""
    out = {}
    for key, default in defaults.items():
        value = data_cfg.get(key, default)
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise MkeError(f"data.{key} must be a mapping with keys {', '.join(default)}, got {value!r}")
            unknown = sorted(set(value) - set(default))
            if unknown:
                raise MkeError(f"data.{key} has unknown key(s) {', '.join(unknown)}; known: {', '.join(default)}")
            out[key] = {k: typed(f"{key}.{k}", value.get(k, d), d) for k, d in default.items()}
        else:
            out[key] = typed(key, value, default)
    return out


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def typed(name: str, value, default):
    """`value` as its default's kind: integer, number (float, so 2 and 2.0 name one cache) or [low, high]
    (integers where the default's are); other kinds (flags, text) as given."""
    if isinstance(default, bool) or not isinstance(default, (int, float, list)):
        return value
    if isinstance(default, int):
        if not (is_number(value) and float(value).is_integer()):
            raise MkeError(f"data.{name} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if not is_number(value):
            raise MkeError(f"data.{name} must be a number, got {value!r}")
        return float(value)
    whole = all(isinstance(d, int) for d in default)
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(is_number(v) for v in value)
            and value[0] <= value[1] and (not whole or all(float(v).is_integer() for v in value))):
        raise MkeError(f"data.{name} must be [low, high] with low <= high{' (integers)' if whole else ''}, "
                       f"got {value!r}")
    return [int(v) for v in value] if whole else [float(v) for v in value]
