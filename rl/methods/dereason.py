"""DeReason's stages as functions, shared by ``parsimony pipeline`` and ``parsimony compare-schedules``.

* :func:`train_sft_stage` / :func:`train_rl_stage`: one SFT or GRPO run from a recipe section (any
  ``SFTConfig`` / ``GRPOConfig`` fields), resumed from its latest checkpoint when one exists; a stage
  whose ``final/`` exists is complete. An interrupted run (SIGTERM / Ctrl-C: the trainer saves a
  checkpoint first) raises :class:`StageInterrupted`.
* RL under a token budget (:func:`train_rl_stage` with ``token_budget``): the run stops after the
  step at which the completion tokens it trained on reach the budget. The count is part of the
  checkpoint, so a resumed run stops where an uninterrupted one would.
* :func:`sft_steps_for_tokens`: the SFT steps that spend a token budget (in expectation over the
  sampler's epochs: batch rows x mean loss tokens per row).
* :func:`evaluate_buckets`: held-out accuracy overall, per difficulty and per easy/hard bucket
  (``extra_info.difficulty`` >= threshold is hard), greedy and sampled.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from rl.errors import ConfigError

DECODINGS = ("greedy", "sampled")


class StageInterrupted(RuntimeError):
    """A training stage stopped on a signal after saving a checkpoint; re-running resumes it."""


def stage_done(run_dir: str | Path) -> bool:
    """A training stage is complete when its final model was saved."""
    return (Path(run_dir) / "final" / "config.json").is_file()


def build_config(cls: type, section: dict[str, Any], where: str, **fixed: Any) -> Any:
    """``cls(**section, **fixed)`` with an error naming the recipe section for an unknown key;
    the pipeline's own values (``fixed``: model, dataset, output_dir) win over the section's."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(section) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}: not fields of {cls.__name__}")
    clash = sorted(set(section) & set(fixed))
    if clash:
        raise ConfigError(f"{where}: key(s) {clash} are set by the pipeline; remove them from the recipe")
    try:
        return cls(**{**section, **fixed})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _train(trainer: Any, cfg: Any, name: str) -> dict[str, Any]:
    from rl.eval.training import attach_eval

    attach_eval(trainer, cfg)
    summary = trainer.train()
    if summary.get("interrupted"):
        raise StageInterrupted(f"{name}: interrupted at step {summary['global_step']} (checkpoint saved; re-run to resume)")
    return summary


def train_sft_stage(section: dict[str, Any], model: str | Path, dataset: Any, output_dir: str | Path,
                    where: str = "sft", **fixed: Any) -> Path:
    """Run (or resume, or skip) one SFT stage; returns ``output_dir/final``. ``dataset``: a dataset
    spec (a path) or an in-memory ``datasets.Dataset``."""
    from rl.config import SFTConfig
    from rl.sft_trainer import SFTTrainer

    out = Path(output_dir)
    if stage_done(out):
        return out / "final"
    spec = dataset if isinstance(dataset, (str, Path)) else "in-memory"
    cfg = build_config(SFTConfig, section, where, model=str(model), dataset=str(spec), output_dir=str(out),
                       resume_from_checkpoint="latest", **fixed)
    trainer = SFTTrainer(cfg.model, args=cfg, train_dataset=None if isinstance(dataset, (str, Path)) else dataset)
    _train(trainer, cfg, where)
    return out / "final"


def train_rl_stage(section: dict[str, Any], model: str | Path, dataset: Any, output_dir: str | Path,
                   where: str = "rl", token_budget: int = 0, **fixed: Any) -> Path:
    """Run (or resume, or skip) one GRPO stage; returns ``output_dir/final``. With ``token_budget``
    > 0 the run ends after the step where its trained completion tokens reach the budget (and
    ``max_steps`` is only a cap)."""
    from rl.config import GRPOConfig

    out = Path(output_dir)
    if stage_done(out):
        return out / "final"
    spec = dataset if isinstance(dataset, (str, Path)) else "in-memory"
    cfg = build_config(GRPOConfig, section, where, model=str(model), dataset=str(spec), output_dir=str(out),
                       resume_from_checkpoint="latest", **fixed)
    cls = budget_grpo_trainer()
    trainer = cls(cfg.model, args=cfg, train_dataset=None if isinstance(dataset, (str, Path)) else dataset)
    trainer.token_budget = int(token_budget)
    _train(trainer, cfg, where)
    return out / "final"


def budget_grpo_trainer() -> type:
    """``GRPOTrainer`` that counts the completion tokens it trains on (``train_tokens`` in the
    metrics: the batch's ``completion_mask`` summed over processes, so padding and tool
    observations do not count) and, with ``token_budget`` > 0, stops once they reach it."""
    from rl.grpo_trainer import GRPOTrainer

    class BudgetGRPOTrainer(GRPOTrainer):
        token_budget = 0
        trained_tokens = 0

        def build_batch(self, groups):
            batch = super().build_batch(groups)
            self._batch_tokens = float(batch.completion_mask.sum())  # the tokens the loss trains on
            return batch

        def training_step(self) -> dict[str, float]:
            import torch

            self._batch_tokens = 0.0
            metrics = super().training_step()
            if not metrics.get("skipped"):  # a skip is agreed by every process, so all of them reduce here
                n = torch.tensor([self._batch_tokens], dtype=torch.float64, device=self.accelerator.device)
                if self.accelerator.num_processes > 1:
                    n = self.accelerator.reduce(n, reduction="sum")
                self.trained_tokens += int(n.item())
                metrics["train_tokens"] = float(self.trained_tokens)
            return metrics

        def on_step_end(self, metrics: dict[str, float]) -> None:
            super().on_step_end(metrics)
            if self.token_budget > 0 and self.trained_tokens >= self.token_budget:
                self.log_line(f"[dereason] token budget {self.token_budget} reached at step {self.global_step} "
                              f"({self.trained_tokens} tokens)")
                self.args.max_steps = self.global_step  # the loop ends; the final model is saved

        def extra_state(self):
            shared, local = super().extra_state()
            return {**shared, "trained_tokens": self.trained_tokens}, local

        def load_extra_state(self, shared, local):
            super().load_extra_state(shared, local)
            self.trained_tokens = int(shared.get("trained_tokens", 0))

    return BudgetGRPOTrainer


def sft_loss_tokens(model_dir: str | Path, rows: Any, max_length: int = 512, system_prompt: str | None = None) -> list[int]:
    """Loss tokens of each SFT row (the count the trainer's ``tokens`` metric sums)."""
    from rl.modeling import load_tokenizer
    from rl.sft_data import loss_tokens, tokenize_row, validate_sft_dataset

    layout = validate_sft_dataset(rows)
    tok = load_tokenizer(str(model_dir))
    return [loss_tokens(tokenize_row(tok, row, layout, max_length, system_prompt)) for row in rows]


def sft_steps_for_tokens(tokens_per_row: Sequence[int], token_budget: int, rows_per_step: int) -> int:
    """Steps whose expected trained tokens (rows per step x mean tokens per row) meet the budget."""
    if not tokens_per_row:
        raise ValueError("sft_steps_for_tokens: the SFT set is empty")
    per_step = rows_per_step * sum(tokens_per_row) / len(tokens_per_row)
    return max(1, int(round(token_budget / per_step)))


def trained_tokens(run_dir: str | Path, key: str) -> int:
    """Tokens a finished run trained on, from its ``metrics.jsonl``: the sum of ``tokens`` per
    logged SFT step (``logging_steps`` must be 1), or the last ``train_tokens`` of an RL run (the
    count is cumulative, so any ``logging_steps`` works there)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics of the run (report_to must include jsonl)")
    by_step: dict[int, float] = {}  # the last record of a step wins (a resumed run may log a step again)
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if key in r:
                by_step[int(r.get("step", 0))] = float(r[key])
    if key == "train_tokens":
        return int(by_step[max(by_step)]) if by_step else 0
    return int(sum(by_step.values()))


# --- evaluation by bucket -------------------------------------------------------------------------
def row_difficulty(row: dict[str, Any]) -> int | None:
    """The row's difficulty: the scorer's ``difficulty`` column, else ``extra_info.difficulty``."""
    d = row.get("difficulty")
    if d is None:
        d = (row.get("extra_info") or {}).get("difficulty")
    return int(d) if d is not None else None


def evaluate_buckets(model_dir: str | Path, rows: Sequence[dict], *, threshold: int = 4,
                     decodings: Sequence[str] = DECODINGS, max_new_tokens: int = 160, temperature: float = 1.0,
                     seed: int = 0, batch_size: int = 100, text_metrics: dict | None = None) -> dict[str, dict]:
    """decoding -> {accuracy, accuracy_easy, accuracy_hard, accuracy_by_difficulty, mean_tokens, n,
    n_easy, n_hard, accuracy_se, and the ``text_metrics``}; a bucket with no row has accuracy None."""
    from rl.eval.heldout import binomial_se
    from rl.eval.evaluate import evaluate_dataset
    from rl.modeling import load_model, load_tokenizer

    for d in decodings:
        if d not in DECODINGS:
            raise ConfigError(f"eval.decodings: unknown decoding {d!r}; known: {list(DECODINGS)}")
    rows = list(rows)
    diffs = [row_difficulty(r) for r in rows]
    tok = load_tokenizer(str(model_dir))
    model = load_model(str(model_dir)).eval()
    out: dict[str, dict] = {}
    for decoding in decodings:
        res = evaluate_dataset(model, tok, rows, greedy=decoding == "greedy", temperature=temperature,
                               max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, text_metrics=text_metrics)
        by: dict[str, list[bool]] = {}
        for s in res["samples"]:
            d = diffs[s["index"]]
            by.setdefault("all", []).append(bool(s["correct"]))
            if d is not None:
                by.setdefault(f"d{d}", []).append(bool(s["correct"]))
                by.setdefault("hard" if d >= threshold else "easy", []).append(bool(s["correct"]))

        def acc(key: str) -> float | None:
            v = by.get(key)
            return sum(v) / len(v) if v else None

        stats = {
            "accuracy": res["accuracy"], "accuracy_se": binomial_se(res["accuracy"], len(res["samples"])),
            "accuracy_easy": acc("easy"), "accuracy_hard": acc("hard"),
            "accuracy_by_difficulty": {k[1:]: acc(k) for k in sorted(by) if k.startswith("d")},
            "n": len(by.get("all", [])), "n_easy": len(by.get("easy", [])), "n_hard": len(by.get("hard", [])),
            "mean_tokens": res["mean_tokens"],
        }
        stats.update({k: res[k] for k in (text_metrics or {})})
        out[decoding] = stats
    return out
