"""Accuracy, tokens and redundancy of a checkpoint on a held-out split.

Shared by the quickstart and ``parsimony compare``. ``redundant_fraction`` is the share of
all completion tokens that a correct response spends after its necessary reasoning prefix
(NRP), found with the same chunker and rule judge that the DECS reward uses. Completions are
re-encoded from their text to find token positions, so counts can differ from the generated
ids by a token where BPE merges differently; the fraction is unaffected in practice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curriculum.data import get_ground_truth
from rl.eval.evaluate import evaluate_dataset
from rl.modeling import load_model, load_tokenizer

DECODINGS = ("greedy", "sampled")


def redundancy_stats(tokenizer: Any, rows: list[dict], samples: list[dict]) -> dict[str, float]:
    """Redundant tokens / all tokens, and mean redundant chunks per completion."""
    from rewards.decs.reward import DECSRedundancyReward

    reward = DECSRedundancyReward(tokenizer)
    texts = [s["completion"] for s in samples]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    prompts = [rows[s["index"]]["prompt"] for s in samples]
    gts = [{"ground_truth": get_ground_truth(rows[s["index"]]) or ""} for s in samples]
    per_token = reward(prompts=prompts, completions=texts, completion_ids=ids, reward_model=gts)
    meta = reward.pop_meta()
    reward.pop_metrics()
    redundant = sum(sum(x) for x in per_token)
    total = sum(len(x) for x in ids)
    chunks_after = [
        (m["decs/num_chunks"] - m["decs/nrp_chunk"] - 1) for m in meta if m.get("decs/nrp_chunk") is not None
    ]
    return {
        "redundant_fraction": redundant / total if total else 0.0,
        "redundant_chunks": sum(chunks_after) / len(samples) if samples else 0.0,
    }


def evaluate_checkpoint(
    model_dir: str | Path,
    dataset: Any,
    *,
    max_new_tokens: int = 160,
    temperature: float = 1.0,
    decodings: tuple[str, ...] = DECODINGS,
    seed: int = 0,
    batch_size: int = 100,
    text_metrics: dict[str, Any] | None = None,
    rollout: dict[str, Any] | None = None,
    row_metrics: dict[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """decoding -> {accuracy, mean_tokens, redundant_fraction, redundant_chunks, ...}, plus each of
    ``text_metrics`` (name -> fn(completion) -> float, e.g. ``curriculum.tasks.task_text_metrics``)
    averaged over the samples.

    ``rollout`` (a task's multi-turn settings, ``curriculum.tasks.TASK_ROLLOUTS``: ``environment``,
    ``environment_kwargs``, ``max_turns``) evaluates episodes instead (:mod:`rl.eval.episodes`):
    the tool-call metrics come in, ``row_metrics`` (``fn(row, sample)``) are averaged, and the
    redundancy fields are None (the DECS chunker reads single-turn reasoning)."""
    tok = load_tokenizer(str(model_dir))
    model = load_model(str(model_dir)).eval()
    rows = list(dataset)
    out: dict[str, dict[str, float]] = {}
    if rollout:
        from rl.eval.episodes import evaluate_episodes

        for decoding in decodings:
            res = evaluate_episodes(
                model, tok, rows, environment=rollout["environment"], environment_kwargs=rollout.get("environment_kwargs"),
                max_turns=int(rollout.get("max_turns", 4)), greedy=decoding == "greedy", temperature=temperature,
                max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, text_metrics=text_metrics,
                row_metrics=row_metrics,
            )
            stats = {k: v for k, v in res.items() if isinstance(v, (int, float)) or v is None or k == "tool_calls_by_bucket"}
            stats["accuracy_se"] = binomial_se(stats.get("accuracy", 0.0), len(res["samples"]))
            stats.update(redundant_fraction=None, redundant_chunks=None)
            out[decoding] = stats
        return out
    for decoding in decodings:
        res = evaluate_dataset(  # seeded per sample: the sampled decoding is reproducible
            model, tok, rows, greedy=decoding == "greedy", temperature=temperature,
            max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, text_metrics=text_metrics,
        )
        stats = {k: v for k, v in res.items() if isinstance(v, (int, float))}
        stats["accuracy_se"] = binomial_se(stats.get("accuracy", 0.0), len(res["samples"]))
        stats.update(redundancy_stats(tok, rows, res["samples"]))
        out[decoding] = stats
    return out


def sft_warm_start(
    model_dir: str | Path,
    task: str,
    steps: int,
    output_dir: str | Path,
    *,
    learning_rate: float = 3e-3,
    report_to: list[str] | None = None,
    seed: int = 0,
    run_name: str = "sft",
    logging_steps: int = 25,
    dataset_kwargs: dict | None = None,
) -> Path:
    """SFT the embedded model on a synthetic task's traces (batch 32, cut into 4 length-sorted pieces, cosine schedule,
    short warmup: the settings measured to learn on 2 CPU cores); returns ``output_dir/final``. ``dataset_kwargs``:
    the task's options (e.g. ``nothink_rate``)."""
    from rl.config import SFTConfig
    from rl.sft_trainer import SFTTrainer

    cfg = SFTConfig(
        overwrite_output_dir=True,  # a harness stage owns its folder: a rerun replaces it
        model=str(model_dir), dataset=f"task:{task}", dataset_num_examples=max(4096, steps * 32),
        dataset_kwargs=dict(dataset_kwargs or {}),
        learning_rate=learning_rate, lr_scheduler_type="cosine", warmup_steps=min(50, steps // 10),
        per_device_train_batch_size=32, split_by_length=4, max_steps=steps, output_dir=str(output_dir),
        report_to=list(report_to or ["jsonl"]), logging_steps=logging_steps, save_total_limit=1, seed=seed,
        run_name=run_name,
    )
    SFTTrainer(cfg.model, args=cfg).train()
    return Path(output_dir) / "final"


def add_grpo_speed_args(parser: Any) -> None:
    """The embedded experiments' GRPO speed options (quickstart, compare): both keep the sampling
    distribution and the gradient (docs/performance.md), so they are on by default there."""
    parser.add_argument("--hf-decode", default="compact", choices=["compact", "generate"],
                        help="GRPO rollouts: compact (finished rows leave the batch and its KV cache; the same "
                             "distribution, cost follows the generated tokens) or transformers' generate")
    parser.add_argument("--update-split", type=int, default=4,
                        help="GRPO update: this many length-sorted pieces per batch, each trimmed to its longest row "
                             "(split_by_length: the same gradient with less padding; 1 = one padded batch)")


def grpo_speed_fields(args: Any) -> dict[str, Any]:
    """``GRPOConfig`` fields of :func:`add_grpo_speed_args`'s options."""
    return {"hf_decode": args.hf_decode, "split_by_length": args.update_split}


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy over ``n`` independent samples."""
    return (p * (1 - p) / n) ** 0.5 if n > 0 else float("nan")


