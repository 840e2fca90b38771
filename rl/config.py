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

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rl.config_fields import TracksExplicitFields, check, check_rollout_fields, non_default_fields
from rl.errors import ConfigError

__all__ = ["ConfigError", "GRPOConfig", "OPTIMIZERS", "SFTConfig", "TrainConfig", "load_config"]

# ``optim`` -> the keyword arguments it adds to torch.optim.AdamW (TRL / transformers' names)
OPTIMIZERS: dict[str, dict[str, Any]] = {"adamw_torch": {}, "adamw_torch_fused": {"fused": True}}


@dataclass
class TrainConfig(metaclass=TracksExplicitFields):
    """Settings shared by the SFT and GRPO trainers."""

    # --- model -----------------------------------------------------------------------
    model: str = field(
        default="",
        metadata={"help": "Model to train: a local directory or a hub id (e.g. Qwen/Qwen2.5-1.5B)."},
    )
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer path/id (default: the model's)."})
    bf16: bool = field(default=False, metadata={"help": "Compute in bfloat16 autocast (weights stay fp32)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for activation memory."})
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        metadata={"help": "Module names that get LoRA adapters."},
    )
    # --- data ------------------------------------------------------------------------
    dataset: str = field(
        default="task:overthink",
        metadata={
            "help": "Training data: 'task:<name>' (built-in synthetic task), a .parquet/.jsonl/.json file, "
            "or a hub dataset id. Rows need a `prompt` (chat messages or string) and, for RL, an answer "
            "(`reward_model.ground_truth`, `ground_truth` or `answer`)."
        },
    )
    dataset_split: str = field(default="train", metadata={"help": "Split to read from a hub dataset or task."})
    dataset_num_examples: int = field(
        default=4096, metadata={"help": "Number of examples to generate for a 'task:' dataset."}
    )
    dataset_kwargs: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Extra keyword arguments for the task generator."}
    )
    system_prompt: str | None = field(default=None, metadata={"help": "Optional system message prepended."})
    # --- optimisation ----------------------------------------------------------------
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak learning rate (AdamW)."})
    lr_scheduler_type: str = field(
        default="constant", metadata={"help": "constant | linear | cosine | constant_with_warmup ..."}
    )
    warmup_ratio: float = field(default=0.0, metadata={"help": "Fraction of max_steps used for linear warmup."})
    warmup_steps: int = field(default=0, metadata={"help": "Warmup steps (overrides warmup_ratio when > 0)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.99, metadata={"help": "AdamW beta2."})
    adam_epsilon: float = field(
        default=1e-8,
        metadata={"help": "AdamW epsilon. Coordinates whose gradient RMS is far below it move SGD-like "
                          "(lr * g / eps) instead of a full lr step: RL's noise-dominated weights drift less."},
    )
    optim: str = field(
        default="adamw_torch",
        metadata={"help": "adamw_torch (the per-parameter loop) | adamw_torch_fused (one fused kernel for all "
                          "parameters: the same update within float rounding, ~3x faster optimizer step on CPU; "
                          "TRL's default)."},
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 = off)."})
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "Sequences per device per micro-batch (GRPO: completions)."}
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    max_steps: int = field(default=100, metadata={"help": "Optimizer steps to run."})
    seed: int = field(default=0, metadata={"help": "Seed for data order, sampling and init."})
    # --- logging / checkpoints ----------------------------------------------------------
    output_dir: str = field(default="outputs/run", metadata={"help": "Where checkpoints and metrics go."})
    run_name: str | None = field(default=None, metadata={"help": "Run name for W&B (default: output_dir name)."})
    report_to: list[str] = field(
        default_factory=lambda: ["console", "jsonl"],
        metadata={"help": "Any of: console, jsonl, wandb (offline when WANDB_API_KEY is unset), none."},
    )
    logging_steps: int = field(default=1, metadata={"help": "Log every N optimizer steps."})
    save_steps: int = field(default=0, metadata={"help": "Checkpoint every N steps (0 = only at the end)."})
    save_total_limit: int = field(default=2, metadata={"help": "Keep the last N checkpoints (0 = keep all)."})
    save_final: bool = field(default=True, metadata={"help": "Save the final model to output_dir/final."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "Checkpoint dir to resume from, or 'latest' for the newest in output_dir."},
    )
    disable_progress_bar: bool = field(default=False, metadata={"help": "No console progress bar."})
    num_threads: int = field(default=0, metadata={"help": "torch.set_num_threads on CPU (0 = torch default)."})
    # --- evaluation during training ----------------------------------------------------
    eval_steps: int = field(default=0, metadata={"help": "Evaluate held-out accuracy every N steps (0 = off)."})
    eval_dataset: str | None = field(
        default=None,
        metadata={"help": "Eval data: a benchmark name, 'task:<name>' or a file (default: the task's test split)."},
    )
    eval_num_examples: int = field(default=128, metadata={"help": "Held-out problems per evaluation."})

    def __post_init__(self) -> None:
        check(bool(self.model), "model", "is required (a local directory or a hub id)")
        check(self.learning_rate >= 0, "learning_rate", f"must be >= 0, got {self.learning_rate}")
        check(self.adam_epsilon > 0, "adam_epsilon", f"must be > 0, got {self.adam_epsilon}")
        check(self.optim in OPTIMIZERS, "optim", f"unknown optimizer {self.optim!r}; choose from {sorted(OPTIMIZERS)}")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        check(self.per_device_train_batch_size >= 1, "per_device_train_batch_size", "must be >= 1")
        check(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", "must be >= 1")
        check(self.max_steps >= 1, "max_steps", f"must be >= 1, got {self.max_steps}")
        check(self.logging_steps >= 1, "logging_steps", "must be >= 1")
        check(self.save_steps >= 0, "save_steps", "must be >= 0")
        check(self.save_total_limit >= 0, "save_total_limit", "must be >= 0")
        check(self.lora_r >= 1, "lora_r", "must be >= 1")
        check(self.eval_steps >= 0, "eval_steps", "must be >= 0")
        check(self.eval_num_examples >= 1, "eval_num_examples", "must be >= 1")
        check(0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1)")
        if isinstance(self.report_to, str):
            self.report_to = [s.strip() for s in self.report_to.split(",") if s.strip()]
        valid = {"console", "jsonl", "wandb", "none", "all"}
        bad = [r for r in self.report_to if r not in valid]
        check(not bad, "report_to", f"unknown target(s) {bad}; choose from {sorted(valid)}")
        if "all" in self.report_to:
            self.report_to = ["console", "jsonl", "wandb"]
        if "none" in self.report_to:
            self.report_to = []
        if self.run_name is None:
            self.run_name = Path(self.output_dir).name or "run"

    @property
    def num_warmup_steps(self) -> int:
        return self.warmup_steps if self.warmup_steps > 0 else int(self.warmup_ratio * self.max_steps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SFTConfig(TrainConfig):
    """Supervised fine-tuning on prompt/completion pairs (loss on completion tokens only)."""

    max_length: int = field(default=512, metadata={"help": "Truncate prompt+completion to this many tokens."})
    num_train_epochs: float = field(
        default=0.0,
        metadata={"help": "If > 0, replaces max_steps: ceil(epochs x dataset size / (per_device_train_batch_size x "
                          "gradient_accumulation_steps x processes))."},
    )
    completion_only_loss: bool = field(default=True, metadata={"help": "Loss on completion tokens only."})
    split_by_length: int = field(
        default=1,
        metadata={"help": "Cut each micro-batch into this many pieces of similar length before the forward pass: "
                          "the same examples and the same gradient (the loss is divided by the step's token count), "
                          "less padding. 1 = off."},
    )
    group_by_length: bool = field(
        default=False,
        metadata={"help": "Draw micro-batches of similar length (HF's group_by_length): less padding, but it changes "
                          "which examples share a step; on the embedded task it cost ~10 points of accuracy at 700 "
                          "steps. split_by_length saves padding without that."},
    )
    length_group_pool: int = field(
        default=8, metadata={"help": "group_by_length: sort this many micro-batches' worth of examples at a time."}
    )
    max_completion_length: int = field(default=256, metadata={"help": "Max new tokens when evaluating."})
    packing: bool = field(
        default=False,
        metadata={"help": "Pack each micro-batch's examples into rows of at most max_length tokens; position_ids "
                          "restart per example, so no attention or loss crosses examples (same gradient, less padding)."},
    )
    eval_loss_dataset: str | None = field(
        default=None,
        metadata={"help": "Held-out data for eval_loss (every eval_steps): a dataset spec like `dataset`; a "
                          "'task:<name>' is read from its test split. Unset: eval_holdout_fraction of the train set."},
    )
    eval_holdout_fraction: float = field(
        default=0.0,
        metadata={"help": "Hold this fraction of the train rows out (seeded) for eval_loss when eval_loss_dataset "
                          "is unset (0 = no eval loss)."},
    )
    eval_loss_num_examples: int = field(default=256, metadata={"help": "At most this many held-out rows for eval_loss."})
    per_device_eval_batch_size: int = field(default=16, metadata={"help": "Rows per forward pass of eval_loss."})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.max_length >= 8, "max_length", "must be >= 8")
        check(self.length_group_pool >= 1, "length_group_pool", "must be >= 1")
        check(self.split_by_length >= 1, "split_by_length", "must be >= 1")
        check(0 <= self.eval_holdout_fraction < 1, "eval_holdout_fraction", "must be in [0, 1)")
        check(self.eval_loss_num_examples >= 1, "eval_loss_num_examples", "must be >= 1")
        check(self.per_device_eval_batch_size >= 1, "per_device_eval_batch_size", "must be >= 1")


@dataclass
class GRPOConfig(TrainConfig):
    """Group Relative Policy Optimisation and the methods that plug into it."""

    method: str | None = field(
        default=None,
        metadata={"help": "A registered method preset (grpo | decs | length_penalty | l1 | thinkprune | a plugin's; "
                          "`parsimony methods` lists them): sets reward_funcs, advantage_estimator, loss_composition, "
                          "sampler and default method_kwargs; fields set explicitly win."},
    )
    # --- rollout ---------------------------------------------------------------------
    engine: str = field(default="hf", metadata={"help": "Rollout engine: hf | vllm | any name registered with rl.engines.register_engine."})
    split_by_length: int = field(
        default=1,
        metadata={"help": "Cut each accumulation micro-batch of the update into k pieces of rows of similar completion "
                          "length, each trimmed to its longest row: the same gradient with less padding "
                          "(rl/update_padding.py)."},
    )
    hf_decode: str = field(
        default="generate",
        metadata={"help": "engine hf: generate (transformers' generate) | compact (finished rows leave the batch and its "
                          "KV cache; same distribution, cost follows the generated tokens; rollout/hf_decode.py)."},
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
    loss_type: str = field(default="clipped", metadata={"help": "Registered policy loss for the 'single' composition."})
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
    scale_rewards: str = field(default="group", metadata={"help": "Divide advantages by std: group | batch | none."})
    advantage_eps: float = field(default=1e-6, metadata={"help": "Added to the std when normalising."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={"help": "Reward functions: registered names or 'module:function' import paths."},
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
    # --- method settings, read by the registered pieces (each declares its keys; checked here)
    method_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Method settings read by the configured rewards / estimator / composition / sampler; each "
                          "key must be declared by one of them (checked here). On the command line: JSON, merged over "
                          "the recipe's keys."},
    )

    def __post_init__(self) -> None:
        from rl.presets import apply_method

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


def load_config(cls: type, argv: Sequence[str] | None = None) -> Any:
    """``--config recipe.yaml`` plus ``--key value`` overrides -> ``cls`` (see :mod:`rl.config_loading`)."""
    from rl.config_loading import load_config as _load_config

    return _load_config(cls, argv)
