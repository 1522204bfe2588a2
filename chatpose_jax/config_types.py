"""Turn ml_collections ConfigDicts into frozen, typed dataclasses, once, early.

Every experiment config (`configs/*.py`) is a ConfigDict so that any field can be overridden on
the command line. Before any work starts it is converted with `from_config_dict` into the frozen
dataclasses below; an unknown field, a missing field or a value of the wrong type raises a
`ConfigError` naming the dotted path of the field (`config.optimizer.lrr`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config field is unknown, missing, or has a value that does not fit."""


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as e:  # try the next member of the union
                errors.append(str(e))
        raise ConfigError(f"{path}: {value!r} fits none of {tp}: {'; '.join(errors)}")
    if _is_dataclass_type(tp):
        return from_config_dict(tp, value, path)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a sequence, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}: {value!r}")
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not one of {allowed}")
        return value
    raise ConfigError(f"{path}: unsupported field type {tp}")


def from_config_dict(cls: type[T], cfg: Any, path: str = "config") -> T:
    """Builds the frozen dataclass `cls` from a ConfigDict / dict, checking every field.

    Args:
      cls: a dataclass type whose fields may themselves be dataclasses, tuples or scalars.
      cfg: an `ml_collections.ConfigDict`, a `FrozenConfigDict` or a plain mapping.
      path: the dotted name of `cfg`, used in error messages.

    Raises:
      ConfigError: naming the dotted path of the first unknown, missing or ill-typed field.
    """
    if cfg is None or not hasattr(cfg, "keys"):
        raise ConfigError(f"{path}: expected a config section, got {cfg!r}")
    mapping = {k: cfg[k] for k in cfg.keys()}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown field (known fields of {path}: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, field in fields.items():
        if name not in mapping:
            no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if no_default:
                raise ConfigError(f"{path}.{name}: missing field")
            continue
        kwargs[name] = _convert(mapping[name], hints[name], f"{path}.{name}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}: {e}") from e
