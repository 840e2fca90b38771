"""Typed method settings: one validated dataclass per piece's ``method_kwargs`` keys.

A method's pieces (rewards, advantage estimators, loss compositions, samplers) read their settings
from the flat ``method_kwargs`` dict of the config. Each piece declares them once, as a frozen
dataclass whose fields are made with :func:`setting`::

    from dataclasses import dataclass
    from rewards.settings import MethodSettings, setting

    @dataclass(frozen=True)
    class BriefSettings(MethodSettings):
        alpha: float = setting("brief_alpha", 0.2, "weight of the length term", minimum=0.0, maximum=1.0)
        mode: str = setting("brief_mode", "linear", "how the length counts", choices=("linear", "log"))
        cap: int | None = setting("brief_cap", None, "token cap (null: none)", minimum=1)

        def check(self):                       # optional: checks across fields
            if self.mode == "log" and self.cap is None:
                raise self.bad("brief_cap", "is needed with brief_mode 'log'")

    s = BriefSettings.from_kwargs(cfg.method_kwargs)   # reads only its own keys; s.alpha, s.mode, s.cap
    BriefSettings.defaults()                           # {"brief_alpha": 0.2, "brief_mode": "linear", "brief_cap": None}

**One field = one key.** ``setting(key, default, help, **constraints)`` names the ``method_kwargs``
key (spelled out in full, so that a grep for the key finds its declaration), states its default once
and says what it does. **Validation comes from the declaration**: the annotation gives the accepted
types (``float``: a finite number, ints converted to float; ``int``; ``bool``; ``str``: non-empty;
``None``; a union of these, e.g. ``str | int`` or ``int | None``), and the constraints narrow them:

    minimum, maximum                    numbers: inclusive bounds
    exclusive_minimum, exclusive_maximum numbers: strict bounds (``exclusive_minimum=0`` means > 0)
    choices                             strings: the accepted values
    whole_float                         ints: also accept a float with no fraction (2.0 -> 2)
    parse                               ``f(value) -> value`` raising ``ValueError("must be ...")``: replaces
                                        the type check, for a value the annotation cannot describe

A bad value raises ``cls.error`` (``ValueError``; ``rl/`` classes use ``rl.errors.ConfigError``) with
the message ``method_kwargs.<key>: must be <what is accepted>, got <value>``. The hook :meth:`check`
runs after every field parsed: it raises ``self.bad(key, message)`` for a combination that is wrong,
and may return a new instance (``dataclasses.replace``) to fill a value that depends on others.

The registries (``register_reward`` / ``register_advantage`` / ``register_composition`` /
``register_loss``, a sampler's ``method_settings``) take such a class where they took a
``{key: default}`` mapping (still accepted): :func:`settings_defaults` and :func:`settings_rows`
read either form. This module is the lowest layer: it imports nothing of parsimony.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import types
import typing
from typing import Any, Callable, ClassVar, Iterable, Mapping

__all__ = ["MethodSettings", "is_settings_class", "render_rows", "setting", "settings_defaults", "settings_rows"]

_CONSTRAINTS = ("minimum", "maximum", "exclusive_minimum", "exclusive_maximum", "choices", "whole_float", "parse")


def setting(key: str, default: Any, help: str, *, minimum: float | None = None, maximum: float | None = None,
            exclusive_minimum: float | None = None, exclusive_maximum: float | None = None,
            choices: Iterable[str] | None = None, whole_float: bool = False,
            parse: Callable[[Any], Any] | None = None) -> Any:
    """A field of a :class:`MethodSettings` dataclass: the ``method_kwargs`` key it reads, its default,
    its help text and the constraints on its value (see the module docstring)."""
    if not isinstance(key, str) or not key:
        raise TypeError(f"setting: key must be a non-empty string, got {key!r}")
    meta: dict[str, Any] = {"key": key, "help": help}
    for name, v in (("minimum", minimum), ("maximum", maximum), ("exclusive_minimum", exclusive_minimum),
                    ("exclusive_maximum", exclusive_maximum), ("parse", parse)):
        if v is not None:
            meta[name] = v
    if choices is not None:
        meta["choices"] = tuple(choices)
    if whole_float:
        meta["whole_float"] = True
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# --- one field's spec -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Spec:
    name: str  # the dataclass field
    key: str  # the method_kwargs key
    help: str
    types: tuple[Any, ...]  # the accepted types, from the annotation
    meta: Mapping[str, Any]
    field: dataclasses.Field

    def default(self) -> Any:
        f = self.field
        if f.default is not dataclasses.MISSING:
            return copy.deepcopy(f.default)
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            return f.default_factory()  # type: ignore[misc]
        raise TypeError(f"setting {self.key!r} has no default")

    def bounds(self) -> str:
        m = self.meta
        lo, lo_x = (m["minimum"], False) if "minimum" in m else (m.get("exclusive_minimum"), True)
        hi, hi_x = (m["maximum"], False) if "maximum" in m else (m.get("exclusive_maximum"), True)
        if lo is not None and hi is not None:
            return f" in {'(' if lo_x else '['}{lo!r}, {hi!r}{')' if hi_x else ']'}"
        if lo is not None:
            return f" {'>' if lo_x else '>='} {lo!r}"
        if hi is not None:
            return f" {'<' if hi_x else '<='} {hi!r}"
        return ""

    def expected(self) -> str:
        """What the field accepts, in words ("a finite number >= 0.0", "one of ['a', 'b'] or null")."""
        if "parse" in self.meta:
            return ""  # the help says it
        words = []
        for t in self.types:
            if t is type(None):
                words.append("null")
            elif t is bool:
                words.append("true or false")
            elif t is int:
                words.append("an integer" + self.bounds())
            elif t is float:
                words.append("a finite number" + self.bounds())
            elif t is str:
                choices = self.meta.get("choices")
                words.append(f"one of {list(choices)}" if choices else "a non-empty string")
            else:
                words.append("anything")
        return " or ".join(words)

    def in_bounds(self, v: float) -> bool:
        m = self.meta
        return not (("minimum" in m and v < m["minimum"]) or ("maximum" in m and v > m["maximum"])
                    or ("exclusive_minimum" in m and v <= m["exclusive_minimum"])
                    or ("exclusive_maximum" in m and v >= m["exclusive_maximum"]))

    def parse(self, v: Any) -> Any:
        """The validated value of ``v``; raises ``ValueError("must be ..., got ...")``."""
        if "parse" in self.meta:
            return self.meta["parse"](v)
        for t in self.types:
            if t is type(None) and v is None:
                return None
            if t is bool and isinstance(v, bool):
                return v
            if t is int and not isinstance(v, bool):
                i = int(v) if isinstance(v, float) and self.meta.get("whole_float") and v.is_integer() else v
                if isinstance(i, int) and self.in_bounds(i):
                    return i
            if t is float and not isinstance(v, bool) and isinstance(v, (int, float)):
                if math.isfinite(float(v)) and self.in_bounds(float(v)):
                    return float(v)
            if t is str and isinstance(v, str) and v.strip():
                choices = self.meta.get("choices")
                if not choices or v in choices:
                    return v
            if t is Any:
                return v
        raise ValueError(f"must be {self.expected()}, got {v!r}")


def _types_of(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(typing.get_args(annotation))
    return (annotation,)


@functools.lru_cache(maxsize=None)
def _specs(cls: type) -> tuple[_Spec, ...]:
    hints = typing.get_type_hints(cls)
    out, seen = [], {}
    for f in dataclasses.fields(cls):
        if "key" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name}: a settings field is made with rewards.settings.setting(key, ...)")
        key = f.metadata["key"]
        if key in seen:
            raise TypeError(f"{cls.__name__}: fields {seen[key]!r} and {f.name!r} both read {key!r}")
        seen[key] = f.name
        kinds = _types_of(hints[f.name])
        if "parse" not in f.metadata and not set(kinds) <= {bool, int, float, str, type(None), Any}:
            raise TypeError(f"{cls.__name__}.{f.name}: annotation {hints[f.name]!r} is not bool / int / float / str / "
                            "None (or a union of them); give parse= for anything else")
        if "choices" in f.metadata and str not in kinds:
            raise TypeError(f"{cls.__name__}.{f.name}: choices= needs str in the annotation")
        meta = {k: f.metadata[k] for k in _CONSTRAINTS if k in f.metadata}
        out.append(_Spec(f.name, key, f.metadata.get("help", ""), kinds, meta, f))
    return tuple(out)


# --- the base ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MethodSettings:
    """Base of a piece's settings dataclass (subclass it with ``@dataclass(frozen=True)``; fields made with
    :func:`setting`). Build instances with :meth:`from_kwargs`; the constructor does not validate."""

    error: ClassVar[type[Exception]] = ValueError  # what a bad value raises (rl/ uses ConfigError)

    @classmethod
    def bad(cls, key: str, message: str) -> Exception:
        """The error of one setting: ``method_kwargs.<key>: <message>`` (raise it)."""
        return cls.error(f"method_kwargs.{key}: {message}")

    @classmethod
    def from_kwargs(cls, method_kwargs: Mapping[str, Any] | None = None):
        """The validated settings of ``method_kwargs`` (its other keys are ignored; missing ones take
        their defaults). A bad value raises :attr:`error` ``("method_kwargs.<key>: must be ...")``."""
        kw = {} if method_kwargs is None else method_kwargs
        if not isinstance(kw, Mapping):
            raise cls.error(f"method_kwargs: must be a mapping, got {type(kw).__name__}")
        values = {}
        for spec in _specs(cls):
            if spec.key in kw:
                try:
                    values[spec.name] = spec.parse(kw[spec.key])
                except ValueError as e:
                    raise cls.bad(spec.key, str(e)) from None
        inst = cls(**values)
        checked = inst.check()
        return inst if checked is None else checked

    @classmethod
    def from_args(cls, args: Any):
        """:meth:`from_kwargs` of ``args.method_kwargs`` (a config, or anything with that attribute)."""
        return cls.from_kwargs(getattr(args, "method_kwargs", None))

    def check(self) -> Any:
        """Checks across fields, after each field parsed: raise ``self.bad(key, message)``; return None,
        or a new instance (``dataclasses.replace(self, ...)``) to use instead."""
        return None

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The ``method_kwargs`` keys, in declaration order."""
        return tuple(s.key for s in _specs(cls))

    @classmethod
    def defaults(cls, *keys: str) -> dict[str, Any]:
        """``{key: default}`` of every setting, or of the ``keys`` given (for a preset that lists some)."""
        specs = {s.key: s for s in _specs(cls)}
        unknown = [k for k in keys if k not in specs]
        if unknown:
            raise KeyError(f"{cls.__name__} has no setting(s) {unknown}; known: {list(specs)}")
        return {k: specs[k].default() for k in (keys or specs)}

    def to_kwargs(self) -> dict[str, Any]:
        """``{key: value}`` of this instance (the inverse of :meth:`from_kwargs`)."""
        return {s.key: getattr(self, s.name) for s in _specs(type(self))}

    @classmethod
    def help_rows(cls) -> list[dict[str, Any]]:
        """One row per setting: ``key``, ``default``, ``accepts`` (from the declaration) and ``help``."""
        return [{"key": s.key, "default": s.default(), "accepts": s.expected(), "help": s.help} for s in _specs(cls)]


def is_settings_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, MethodSettings)


def settings_defaults(declared: Any) -> dict[str, Any]:
    """``{key: default}`` of a declaration: a :class:`MethodSettings` class or a ``{key: default}`` mapping."""
    if is_settings_class(declared):
        return declared.defaults()
    if declared is None:
        return {}
    if isinstance(declared, Mapping):
        return dict(declared)
    raise TypeError(f"settings must be a MethodSettings class or a mapping of key: default, got {declared!r}")


def settings_rows(declared: Any) -> list[dict[str, Any]]:
    """:meth:`MethodSettings.help_rows` of a declaration; a mapping gives rows without help."""
    if is_settings_class(declared):
        return declared.help_rows()
    return [{"key": k, "default": v, "accepts": "", "help": ""} for k, v in settings_defaults(declared).items()]


def _show(v: Any, limit: int = 30) -> str:
    """A default as a recipe would write it (null, true, 'text', [..]), cut at ``limit`` characters."""
    if v is None or isinstance(v, bool):
        s = {None: "null", True: "true", False: "false"}[v]
    else:
        s = repr(list(v) if isinstance(v, tuple) else v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def render_rows(rows: Iterable[Mapping[str, Any]], indent: str = "") -> list[str]:
    """Text lines ``key  default  help (accepts)`` of :func:`settings_rows`, in aligned columns (a row
    with a true ``mark`` gets a ``*`` after its default)."""
    rows = list(rows)
    if not rows:
        return []
    cells = [(r["key"], _show(r["default"]) + ("*" if r.get("mark") else ""),
              r["help"] + (f" ({r['accepts']})" if r.get("accepts") else "")) for r in rows]
    wk = max(len(c[0]) for c in cells)
    wd = max(len(c[1]) for c in cells)
    return [f"{indent}{k:<{wk}}  {d:<{wd}}  {h}".rstrip() for k, d, h in cells]
