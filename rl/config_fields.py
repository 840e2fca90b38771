"""The configs' building blocks: the error a bad value raises, the per-field check, and the
explicit-field rule (which fields the caller set, so that a method preset never overrides them).
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config value or combination of values is invalid. The message names the field."""


class _TracksExplicitFields(type):
    """Metaclass of the configs: records which fields the caller passed (``_explicit_fields``)
    before ``__post_init__`` runs, so that a method preset never overrides a field the user set,
    even to its default value."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = cls.__new__(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []
        object.__setattr__(obj, "_explicit_fields", frozenset(names[: len(args)]) | frozenset(kwargs))
        obj.__init__(*args, **kwargs)
        return obj


def _check(cond: bool, field_name: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{field_name}: {message}")


def _non_default_fields(cfg: Any) -> set[str]:
    """Fields whose value differs from the dataclass default (the explicit-field rule for a
    config object that was not built through its constructor)."""
    out = set()
    for f in dataclasses.fields(cfg):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            out.add(f.name)
            continue
        if getattr(cfg, f.name) != default:
            out.add(f.name)
    return out
