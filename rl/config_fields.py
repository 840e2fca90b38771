"""The configs' building blocks: the error a bad value raises, the per-field check, and the
explicit-field rule (which fields the caller set, so that a method preset never overrides them).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from rl.errors import ConfigError

__all__ = ["ConfigError", "TracksExplicitFields", "check", "check_field_types", "check_rollout_fields", "check_task_names", "non_default_fields"]


class TracksExplicitFields(type):
    """Metaclass of the configs: records which fields the caller passed (``_explicit_fields``)
    before ``__post_init__`` runs, so that a method preset never overrides a field the user set,
    even to its default value."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        from rl.trl_names import translate_trl_names

        kwargs = translate_trl_names(cls, kwargs)  # TRL's names and values read into ours (docs/coming-from-trl.md)
        obj = cls.__new__(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []
        object.__setattr__(obj, "_explicit_fields", frozenset(names[: len(args)]) | frozenset(kwargs))
        obj.__init__(*args, **kwargs)
        return obj


def check(cond: bool, field_name: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{field_name}: {message}")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def check_field_types(cfg: Any) -> None:
    """Every field's value against its annotation, when the config is built: a whole number for an
    ``int`` (``8.0`` -> 8; ``1.5`` or ``"abc"`` is an error), a number for a ``float`` (``"1e-5"`` -> 1e-05),
    true/false for a ``bool``, a list for a ``list[...]`` (a string is one item, or comma-separated items:
    ``reward_funcs: accuracy`` -> ``[accuracy]``), a mapping for a ``dict``. Values are converted in
    place; a wrong type is a :class:`ConfigError` naming the field."""
    hints = _type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if f.init and f.name in hints:
            value = getattr(cfg, f.name)
            new = _coerce(f.name, value, hints[f.name])
            if new is not value:
                object.__setattr__(cfg, f.name, new)


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _coerce(name: str, value: Any, tp: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0]) if len(inner) == 1 else value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{name}: expects true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return _coerce(name, float(value) if any(c in value for c in ".eE") else int(value), int)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expects a whole number, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value if isinstance(value, float) else float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expects a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name}: expects a string, got {value!r}")
    if origin is list:
        item = args[0] if args else Any
        if isinstance(value, str):
            value = [x.strip() for x in value.split(",") if x.strip()]
        elif isinstance(value, tuple):
            value = list(value)
        elif not isinstance(value, list):
            value = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expects a list, got {value!r}")
        new = [_coerce(f"{name}[{i}]", x, item) if item in (int, float, str, bool) and not callable_item(x) else x
               for i, x in enumerate(value)]
        return value if all(a is b for a, b in zip(new, value)) else new
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expects a mapping (key: value), got {value!r}")
        return value
    return value


def check_task_names(cfg: Any) -> None:
    """``task:<name>`` in ``dataset`` (and ``eval_dataset``, ``eval_loss_dataset``) names a registered
    synthetic task (``curriculum.tasks``), checked when the config is built, before any model loads."""
    from curriculum.tasks import TASKS

    for name in ("dataset", "eval_dataset", "eval_loss_dataset"):
        spec = getattr(cfg, name, None)
        if isinstance(spec, str) and spec.startswith("task:") and spec[5:] not in TASKS:
            from rl.cli_flags import did_you_mean

            raise ConfigError(f"{name}: unknown task {spec[5:]!r}{did_you_mean(spec[5:], TASKS, 0.6)}; "
                              f"known tasks: {', '.join(sorted(TASKS))}")


def callable_item(x: Any) -> bool:
    """A list item given as an object (a reward function in ``reward_funcs``), kept as is."""
    return callable(x) and not isinstance(x, (str, int, float))


def non_default_fields(cfg: Any) -> set[str]:
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


def check_rollout_fields(cfg: Any) -> None:
    """``GRPOConfig``'s rollout checks: the engine (against the registry), HF decoding, role adapters,
    async rollouts and the vLLM / server settings. Raises :class:`ConfigError` naming the field."""
    from rl.engines import ENGINES  # lazy: rl.engines imports this module

    if cfg.engine not in ENGINES:
        from rl.presets import load_methods

        load_methods()  # a `parsimony.methods` plugin may register it
    check(cfg.engine in ENGINES, "engine", f"unknown engine {cfg.engine!r}; registered: {sorted(ENGINES)}")
    check(cfg.hf_decode in ("generate", "compact"), "hf_decode", f"generate | compact, got {cfg.hf_decode!r}")
    check(cfg.split_by_length >= 1, "split_by_length", "must be >= 1")
    if cfg.role_adapters:
        names = list(cfg.role_adapters)
        check(cfg.use_peft, "role_adapters", "needs use_peft: true (one LoRA adapter per role on one base)")
        check(len(names) >= 2 and len(set(names)) == len(names) and all(isinstance(n, str) and n.isidentifier()
               and n != "default" for n in names), "role_adapters",
               f"two or more distinct names (identifiers, not 'default'), got {names}")
        check(cfg.engine == "hf" and not cfg.async_rollouts, "role_adapters",
               "generates with the HF engine on the live adapters (engine: hf, async_rollouts: false)")
    check(cfg.max_staleness >= 1, "max_staleness", "must be >= 1 (one-step off-policy rollouts are 1 step behind)")
    check(not (cfg.async_rollouts and cfg.environment), "async_rollouts",
           "multi-turn episodes are generated turn by turn; async_rollouts serves single-turn rollouts")
    check(not (cfg.async_rollouts and cfg.vllm_enable_sleep_mode), "async_rollouts",
           "vllm_enable_sleep_mode frees the engine during the update, when async rollouts generate")
    check(cfg.rollout_mode in ("colocate", "server"), "rollout_mode", f"must be colocate | server, got {cfg.rollout_mode!r}")
    check(
        cfg.rollout_mode == "colocate" or cfg.engine == "vllm",
        "rollout_mode", "server mode generates with a vLLM server: set engine: vllm",
    )
    check(cfg.server_url.startswith(("http://", "https://")), "server_url", f"must be an http(s) URL, got {cfg.server_url!r}")
    check(cfg.server_timeout > 0, "server_timeout", "must be > 0")
    check(cfg.server_weight_transfer in ("file", "nccl"), "server_weight_transfer", "must be file | nccl")
    check(0 < cfg.vllm_gpu_memory_utilization <= 1, "vllm_gpu_memory_utilization", "must be in (0, 1]")
    check(cfg.vllm_tensor_parallel_size >= 1, "vllm_tensor_parallel_size", "must be >= 1")
    check(cfg.vllm_cpu_kv_cache_gib > 0, "vllm_cpu_kv_cache_gib", "must be > 0")
    check(
        cfg.vllm_is_cap == 0 or cfg.vllm_is_cap >= 1,
        "vllm_is_cap", f"must be 0 (off) or >= 1 (a cap below 1 down-weights on-policy tokens), got {cfg.vllm_is_cap}",
    )
    if cfg.vllm_max_model_len is not None:
        check(
            cfg.vllm_max_model_len >= cfg.max_prompt_length + cfg.max_completion_length,
            "vllm_max_model_len", "must hold max_prompt_length + max_completion_length",
        )
