"""Configs: dataclasses with help text and validation, loaded from a YAML recipe plus
``--key value`` command-line overrides (``transformers.HfArgumentParser``).

    parsimony train --config recipes/grpo/tiny.yaml --learning_rate 5e-5 --max_steps 50

Command-line values override the recipe; the recipe overrides the dataclass defaults.
Unknown keys in a recipe are an error that names the key.

Dict-typed fields (``method_kwargs``, ``dataset_kwargs``) take JSON on the command line
(``--method_kwargs '{"decs_beta": 0.2}'``); its keys are merged over the recipe's value (a key
given on the command line replaces the recipe's value for that key; the others are kept).

``method: <name>`` (GRPO) expands to a registered method preset; fields set explicitly (in the
recipe, on the command line, or as keywords of ``GRPOConfig(...)``) win over it, and
``method_kwargs`` is merged key by key over the preset's defaults (``rl/presets.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from rl.config_fields import check, check_field_types, check_rollout_fields, non_default_fields
from rl.errors import ConfigError
from rl.train_config import OPTIMIZERS, SFTConfig, TrainConfig

__all__ = ["ConfigError", "GRPOConfig", "OPTIMIZERS", "SFTConfig", "TrainConfig", "load_config"]

@dataclass
class GRPOConfig(TrainConfig):
    """Group Relative Policy Optimisation and the methods that plug into it."""

    method: str | None = field(
        default=None,
        metadata={"help": "A registered method preset, built in or a plugin's (`parsimony methods` lists them all, with "
                          "their settings): sets reward_funcs, advantage_estimator, loss_composition, sampler and "
                          "default method_kwargs; fields set explicitly win."},
    )
    # --- rollout ---------------------------------------------------------------------
    engine: str = field(default="hf", metadata={"help": "Rollout engine: hf | vllm | any name registered with rl.engines.register_engine."})
    split_by_length: int = field(
        default=4,
        metadata={"help": "Cut each accumulation micro-batch of the update into k pieces of rows of similar completion "
                          "length, each trimmed to its longest row: the same gradient with less padding "
                          "(rl/update_padding.py). 1 = one padded pass (the default before 2026-12-07)."},
    )
    hf_decode: str = field(
        default="compact",
        metadata={"help": "engine hf: compact (finished rows leave the batch and its KV cache; the same distribution as "
                          "generate, cost follows the generated tokens; rollout/hf_decode.py; the default from "
                          "2026-12-07) | generate (transformers' generate: the random stream of earlier seeded runs)."},
    )
    num_generations: int = field(default=8, metadata={"help": "Completions per prompt (group size G)."})
    max_prompt_length: int = field(default=512, metadata={"help": "Prompts longer than this are left-truncated."})
    max_completion_length: int = field(default=256, metadata={"help": "Max new tokens per completion."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature for rollouts."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling for rollouts."})
    top_k: int = field(default=0, metadata={"help": "Top-k sampling for rollouts (0 = off)."})
    rollout_mode: str = field(
        default="colocate",
        metadata={"help": "engine vllm: colocate (vllm.LLM in the trainer process) | server (a `parsimony vllm-serve` over HTTP)."},
    )
    server_url: str = field(
        default="http://127.0.0.1:8000", metadata={"help": "rollout_mode server: base URL of `parsimony vllm-serve`."}
    )
    server_timeout: float = field(default=600.0, metadata={"help": "rollout_mode server: seconds per HTTP request."})
    server_weight_transfer: str = field(
        default="file",
        metadata={
            "help": "rollout_mode server: how weights reach the server after each step: file (safetensors in "
            "/dev/shm + reload RPC; same node or shared filesystem) | nccl (GPU broadcast through vLLM's "
            "weight-transfer API; start the server with --weight-transfer nccl)."
        },
    )
    vllm_dtype: str = field(default="auto", metadata={"help": "vLLM weights dtype: auto | bfloat16 | float16 | float32."})
    vllm_gpu_memory_utilization: float = field(
        default=0.4, metadata={"help": "Colocated vLLM: fraction of GPU memory for weights + KV cache."}
    )
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "Colocated vLLM: GPUs per engine."})
    vllm_max_model_len: int | None = field(
        default=None, metadata={"help": "vLLM context length (default: max_prompt_length + max_completion_length)."}
    )
    vllm_enable_sleep_mode: bool = field(
        default=False, metadata={"help": "Colocated vLLM: free KV cache / offload weights during the update (GPU only)."}
    )
    vllm_cpu_kv_cache_gib: float = field(default=1.0, metadata={"help": "vLLM on CPU: KV-cache size in GiB."})
    vllm_is_cap: float = field(
        default=0.0,
        metadata={
            "help": "Truncated importance weight min(exp(logp_train_old - logp_engine), C) on the loss for the "
            "rollout/training log-prob mismatch; C >= 1, 0 = off."
        },
    )
    generation_batch_size: int = field(
        default=0,
        metadata={"help": "Prompts per engine.generate() call per device (0 = all prompts of a generation round at "
                          "once); bounds the rollout's memory, each call generates num_generations per prompt."}
    )
    role_adapters: list[str] = field(
        default_factory=list,
        metadata={"help": "use_peft: one LoRA adapter per role on one base, e.g. [planner, executor]: role r's rows "
                          "train adapter r with its own optimizer group and clipping, and role r's sub-episodes "
                          "generate with it (engine hf; rl/role_adapters.py). [] = one adapter for every row."},
    )
    async_rollouts: bool = field(
        default=False,
        metadata={"help": "One-step off-policy rollouts: the next step's first generation round is sampled from the "
                          "current weights while this step updates them (engine hf: in a child process with its own "
                          "copy of the weights). Set vllm_is_cap (e.g. 2) to correct for the lag; rl/rollouts_ahead.py."},
    )
    max_staleness: int = field(
        default=1, metadata={"help": "async_rollouts: rollouts sampled more than this many steps behind are dropped and "
                                     "generated again (counted in async/stale_dropped)."},
    )
    # --- multi-turn episodes (rollout/episodes.py) -------------------------------------
    environment: str | None = field(
        default=None,
        metadata={"help": "Run rollouts as multi-turn episodes of this environment: tools | a name registered with "
                          "rollout.episodes.register_environment | 'module:factory' (None = single-turn generate)."},
    )
    environment_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Keyword arguments of the environment factory, e.g. {\"tools\": [\"calculator\"]}."},
    )
    max_turns: int = field(default=4, metadata={"help": "Episodes: model turns per episode at most."})
    max_episode_tokens: int = field(
        default=0,
        metadata={"help": "Episodes: completion tokens per episode, model turns and observations together "
                          "(0 = max_completion_length); each turn generates at most max_completion_length."},
    )
    # --- algorithm -------------------------------------------------------------------
    advantage_estimator: str = field(
        default="grpo", metadata={"help": "Registered advantage estimator: grpo | dr_grpo | rloo | decs ..."}
    )
    loss_composition: str = field(
        default="single", metadata={"help": "Registered loss composition (which loss consumes which channel)."}
    )
    loss_type: str = field(
        default="clipped",
        metadata={"help": "Registered policy loss for the 'single' composition. TRL's values are read as its "
                          "loss_agg_mode: dapo | bnpo -> token-mean, grpo -> seq-mean-token-mean, dr_grpo -> "
                          "seq-mean-token-sum-norm (docs/coming-from-trl.md)."},
    )
    loss_agg_mode: str = field(
        default="token-mean",
        metadata={"help": "token-mean | seq-mean-token-mean | seq-mean-token-sum | seq-mean-token-sum-norm."},
    )
    num_iterations: int = field(default=1, metadata={"help": "Policy updates per generated batch (mu)."})
    epsilon: float = field(default=0.2, metadata={"help": "Lower clip range of the ratio."})
    epsilon_high: float | None = field(default=None, metadata={"help": "Upper clip range (default: epsilon)."})
    dual_clip_c: float | None = field(default=None, metadata={"help": "verl-style dual clip for A<0 (None = off)."})
    importance_sampling_level: str = field(
        default="token",
        metadata={"help": "Importance ratio of the clipped loss: token (GRPO/PPO) | sequence (GSPO: the "
                          "length-normalised sequence ratio, clipped per sequence; also loss_type: gspo)."},
    )
    cispo_epsilon_low: float = field(
        default=1.0, metadata={"help": "loss_type cispo: IS weight clipped below at 1 - this (1.0 = no lower bound)."}
    )
    cispo_epsilon_high: float | None = field(
        default=None, metadata={"help": "loss_type cispo: IS weight clipped above at 1 + this (default: epsilon_high)."}
    )
    beta: float = field(default=0.0, metadata={"help": "k3 KL coefficient to a frozen reference (0 = no reference)."})
    scale_rewards: str = field(
        default="group", metadata={"help": "Divide advantages by std: group | batch | none (TRL's true = group, false = none)."}
    )
    advantage_eps: float = field(default=1e-6, metadata={"help": "Added to the std when normalising."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={"help": "Reward functions: registered names or 'module:function' import paths (a list; one name or "
                          "comma-separated names in a recipe are a list too; TRL's accuracy_reward etc. are read as ours)."},
    )
    reward_weights: list[float] | None = field(
        default=None, metadata={"help": "One weight per reward function (default: all 1)."}
    )
    reward_error_policy: str = field(
        default="raise", metadata={"help": "When a reward function raises: raise | skip_batch."}
    )
    nonfinite_reward_policy: str = field(
        default="raise", metadata={"help": "NaN/inf rewards: raise | zero | skip_batch."}
    )
    mask_truncated_completions: bool = field(
        default=False, metadata={"help": "Exclude completions that hit max_completion_length from the loss."}
    )
    max_generated_tokens: int = field(
        default=0,
        metadata={"help": "A budget of generation: training ends, and saves final/, after the step in which the tokens "
                          "the policy has generated reach it. Counted over every process and every rollout a step "
                          "generated: sub-episodes (executor calls) included, groups that dynamic sampling dropped "
                          "included, environment observations excluded. Logged as tokens/generated. 0 = no budget "
                          "(max_steps alone ends the run; with a budget it is the upper bound and sets the schedule)."},
    )
    # --- sampling of prompts ------------------------------------------------------------
    prompts_per_step: int = field(
        default=0,
        metadata={
            "help": "Prompts each device rolls out and trains on per optimizer step. 0 = derived: "
            "per_device_train_batch_size x gradient_accumulation_steps / num_generations, which must then "
            "divide evenly. When set, the rows of a step are whatever its rollouts give (G per prompt today, "
            "a varying number with tools or agents), split into gradient_accumulation_steps micro-batches; "
            "per_device_train_batch_size is then not used by GRPO."
        },
    )
    sampler: str = field(default="plain", metadata={"help": "Prompt batch assembler: plain | dynamic | decs_kappa."})
    dynamic_sampling: bool = field(
        default=False, metadata={"help": "Drop zero-variance groups and draw more prompts (sets sampler=dynamic)."}
    )
    max_generation_batches: int = field(
        default=4, metadata={"help": "Dynamic sampling: generation rounds per step before giving up."}
    )
    dynamic_sampling_on_shortfall: str = field(
        default="train", metadata={"help": "When still short after max_generation_batches: train | warn_skip."}
    )
    # --- logging ----------------------------------------------------------------------------
    log_completions_steps: int = field(default=10, metadata={"help": "Log a table of sample completions every N steps."})
    log_text_metrics: bool = field(
        default=True,
        metadata={"help": "With an embedded task (dataset: task:<name>), log its per-completion text metrics each step: "
                          "text/<name>/mean and text/<name>/adv_corr, their within-group correlation with the advantage "
                          "(e.g. word_problems_think's re-checks: does the update push them down?)."},
    )
    # --- method settings, read by the registered pieces (each declares its keys; checked here)
    method_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Method settings read by the configured rewards / estimator / composition / sampler; each "
                          "key must be declared by one of them (checked here; `parsimony methods` lists each method's "
                          "keys, defaults and help). On the command line: JSON, merged over the recipe's keys."},
    )

    def __post_init__(self) -> None:
        from rl.presets import apply_method

        check_field_types(self)  # int / float / bool / list values, before the preset reads them
        # the preset first: the checks below see the expanded fields
        apply_method(self, getattr(self, "_explicit_fields", None) or non_default_fields(self))
        super().__post_init__()
        G = self.num_generations
        check(G >= 2, "num_generations", f"must be >= 2 for group-relative advantages, got {G}")
        # the batch-size rule is about prompts: a group (all rollouts of one prompt) stays whole on one device
        check(self.prompts_per_step >= 0, "prompts_per_step", f"must be >= 0 (0 = derived), got {self.prompts_per_step}")
        if self.prompts_per_step == 0:
            per_step = self.per_device_train_batch_size * self.gradient_accumulation_steps
            check(
                per_step % G == 0,
                "per_device_train_batch_size",
                f"x gradient_accumulation_steps ({self.per_device_train_batch_size} x "
                f"{self.gradient_accumulation_steps} = {per_step}) must be divisible by num_generations ({G}) "
                "so that groups stay whole on each device (or set prompts_per_step)",
            )
        check_rollout_fields(self)  # the engine and its settings (rl/config_fields.py)
        check(self.max_completion_length >= 1, "max_completion_length", "must be >= 1")
        check(self.max_prompt_length >= 1, "max_prompt_length", "must be >= 1")
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p}")
        check(self.num_iterations >= 1, "num_iterations", "must be >= 1")
        check(self.epsilon > 0, "epsilon", "must be > 0")
        if self.epsilon_high is None:
            self.epsilon_high = self.epsilon
        check(self.epsilon_high > 0, "epsilon_high", "must be > 0")
        check(self.dual_clip_c is None or self.dual_clip_c > 1, "dual_clip_c", "must be > 1 (or unset)")
        check(self.importance_sampling_level in ("token", "sequence"), "importance_sampling_level",
               f"must be token | sequence, got {self.importance_sampling_level!r}")
        check(0 <= self.cispo_epsilon_low <= 1, "cispo_epsilon_low", f"must be in [0, 1], got {self.cispo_epsilon_low}")
        check(self.cispo_epsilon_high is None or self.cispo_epsilon_high >= 0, "cispo_epsilon_high", "must be >= 0 (or unset)")
        check(self.beta >= 0, "beta", "must be >= 0")
        check(self.scale_rewards in ("group", "batch", "none"), "scale_rewards", "must be group | batch | none")
        from rl.losses import AGG_MODES

        check(self.loss_agg_mode in AGG_MODES, "loss_agg_mode", f"must be one of {list(AGG_MODES)}")
        check(len(self.reward_funcs) >= 1, "reward_funcs", "needs at least one reward function")
        if self.reward_weights is not None:
            check(
                len(self.reward_weights) == len(self.reward_funcs),
                "reward_weights",
                f"has {len(self.reward_weights)} entries but reward_funcs has {len(self.reward_funcs)}",
            )
        check(self.reward_error_policy in ("raise", "skip_batch"), "reward_error_policy", "must be raise | skip_batch")
        check(
            self.nonfinite_reward_policy in ("raise", "zero", "skip_batch"),
            "nonfinite_reward_policy",
            "must be raise | zero | skip_batch",
        )
        if self.dynamic_sampling and self.sampler == "plain":
            self.sampler = "dynamic"
        check(self.max_generation_batches >= 1, "max_generation_batches", "must be >= 1")
        check(
            self.dynamic_sampling_on_shortfall in ("train", "warn_skip"),
            "dynamic_sampling_on_shortfall",
            "must be train | warn_skip",
        )
        check(self.max_generated_tokens >= 0, "max_generated_tokens", f"must be >= 0 (0 = no budget), got {self.max_generated_tokens}")
        check(self.generation_batch_size >= 0, "generation_batch_size", "must be >= 0")
        check(self.max_turns >= 1, "max_turns", f"must be >= 1, got {self.max_turns}")
        check(self.max_episode_tokens >= 0, "max_episode_tokens", f"must be >= 0 (0 = max_completion_length), got {self.max_episode_tokens}")
        if self.environment is not None:
            from rollout.episodes import get_environment

            try:
                get_environment(self.environment)
            except ValueError as e:
                raise ConfigError(f"environment: {e}") from None
        from rl.presets import validate_method_settings

        # every registry name exists and every method_kwargs key is known, before any model loads
        validate_method_settings(self)

    @property
    def step_prompts(self) -> int:
        """Prompts each device rolls out and trains on per optimizer step: ``prompts_per_step``, or
        when it is 0 the derived ``per_device_train_batch_size x gradient_accumulation_steps / G``.
        (Derived here, not written back, so ``dataclasses.replace`` with another batch size stays right.)"""
        if self.prompts_per_step > 0:
            return self.prompts_per_step
        return self.per_device_train_batch_size * self.gradient_accumulation_steps // self.num_generations


def load_config(cls: type, argv: Sequence[str] | None = None, help_flags: Sequence[tuple[str, str]] = ()) -> Any:
    """``--config recipe.yaml`` plus ``--key value`` overrides -> ``cls`` (see :mod:`rl.config_loading`)."""
    from rl.config_loading import load_config as _load_config

    return _load_config(cls, argv, help_flags)
