"""The reward registry: names -> *factories*, so every trainer gets its own reward objects.

    @register_reward("my_reward")                 # a class: each resolution makes a new instance
    class MyReward:
        method_settings = MySettings              # the method_kwargs keys it reads (rewards.settings), or
                                                  # a mapping {"my_alpha": 0.5} of key -> default
        def __call__(self, prompts, completions, completion_ids, **columns): ...

    @register_reward("my_plain")                  # a plain function: stateless, shared as is
    def my_plain(prompts, completions, completion_ids, **columns): ...

    register_reward("my_tuned", factory=lambda: MyReward(alpha=0.1))   # any zero-argument factory

A registered *instance* is refused: its ``setup()`` state (judge, settings, counters) would be
shared by every trainer of the process. ``get_reward_func(name)`` returns a fresh object on every
call (for a class or factory), or the function itself.

Settings: a piece that reads ``method_kwargs`` declares the keys it knows (``settings=`` or a
``method_settings`` attribute): a :class:`rewards.settings.MethodSettings` class (defaults, help and
validation in one place) or a mapping key -> default, and may give ``validate=`` (or a
``validate_method_settings`` attribute): ``fn(method_kwargs) -> None`` that raises ``ValueError``
naming the key. The config checks both before any model loads (``rl/presets.py``).

This module imports no reward implementation: method rewards (DECS, the length family) register
themselves when their module is imported, and ``rl.presets.load_methods()`` imports them.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from rewards.settings import settings_defaults


@dataclass(frozen=True)
class RewardEntry:
    """One registered reward: how to make it, and the ``method_kwargs`` keys it reads."""

    name: str
    factory: Callable[[], Any]
    settings: Any = field(default_factory=dict)  # a rewards.settings.MethodSettings class or {key: default}
    validate: Callable[[Mapping[str, Any]], None] | None = None
    doc: str = ""
    module: str = ""  # where the reward is defined

    def make(self) -> Any:
        return self.factory()


REWARDS: dict[str, RewardEntry] = {}


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def register_reward(
    name: str,
    *,
    factory: Callable[[], Any] | None = None,
    settings: Any = None,
    validate: Callable[[Mapping[str, Any]], None] | None = None,
    replace: bool = False,
):
    """Register a reward under ``name``: as a decorator on a class (one new instance per
    resolution) or a plain function (shared; it must be stateless), or with ``factory=`` (a
    zero-argument callable returning the reward object). ``settings`` / ``validate``: see the
    module docstring; by default read from the class' ``method_settings`` /
    ``validate_method_settings`` attributes. ``replace=True`` overrides an existing name."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"reward name must be a non-empty string without ':', got {name!r}")

    def add(target: Any, make: Callable[[], Any]) -> None:
        if name in REWARDS and not replace:
            raise ValueError(f"reward function {name!r} is already registered")
        REWARDS[name] = _entry(name, target, make, settings, validate)

    if factory is not None:
        if not callable(factory):
            raise TypeError(f"register_reward({name!r}): factory must be callable")
        add(factory, factory)
        return factory

    def deco(target: Any) -> Any:
        if inspect.isclass(target):
            add(target, target)
        elif inspect.isroutine(target):
            add(target, lambda: target)
        else:
            raise TypeError(
                f"register_reward({name!r}): got an instance of {type(target).__name__}; register its class "
                "(or factory=...) so that each trainer gets its own object"
            )
        return target

    return deco


def _entry(name: str, target: Any, make: Callable[[], Any], settings: Any,
           validate: Callable[[Mapping[str, Any]], None] | None) -> RewardEntry:
    """The entry of ``target`` (a class, function or factory): ``settings`` / ``validate`` as given, else
    the target's declared ``method_settings`` / ``validate_method_settings`` (read once, here)."""
    s = settings if settings is not None else getattr(target, "method_settings", None) or {}
    settings_defaults(s)  # a MethodSettings class or a mapping, else TypeError now
    v = validate if validate is not None else getattr(target, "validate_method_settings", None)
    return RewardEntry(name=name, factory=make, settings=s if not isinstance(s, Mapping) else dict(s), validate=v,
                       doc=_first_line(target), module=getattr(target, "__module__", "") or "")


def imported_reward_entry(name: str) -> RewardEntry:
    """The entry of a ``"module.path:attr"`` reward (imported, not instantiated), with the settings
    it declares, as registered rewards have."""
    obj = import_reward(name)
    return _entry(name, obj, lambda: obj, None, None)


def get_reward_entry(name: str) -> RewardEntry:
    try:
        return REWARDS[name]
    except KeyError:
        raise ValueError(f"unknown reward function {name!r}; known: {', '.join(sorted(REWARDS))}; "
                         "or use 'module.path:function'") from None


def get_reward_func(name: str) -> Callable[..., Any]:
    """A new object of the registered reward ``name`` (see ``REWARDS``; a registered plain
    function is returned as is), or ``"module.path:attr"`` imported."""
    if not isinstance(name, str):
        raise ValueError(f"reward function name must be a string, got {type(name).__name__}")
    if name in REWARDS:
        return REWARDS[name].make()
    if ":" in name:
        return import_reward(name)
    get_reward_entry(name)  # raises with the known names
    raise AssertionError  # pragma: no cover


def import_reward(name: str) -> Any:
    """``"module.path:attr.sub"`` -> the object (imported; not instantiated)."""
    module_name, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r} for reward function {name!r}: {e}") from e
    for part in attr.split("."):
        if not part or not hasattr(obj, part):
            raise ValueError(f"module {module_name!r} has no attribute {attr!r} (reward function {name!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"reward function {name!r} is not callable")
    return obj
