"""A source's options: a dataclass whose fields (types, defaults) say what its URI may carry.

`parse_options` turns the URI's text values into the field types and checks them: an unknown option
gets a "did you mean" and the list of valid ones, a value of the wrong type names the option and the
type, and the dataclass's own `__post_init__` may raise MkeError for values out of range (the URI is
put in front of its message). Field types: bool (1/0, true/false, yes/no, on/off; a bare `?loop`
is true), int, float, str, Path (`~` expanded: no shell does that inside a URI), and any of them `| None`.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

from mke.runtime.errors import MkeError

_TRUE, _FALSE = ("1", "true", "yes", "on", ""), ("0", "false", "no", "off")
_NAMES = {bool: "0 or 1", int: "an integer", float: "a number", str: "text", Path: "a path"}
_PLACEHOLDERS = {bool: "0|1", int: "N", float: "X", str: "TEXT", Path: "PATH"}


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """For sources that take none."""


def _field_types(cls: type) -> dict[str, type]:
    """{field: its base type}, `X | None` read as X."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if hint not in _NAMES:
            raise MkeError(f"{cls.__name__}.{f.name}: a source option must be bool, int, float, str or Path "
                           f"(or one of them | None), not {hint}")
        out[f.name] = hint
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def describe_options(cls: type, skip: str | None = None) -> str:
    """'fps (an integer, default 30), record (a path, default none)', or 'no options'."""
    types_ = _field_types(cls)
    parts = []
    for f in dataclasses.fields(cls):
        if f.name == skip:
            continue
        default = _default(f)
        shown = ("required" if default is dataclasses.MISSING else "default none" if default is None
                 else f"default {int(default) if isinstance(default, bool) else default}")
        parts.append(f"{f.name} ({_NAMES[types_[f.name]]}, {shown})")
    return ", ".join(parts) or "no options"


def option_summary(cls: type, skip: str | None = None) -> str:
    """'fps=30 record=PATH': each option with its default, or a placeholder of its type when it has none."""
    types_ = _field_types(cls)
    parts = []
    for f in dataclasses.fields(cls):
        if f.name != skip:
            default = _default(f)
            shown = (_PLACEHOLDERS[types_[f.name]] if default in (None, dataclasses.MISSING)
                     else int(default) if isinstance(default, bool) else default)
            parts.append(f"{f.name}={shown}")
    return " ".join(parts)


def _convert(kind: type, value: str) -> Any:
    if kind is bool:
        low = value.strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError(value)
    if value == "":
        raise ValueError(value)
    return Path(value).expanduser() if kind is Path else kind(value)


def parse_options(cls: type, query, where: str, form: str, target: str | None = None, address: str = "") -> Any:
    """`cls(**converted values)` from the URI's (option, value) pairs and its address, which fills the
    field `target`; `where` (the URI) and `form` (how the source is written) go into the errors."""
    kinds = _field_types(cls)
    valid = describe_options(cls, skip=target)
    out = {}
    for key, value in query:
        if key in out:
            raise MkeError(f"{where}: option {key!r} is given twice")
        if key not in kinds or key == target:
            close = difflib.get_close_matches(key, [k for k in kinds if k != target], n=1)
            hint = (f" ({key} is the address: {form})" if key == target
                    else f" (did you mean {close[0]!r}?)" if close else "")
            raise MkeError(f"{where}: unknown option {key!r}{hint}; {form} takes {valid}")
        out[key] = _checked(kinds[key], key, value, where, form, valid)
    if address:
        if target is None:
            raise MkeError(f"{where}: {form} takes no address (got {address!r}); its options go after '?': "
                           f"{valid}")
        out[target] = _checked(kinds[target], target, address, where, form, valid)
    try:
        return cls(**out)
    except MkeError as exc:
        raise MkeError(f"{where}: {exc}") from None
    except TypeError:  # a required field without a value
        missing = [f.name for f in dataclasses.fields(cls) if _default(f) is dataclasses.MISSING and f.name not in out]
        raise MkeError(f"{where}: {', '.join(missing)} missing; write it as {form}") from None


def _checked(kind: type, key: str, value: str, where: str, form: str, valid: str) -> Any:
    try:
        return _convert(kind, value)
    except ValueError:
        raise MkeError(f"{where}: option {key!r} must be {_NAMES[kind]}, got {value!r}; {form} takes {valid}") from None
