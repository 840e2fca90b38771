"""The configs every trainer shares: :class:`TrainConfig` (model, optimisation, logging, checkpoints,
evaluation) and :class:`SFTConfig`. :class:`rl.config.GRPOConfig` extends the first; ``rl.config`` is
the public path of all three."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl.config_fields import TracksExplicitFields, check, check_field_types, check_task_names

__all__ = ["OPTIMIZERS", "SFTConfig", "TrainConfig"]

# ``optim`` -> the keyword arguments it adds to torch.optim.AdamW (TRL / transformers' names)
OPTIMIZERS: dict[str, dict[str, Any]] = {"adamw_torch": {}, "adamw_torch_fused": {"fused": True}}


@dataclass
class TrainConfig(metaclass=TracksExplicitFields):
    """Settings shared by the SFT and GRPO trainers."""

    # --- model -----------------------------------------------------------------------
    model: str = field(
        default="",
        metadata={"help": "Model to train: a local directory or a hub id (e.g. Qwen/Qwen2.5-1.5B); required on the "
                          "command line, optional in Python when the trainer's model argument names it (as in TRL)."},
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
            "help": "Training data: 'task:<name>' (built-in synthetic task), a .parquet/.jsonl/.json/.csv file, a "
            "datasets.save_to_disk folder, or a hub dataset id. Rows need a `prompt` (chat messages or string) "
            "and, for RL, an answer (`reward_model.ground_truth`, `ground_truth` or `answer`); GSM8K's "
            "(`question`, `answer` ending '#### N') and MATH's (`problem`, boxed `solution`) columns are read too."
        },
    )
    dataset_split: str = field(
        default="train", metadata={"help": "Split to read from a hub dataset, a saved DatasetDict folder or a task."}
    )
    dataset_num_examples: int = field(
        default=4096, metadata={"help": "Number of examples to generate for a 'task:' dataset."}
    )
    dataset_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "A task's generator keyword arguments; for a file, folder or hub dataset, its column "
                          "names: {\"prompt_column\": \"q\", \"answer_column\": \"gold\"}."},
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
        metadata={"help": "Checkpoint dir to resume from, or 'latest' for the newest complete one in output_dir."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "A new run into an output_dir that holds an earlier run removes that run's checkpoints, "
                          "final/ and metrics first (without it, such a run is refused)."},
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
        # ``model`` may stay unset here: the trainer's ``model`` argument names it (as in TRL); the command
        # line requires it (rl/config_loading.py)
        check_field_types(self)
        check_task_names(self)
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
