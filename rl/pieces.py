"""What a registered piece of the engine is: the function a method supplies, plus the
``method_kwargs`` settings it declares.

The registries of :mod:`rl.advantages` (estimators) and :mod:`rl.losses` (losses and compositions)
hold these entries, never bare functions with attributes stuck on them. The decorators return the
decorated function unchanged, so it can still be called and tested directly; the registry's entry is
callable the same way. The config reads ``settings`` and calls ``validate`` (``rl/presets.py``).

    settings: the keys of ``cfg.method_kwargs`` the piece reads: a settings dataclass
              (``rewards.settings.MethodSettings``: defaults, help and validation in one place), or a
              mapping of key -> default (the older form, kept for plugins)
    validate: ``f(method_kwargs) -> None`` raising ``ValueError`` that names the key (optional; with a
              settings class, only for what the class does not check)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class RegisteredPiece:
    """One registered function and its declared settings."""

    name: str
    fn: Callable[..., Any]
    settings: Any = field(default_factory=dict)  # Mapping[str, default] or a MethodSettings class
    validator: Callable[[Mapping[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        from rewards.settings import settings_defaults

        settings_defaults(self.settings)  # a MethodSettings class or a mapping, else TypeError now

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def validate(self, method_kwargs: Mapping[str, Any]) -> None:
        """Config-time check of this piece's keys in ``method_kwargs``; raises ``ValueError``."""
        from rewards.settings import is_settings_class

        from_kwargs = self.settings.from_kwargs if is_settings_class(self.settings) else None
        if from_kwargs is not None:
            from_kwargs(method_kwargs)
        if self.validator is not None and self.validator != from_kwargs:
            self.validator(method_kwargs)


def registering(registry: dict[str, Any], kind: str, name: str, make: Callable[[Callable[..., Any]], Any]):
    """The decorator the ``register_*`` functions return: ``make(fn)`` builds the entry."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in registry:
            raise ValueError(f"{kind} {name!r} is already registered")
        registry[name] = make(fn)
        return fn

    return deco
