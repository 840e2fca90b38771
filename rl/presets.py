"""Method presets, and the one place where methods are loaded.

A *method* is registered pieces (reward functions, an advantage estimator, a loss composition,
a prompt sampler) plus a *preset* that names them with validated default settings::

    method: decs            # in a recipe, or --method decs, or GRPOConfig(method="decs")

expands to the preset's ``reward_funcs``, ``advantage_estimator``, ``loss_composition``,
``sampler`` (and any other config ``fields`` it names) and its default ``method_kwargs``.

**The override rule.** A field you set explicitly wins over the preset: a key of the recipe,
a ``--flag`` on the command line, or a keyword passed to ``GRPOConfig(...)`` (explicit means
*given*, even when the value equals the dataclass default: ``sampler: plain`` with ``method:
decs`` keeps ``plain``). ``method_kwargs`` is merged key by key: the preset's defaults, then the
recipe's keys, then the command line's ``--method_kwargs '{"k": v}'`` keys. A config built with
``dataclasses.replace`` passes every field, so it is taken as already resolved.

**Settings are checked at config time.** Every piece the config names declares the
``method_kwargs`` keys it reads: a typed settings class (``rewards.settings.MethodSettings``, which
validates them with ``from_kwargs``) or a ``{key: default}`` mapping with an optional validator. A key that no active piece and no preset knows is a
``ConfigError`` naming the key and the known keys (exit code 2 on the command line).

**Loading.** Registries (``rl.advantages``, ``rl.losses``, ``curriculum.samplers``,
``rewards``) never import a method. :func:`load_methods` imports the built-in method modules
(:data:`BUILTIN_METHOD_MODULES`) and then every entry point of the group ``parsimony.methods``:
importing its target registers the plugin's pieces with the public decorators (a target that is
a function rather than a module is called with no arguments). The config, the trainer and the
CLI call it before they look a name up; it runs once per process.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import importlib.metadata
import logging
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from rl.errors import ConfigError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "parsimony.methods"
# built-in method modules: importing each registers its pieces (and presets)
BUILTIN_METHOD_MODULES: tuple[str, ...] = (
    "rl.methods.grpo", "rl.methods.length", "rl.methods.decs", "rl.methods.hdpo", "rl.methods.mgrpo",
    "rl.methods.adapt_think",
)
# the config fields a preset may set besides method_kwargs
PRESET_FIELDS = ("reward_funcs", "advantage_estimator", "loss_composition", "sampler")


@dataclass(frozen=True)
class MethodPreset:
    """What ``method: <name>`` expands to.

    ``reward_funcs`` / ``advantage_estimator`` / ``loss_composition`` / ``sampler``: registered
    names. ``method_kwargs``: default settings (merged under the user's). ``settings``: extra
    keys the method itself knows beyond those its pieces declare (key -> default, or a
    ``rewards.settings.MethodSettings`` class).
    ``fields``: any other ``GRPOConfig`` fields the method sets (e.g. ``loss_type``).
    """

    name: str
    reward_funcs: tuple[str, ...] = ("accuracy",)
    advantage_estimator: str = "grpo"
    loss_composition: str = "single"
    sampler: str = "plain"
    method_kwargs: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""  # the module that registered it

    def config_fields(self) -> dict[str, Any]:
        """The config fields the preset sets (``method_kwargs`` aside)."""
        return {
            "reward_funcs": list(self.reward_funcs),
            "advantage_estimator": self.advantage_estimator,
            "loss_composition": self.loss_composition,
            "sampler": self.sampler,
            **copy.deepcopy(dict(self.fields)),
        }


METHODS: dict[str, MethodPreset] = {}
PLUGIN_ERRORS: dict[str, str] = {}  # entry point name -> why it failed to load
_loaded = False


def register_method(preset: MethodPreset | str | None = None, /, *, replace: bool = False, **kwargs: Any) -> MethodPreset:
    """Register a method preset: ``register_method(MethodPreset(...))`` or
    ``register_method("name", reward_funcs=[...], advantage_estimator=..., method_kwargs={...})``."""
    if isinstance(preset, str):
        kwargs["name"] = preset
        preset = None
    if preset is None:
        if "reward_funcs" in kwargs:
            kwargs["reward_funcs"] = tuple(kwargs["reward_funcs"])
        preset = MethodPreset(**kwargs)
    elif kwargs:
        raise TypeError("register_method: pass a MethodPreset or keyword fields, not both")
    if not isinstance(preset, MethodPreset):
        raise TypeError(f"register_method: expected a MethodPreset, got {type(preset).__name__}")
    if not preset.name or not isinstance(preset.name, str):
        raise ValueError(f"method name must be a non-empty string, got {preset.name!r}")
    if isinstance(preset.reward_funcs, str) or not preset.reward_funcs:
        raise ValueError(f"method {preset.name!r}: reward_funcs must be a non-empty list of names")
    if not isinstance(preset.method_kwargs, Mapping):
        raise ValueError(f"method {preset.name!r}: method_kwargs must be a mapping")
    bad = sorted(set(preset.fields) & {*PRESET_FIELDS, "method", "method_kwargs"})
    if bad:
        raise ValueError(f"method {preset.name!r}: give {bad} as their own arguments, not in fields")
    if preset.name in METHODS and not replace:
        raise ValueError(f"method {preset.name!r} is already registered")
    if not preset.source:
        import inspect

        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        mod = caller.f_globals.get("__name__", "") if caller is not None else ""
        object.__setattr__(preset, "source", mod)
    METHODS[preset.name] = preset
    return preset


# --- loading ---------------------------------------------------------------------------------


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def load_methods() -> None:
    """Import the built-in method modules, then every ``parsimony.methods`` entry point (once).

    A plugin that fails to load is logged and recorded in :data:`PLUGIN_ERRORS` (shown by
    ``parsimony methods`` and in unknown-name errors); the other methods stay usable."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        for name in BUILTIN_METHOD_MODULES:
            importlib.import_module(name)
    except BaseException:
        _loaded = False
        raise
    seen: set[str] = set()
    for ep in _entry_points():
        key = f"{ep.name} = {ep.value}"
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, types.ModuleType):
                obj()
        except Exception as e:  # a broken plugin must not take the built-in methods down
            PLUGIN_ERRORS[ep.name] = f"{ep.value}: {type(e).__name__}: {e}"
            logger.warning("parsimony: method plugin %r (%s) failed to load: %s: %s", ep.name, ep.value, type(e).__name__, e)


def _plugin_note() -> str:
    if not PLUGIN_ERRORS:
        return ""
    return "; plugins that failed to load: " + "; ".join(f"{k} ({v})" for k, v in sorted(PLUGIN_ERRORS.items()))


def _unknown(kind: str, name: Any, known: Iterable[str], field_name: str) -> ConfigError:
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{field_name}: unknown {kind} {name!r}{hint}; registered: {known}{_plugin_note()}")


def get_method(name: str) -> MethodPreset:
    load_methods()
    if name not in METHODS:
        raise _unknown("method", name, METHODS, "method")
    return METHODS[name]


# --- the registries, by kind -------------------------------------------------------------------


def registries() -> dict[str, dict[str, Any]]:
    """Every registry by kind (after :func:`load_methods`): rewards, advantage estimators,
    losses, compositions, samplers and, when ``rl.engines`` exists, engines."""
    load_methods()
    from curriculum.samplers import ASSEMBLERS
    from rewards import REWARDS
    from rl.advantages import ADVANTAGES
    from rl.losses import COMPOSITIONS, LOSSES

    out: dict[str, dict[str, Any]] = {
        "rewards": dict(REWARDS),
        "advantage estimators": dict(ADVANTAGES),
        "losses": dict(LOSSES),
        "compositions": dict(COMPOSITIONS),
        "samplers": dict(ASSEMBLERS),
    }
    engines = _engines()
    if engines is not None:
        out["engines"] = engines
    return out


def _engines() -> dict[str, Any] | None:
    """``rl.engines.ENGINES`` when that module exists (imported lazily)."""
    try:
        mod = importlib.import_module("rl.engines")
    except ModuleNotFoundError as e:
        if e.name not in ("rl.engines",):
            raise
        return None
    engines = getattr(mod, "ENGINES", None)
    return dict(engines) if isinstance(engines, Mapping) else None


def _declared_settings(piece: Any) -> Any:
    """What a registered piece declares: a :class:`rewards.settings.MethodSettings` class or a
    ``{key: default}`` mapping. A piece is a reward entry (:class:`rewards.registry.RewardEntry`), an
    estimator / loss / composition entry (:class:`rl.pieces.RegisteredPiece`), both with ``settings``,
    or a sampler class (:class:`curriculum.samplers.BatchAssembler`), with ``method_settings``; an
    engine declares none."""
    from curriculum.samplers import BatchAssembler
    from rewards.registry import RewardEntry
    from rl.pieces import RegisteredPiece

    if isinstance(piece, (RewardEntry, RegisteredPiece)):
        return piece.settings
    if isinstance(piece, type) and issubclass(piece, BatchAssembler):
        return piece.method_settings
    return {}  # an engine builder: engines read config fields, not method_kwargs


def piece_settings(piece: Any) -> dict[str, Any]:
    """The ``method_kwargs`` keys a registered piece reads, with their defaults (either declaration form)."""
    from rewards.settings import settings_defaults

    return settings_defaults(_declared_settings(piece))


def piece_settings_rows(piece: Any) -> list[dict[str, Any]]:
    """``key`` / ``default`` / ``accepts`` / ``help`` of each setting of a piece (a mapping: no help)."""
    from rewards.settings import settings_rows

    return settings_rows(_declared_settings(piece))


def _piece_validator(piece: Any) -> Callable[[Mapping[str, Any]], Any]:
    """The piece's config-time check of ``method_kwargs`` (raises ``ValueError`` naming the key): a
    settings class' ``from_kwargs``, then the piece's own validator if it has one."""
    from rewards.registry import RewardEntry
    from rewards.settings import is_settings_class

    if isinstance(piece, RewardEntry):
        own = piece.validate
    elif isinstance(piece, type):  # a sampler class
        own = piece.validate_method_settings
    else:
        own = piece.validator
    declared = _declared_settings(piece)
    if not is_settings_class(declared):
        return own or (lambda kwargs: None)

    def check(kwargs: Mapping[str, Any]) -> None:
        declared.from_kwargs(kwargs)
        if own is not None and own != declared.from_kwargs:
            own(kwargs)

    return check


def active_pieces(cfg: Any) -> list[tuple[str, str, Any]]:
    """``(kind, name, piece)`` of every registered piece ``cfg`` names; an unknown name is a
    ``ConfigError`` naming the field and the registered names."""
    regs = registries()
    out: list[tuple[str, str, Any]] = []
    funcs = cfg.reward_funcs
    if isinstance(funcs, str):
        funcs = [funcs]
    for name in funcs:
        if isinstance(name, str) and name in regs["rewards"]:
            out.append(("reward", name, regs["rewards"][name]))
        elif isinstance(name, str) and ":" in name:
            from rewards.registry import imported_reward_entry

            try:
                entry = imported_reward_entry(name)
            except ValueError as e:
                raise ConfigError(f"reward_funcs: {e}") from None
            out.append(("reward", name, entry))
        else:
            raise _unknown("reward function", name, regs["rewards"], "reward_funcs")
    for kind, field_name, reg in (
        ("advantage estimator", "advantage_estimator", "advantage estimators"),
        ("loss composition", "loss_composition", "compositions"),
        ("loss", "loss_type", "losses"),
        ("sampler", "sampler", "samplers"),
    ):
        name = getattr(cfg, field_name)
        if name not in regs[reg]:
            raise _unknown(kind, name, regs[reg], field_name)
        out.append((kind, name, regs[reg][name]))
    return out


def known_settings(cfg: Any) -> dict[str, str]:
    """key -> the piece (or preset) that declares it, for the pieces ``cfg`` names."""
    known: dict[str, str] = {}
    for kind, name, piece in active_pieces(cfg):
        for k in piece_settings(piece):
            known.setdefault(k, f"{kind} {name!r}")
    if getattr(cfg, "method", None):
        preset = get_method(cfg.method)
        for k, owner in preset_settings(preset).items():
            known.setdefault(k, owner)
    return known


def preset_settings(preset: MethodPreset) -> dict[str, str]:
    """key -> owner for the keys the preset's own pieces declare plus ``preset.settings``; a
    default in ``preset.method_kwargs`` that none of them declares is an error (a typo in the
    preset would otherwise pass every check)."""
    import types as _types

    own = _types.SimpleNamespace(**{"loss_type": "clipped", **preset.config_fields()})
    known: dict[str, str] = {}
    for kind, name, piece in active_pieces(own):
        for k in piece_settings(piece):
            known.setdefault(k, f"{kind} {name!r}")
    from rewards.settings import settings_defaults

    for k in settings_defaults(preset.settings):
        known.setdefault(k, f"method {preset.name!r}")
    stray = sorted(set(preset.method_kwargs) - set(known))
    if stray:
        raise ConfigError(
            f"method {preset.name!r}: default method_kwargs {stray} are declared by none of its pieces "
            f"({sorted(set(known.values()))}); declare them in settings= of the piece or of the preset"
        )
    return known


def validate_method_settings(cfg: Any) -> None:
    """The config-time check: every name is registered, every ``method_kwargs`` key is known to
    an active piece or the preset, and every piece's validator accepts the values."""
    kw = cfg.method_kwargs
    if not isinstance(kw, Mapping):
        raise ConfigError(f"method_kwargs: must be a mapping of setting: value, got {type(kw).__name__}")
    known = known_settings(cfg)
    unknown = sorted(set(kw) - set(known))
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, list(known), n=1, cutoff=0.8)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        where = ", ".join(sorted({v for v in known.values()})) or "none of the configured pieces reads method_kwargs"
        raise ConfigError(
            f"method_kwargs: unknown key(s) {', '.join(hints)}; known keys: {sorted(known)} (from {where})"
        )
    for kind, name, piece in active_pieces(cfg):
        check = _piece_validator(piece)
        try:
            check(kw)
        except ConfigError:
            raise
        except (ValueError, TypeError) as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith("method_kwargs") else f"method_kwargs ({kind} {name!r}): {msg}") from None


def apply_method(cfg: Any, explicit: Iterable[str]) -> MethodPreset | None:
    """Expand ``cfg.method`` in place: preset fields that are not in ``explicit`` are set from the
    preset; ``method_kwargs`` = preset defaults updated with ``cfg.method_kwargs``."""
    name = getattr(cfg, "method", None)
    if not name:
        return None
    preset = get_method(name)
    explicit = set(explicit)
    for f, v in preset.config_fields().items():
        if f not in explicit:
            setattr(cfg, f, v)
    kw = cfg.method_kwargs
    if not isinstance(kw, Mapping):
        raise ConfigError(f"method_kwargs: must be a mapping of setting: value, got {type(kw).__name__}")
    cfg.method_kwargs = {**copy.deepcopy(dict(preset.method_kwargs)), **dict(kw)}
    return preset
