"""The configs' building blocks: the error a bad value raises, the per-field check, and the
explicit-field rule (which fields the caller set, so that a method preset never overrides them).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rl.errors import ConfigError

__all__ = ["ConfigError", "TracksExplicitFields", "check", "check_rollout_fields", "non_default_fields"]


class TracksExplicitFields(type):
    """Metaclass of the configs: records which fields the caller passed (``_explicit_fields``)
    before ``__post_init__`` runs, so that a method preset never overrides a field the user set,
    even to its default value."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = cls.__new__(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []
        object.__setattr__(obj, "_explicit_fields", frozenset(names[: len(args)]) | frozenset(kwargs))
        obj.__init__(*args, **kwargs)
        return obj


def check(cond: bool, field_name: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{field_name}: {message}")


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
