"""Periodic held-out evaluation during training (``eval_steps``), with the same code as
``parsimony eval``."""

from __future__ import annotations

from typing import Any


def eval_dataset_for(cfg: Any):
    """The configured eval set, or the task's test split for a ``task:`` dataset."""
    from curriculum.data import load_dataset_spec

    spec = getattr(cfg, "eval_dataset", None)
    if spec:
        return load_dataset_spec(spec, "test", cfg.eval_num_examples, cfg.seed + 1, cfg.dataset_kwargs)
    if cfg.dataset.startswith("task:"):
        return load_dataset_spec(cfg.dataset, "test", cfg.eval_num_examples, cfg.seed + 1, cfg.dataset_kwargs)
    return None


def attach_eval(trainer: Any, cfg: Any) -> None:
    if getattr(cfg, "eval_steps", 0) <= 0:
        return
    dataset = eval_dataset_for(cfg)
    if dataset is None:
        trainer.log_line("[parsimony] eval_steps is set but there is no eval_dataset; evaluation is off")
        return

    def run() -> dict[str, float]:
        from rl.evaluate import evaluate_dataset

        if not trainer.is_main:
            return {}
        res = evaluate_dataset(
            trainer.unwrapped_model,
            trainer.tokenizer,
            dataset,
            greedy=True,
            max_new_tokens=cfg.max_completion_length,
            system_prompt=cfg.system_prompt,
        )
        trainer.log_line(
            f"[eval] step {trainer.global_step}: accuracy {res['accuracy']:.3f}, mean tokens {res['mean_tokens']:.1f}"
        )
        return {k: v for k, v in res.items() if isinstance(v, (int, float))}

    trainer.set_eval_fn(run)
