"""TRL's config vocabulary, read into ours (docs/coming-from-trl.md is the table for people).

A TRL ``GRPOConfig`` / ``trl grpo`` YAML (its ``ScriptArguments`` and ``ModelConfig`` keys too) is
read by :func:`translate_trl_names` before a config is built, from a recipe, the command line or
``GRPOConfig(...)`` keywords:

- a TRL name for one of our settings is renamed (``model_name_or_path`` -> ``model``,
  ``vllm_importance_sampling_cap`` -> ``vllm_is_cap``, ...);
- a TRL value with another shape is translated (``use_vllm: true`` -> ``engine: vllm``,
  ``vllm_mode`` -> ``rollout_mode``, ``loss_type: dapo|bnpo|grpo|dr_grpo`` -> ``loss_agg_mode``,
  boolean ``scale_rewards`` -> ``group | none``, ``reward_funcs: [accuracy_reward]`` -> ``[accuracy]``);
- a TRL setting we do not have is accepted where its value asks for what we do anyway; otherwise the
  config fails with one line that names each such key and what to use instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from rl.errors import ConfigError

DOCS = "docs/coming-from-trl.md"

# TRL name -> our field, same meaning and value
RENAMED = {
    "model_name_or_path": "model",
    "dataset_name": "dataset",
    "dataset_train_split": "dataset_split",
    "vllm_server_timeout": "server_timeout",
    "vllm_max_model_length": "vllm_max_model_len",
    "vllm_importance_sampling_cap": "vllm_is_cap",
    "vllm_importance_sampling_clip_max": "vllm_is_cap",
    "max_seq_length": "max_length",
}
# TRL's loss_type -> our loss_agg_mode (the loss itself is the clipped surrogate in both); cispo is a loss of ours too
TRL_LOSS_TYPES = {"grpo": "seq-mean-token-mean", "bnpo": "token-mean", "dapo": "token-mean",
                  "dr_grpo": "seq-mean-token-sum-norm"}
TRL_ONLY_LOSSES = {"sapo": "no SAPO loss here (clipped | gspo | cispo | reinforce: `parsimony methods`)",
                   "luspo": "no LUSPO loss here (loss_type: gspo is GSPO)",
                   "vespo": "no VESPO loss here (clipped | gspo | cispo | reinforce: `parsimony methods`)"}
# TRL's reward names (trl.rewards / `trl grpo --reward_funcs`) -> ours
TRL_REWARDS = {"accuracy_reward": "accuracy", "reasoning_accuracy_reward": "accuracy",
               "think_format_reward": "think_format", "get_soft_overlong_punishment": "soft_overlong"}

# TRL settings we do not have: (values that are accepted as they ask for what we do anyway, what to use instead)
NOT_OURS: dict[str, tuple[tuple[Any, ...], str]] = {
    "push_to_hub": ((False,), "upload output_dir/final yourself (`huggingface-cli upload`)"),
    "trust_remote_code": ((False,), "models load without remote code"),
    "logging_strategy": (("steps",), "logging_steps"),
    "save_strategy": (("steps",), "save_steps (0 = only the final model)"),
    "eval_strategy": (("no",), "eval_steps with eval_dataset"),
    "dataset_config": ((None,), "a hub configuration: save it with datasets.save_to_disk and pass the folder as dataset"),
    "dataset_test_split": (("test",), "eval_dataset"),
    "dataset_streaming": ((False,), "a dataset is read whole"),
    "model_revision": ((None, "main"), "a local copy of that revision as model"),
    "attn_implementation": ((None,), "models load with transformers' default attention"),
    "reward_model_name_or_path": ((None,), "a reward function (docs/grpo.md); reward models are not supported"),
    "model_init_kwargs": ((None, {}), "bf16 (bfloat16 autocast)"),
    "fp16": ((False,), "bf16"),
    "load_in_4bit": ((False,), "no quantised training"),
    "load_in_8bit": ((False,), "no quantised training"),
    "use_liger_kernel": ((False,), "no Liger kernels"),
    "shuffle_dataset": ((True,), "prompts are always drawn in a seeded shuffled order"),
    "disable_dropout": ((True, False), ""),
    "remove_unused_columns": ((True, False), ""),
    "logging_first_step": ((True, False), ""),
    "log_completions": ((True, False), ""),
    "num_completions_to_print": ((None,), "log_completions_steps"),
    "log_unique_prompts": ((False,), "log_completions_steps"),
    "log_completions_hub_repo": ((None,), "output_dir/completions.jsonl"),
    "min_p": ((None, 0, 0.0), "top_p / top_k"),
    "repetition_penalty": ((1, 1.0), "no repetition penalty in rollouts"),
    "generation_kwargs": ((None, {}), "temperature, top_p, top_k"),
    "chat_template_kwargs": ((None, {}), "system_prompt"),
    "sync_ref_model": ((False,), "beta with a frozen reference"),
    "delta": ((None,), "dual_clip_c (verl's dual clip)"),
    "top_entropy_quantile": ((1, 1.0), "no entropy masking"),
    "entropy_coef": ((0, 0.0), "no entropy bonus"),
    "use_bias_correction_kl": ((True, False), ""),
    "off_policy_mask_threshold": ((None,), "max_staleness with async_rollouts"),
    "vllm_importance_sampling_mode": (("token_truncate",), "vllm_is_cap truncates per token (TRL's token_truncate)"),
    "vllm_model_impl": (("vllm",), "engine: vllm"),
    "vllm_group_port": ((51216,), "server_weight_transfer"),
    "vllm_structured_outputs_regex": ((None,), "no structured outputs"),
    "max_tool_calling_iterations": ((None,), "max_turns"),
    "use_transformers_continuous_batching": ((False,), "engine: hf with hf_decode: compact"),
    "cast_lm_head_to_fp32": ((False,), "bf16 is autocast over fp32 weights"),
    "pad_to_multiple_of": (("auto", None), ""),
    "cache_implementation": ((None,), ""),
    "ds3_gather_for_generation": ((True,), ""),
    "multi_objective_aggregation": (("sum_then_normalize",), "reward_weights (weighted sum, then the advantage)"),
    "gradient_checkpointing_kwargs": ((None, {}, {"use_reentrant": False}), "gradient_checkpointing"),
    "num_generations_eval": ((None,), "eval_num_examples"),
    "steps_per_generation": ((None,), "one generation per optimizer step here; num_iterations reuses a generation "
                                      "for several updates"),
    "num_train_epochs": ((), "max_steps (GRPO counts optimizer steps; one step = step_prompts prompts x num_generations)"),
}


def _conflict(out: dict[str, Any], given: Mapping[str, Any], key: str, field: str, value: Any) -> str | None:
    if field in given and given[field] != value:
        return f"{key}: means {field}: {value!r}, but {field} is also set to {given[field]!r}"
    out[field] = value
    return None


def _reward_name(name: Any) -> Any:
    if not isinstance(name, str):
        return name
    if name in TRL_REWARDS:
        return TRL_REWARDS[name]
    if ":" not in name and name.count(".") >= 1 and not name.startswith("task"):
        module, _, attr = name.rpartition(".")  # TRL's dotted import path -> module:function
        return f"{module}:{attr}"
    return name


def _special(key: str, value: Any, given: Mapping[str, Any], fields: set[str]) -> dict[str, Any] | str | None:
    """A TRL value translated into our fields ({field: value}), a refusal (str), or None (not special)."""
    if key == "use_vllm":
        return {"engine": "vllm"} if value else {}
    if key == "steps_per_generation":
        return {} if value in (None, given.get("gradient_accumulation_steps", 1)) else None
    vllm_on = bool(given.get("use_vllm")) or given.get("engine") == "vllm"  # TRL reads vllm_* only with use_vllm
    if key == "vllm_mode":
        if value not in ("colocate", "server"):
            return f"vllm_mode: colocate | server, got {value!r}"
        return {"rollout_mode": value} if vllm_on else {}
    if key == "vllm_server_base_url":
        return {} if value is None else {"server_url": str(value).rstrip("/")}
    if key in ("vllm_server_host", "vllm_server_port"):
        host = given.get("vllm_server_host", "0.0.0.0")
        host = "127.0.0.1" if host in ("0.0.0.0", None) else host
        if given.get("vllm_server_base_url") or ("vllm_server_host" in given and key == "vllm_server_port"):
            return {}  # the base URL wins, as in TRL; host + port make one URL once
        return {"server_url": f"http://{host}:{given.get('vllm_server_port', 8000)}"}
    if key == "vllm_importance_sampling_correction":
        if not vllm_on:
            return {}
        if not value:
            return {"vllm_is_cap": 0.0}
        cap = given.get("vllm_importance_sampling_cap") or given.get("vllm_importance_sampling_clip_max") or 3.0
        return {"vllm_is_cap": float(cap)}
    if key in ("dtype", "torch_dtype"):
        if value in (None, "auto", "float32"):
            return {}
        if value == "bfloat16":
            return {"bf16": True}
        return f"{key}: {value!r}: training keeps fp32 weights; bf16: true for bfloat16 autocast"
    if key == "num_train_epochs" and "num_train_epochs" not in fields:  # TRL: max_steps > 0 wins over epochs
        return {} if isinstance(given.get("max_steps"), int) and given["max_steps"] > 0 else None
    return None


def translate_trl_names(cls: type, values: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``values`` (keywords of ``cls``, or a recipe) with TRL's names and values read into ours
    (see the module doc). Keys that are neither ours nor TRL's are left for the caller to refuse.
    ``context``: other settings of the same config that a value is read with (the recipe, for flags)."""
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    given = {**(context or {}), **values}
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        if key in fields:
            continue
        if key in RENAMED and RENAMED[key] in fields:
            msg = _conflict(out, values, key, RENAMED[key], value)
        else:
            special = _special(key, value, given, fields)
            if isinstance(special, dict):
                msg = None
                for f, v in special.items():
                    msg = msg or _conflict(out, {**values, **out}, key, f, v)
            elif isinstance(special, str):
                msg = special
            elif key in NOT_OURS:
                ok, instead = NOT_OURS[key]
                msg = None if _same(value, ok) else f"{key}={value!r}: use {instead or 'its default'}"
            else:
                out[key] = value  # neither ours nor TRL's: the caller names it
                msg = None
        if msg:
            problems.append(msg)
    kept = {k: v for k, v in values.items() if k in fields}
    problems += _same_names(kept, fields)
    if problems:
        raise ConfigError(f"TRL setting(s) that parsimony reads differently: {'; '.join(problems)} (the mapping: {DOCS})")
    return {**kept, **{k: v for k, v in out.items() if k not in kept}}


def _same(value: Any, accepted: tuple[Any, ...]) -> bool:
    return any(value == a and type(value) is type(a) or (value is None and a is None) for a in accepted) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and any(isinstance(a, (int, float)) and not isinstance(a, bool) and value == a for a in accepted))


def _same_names(kept: dict[str, Any], fields: set[str]) -> list[str]:
    """Fields that TRL names alike but fills with other values, translated in place of ``kept``."""
    problems = []
    lt = kept.get("loss_type")
    if isinstance(lt, str) and lt in TRL_LOSS_TYPES and "loss_agg_mode" in fields:
        mode = TRL_LOSS_TYPES[lt]
        if "loss_agg_mode" in kept and kept["loss_agg_mode"] != mode:
            problems.append(f"loss_type: {lt!r} is TRL's loss_agg_mode: {mode!r}, but loss_agg_mode is also set "
                            f"to {kept['loss_agg_mode']!r}")
        kept.pop("loss_type")
        kept["loss_agg_mode"] = mode
    elif isinstance(lt, str) and lt in TRL_ONLY_LOSSES:
        problems.append(f"loss_type: {lt!r}: {TRL_ONLY_LOSSES[lt]}")
    sr = kept.get("scale_rewards")
    if isinstance(sr, str) and sr.lower() in ("true", "false"):  # --scale_rewards false on the command line
        sr = sr.lower() == "true"
    if isinstance(sr, bool):
        kept["scale_rewards"] = "group" if sr else "none"
    if kept.get("max_steps") == -1:
        problems.append("max_steps: -1 (TRL: derive it from num_train_epochs): set max_steps, the optimizer steps to run")
    if kept.get("save_total_limit", 0) is None:
        kept["save_total_limit"] = 0  # TRL's null: keep every checkpoint
    for name in ("eval_steps", "bf16", "top_k", "generation_batch_size", "output_dir", "report_to"):
        if name in kept and kept[name] is None:
            kept.pop(name)  # TRL's null: its default; ours is ours
    rf = kept.get("reward_funcs")
    if isinstance(rf, str):
        kept["reward_funcs"] = [_reward_name(x.strip()) for x in rf.split(",") if x.strip()]
    elif isinstance(rf, (list, tuple)):
        kept["reward_funcs"] = [_reward_name(x) for x in rf]
    return problems
