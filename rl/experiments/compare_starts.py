"""The second start of ``parsimony compare``, for the methods that cannot train from the shared one.

AdaptThink (``adapt_think``, docs/efficiency-methods.md) learns *when* to think, so it needs a start that answers
in both modes; the board's shared SFT start has never seen a NoThinking answer. For such a method the comparison
trains a second SFT start on the same task with the same steps, a ``NOTHINK_RATE`` share of whose traces answer
without thinking (``dataset_kwargs: {"nothink_rate": 0.25}``, :func:`curriculum.tasks.adapt.mix_nothink`; the prompts
and ground truths are the task's), evaluates it beside the shared start (row ``sft_nothink_start``, a reference and
not a competitor), and measures ``R_ref(x)`` on it as the paper does: ``k`` Thinking samples of each prompt the run
will draw (the trainer's :class:`~curriculum.samplers.PromptSampler` over the same rows and seed), at the run's
temperature and completion budget. A variant that sets ``adapt_think_ref_accuracy`` itself (``first_seen``) skips the
measurement. The other methods' stages are untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["DATASET_NUM_EXAMPLES", "NOTHINK_START", "needs_nothink_start", "nothink_start", "reference_file", "stage_plan"]

NOTHINK_START = "sft_nothink"  # its folder under --out, and (with _start) its row on the board
DATASET_NUM_EXAMPLES = 4096  # the comparison's training rows: every stage's, and the R_ref prompts are drawn from them


def needs_nothink_start(settings: dict) -> bool:
    """Does a method (its :func:`~rl.experiments.compare_methods.method_settings`) train from the both-modes start?"""
    return settings.get("method") == "adapt_think"


def nothink_start(args, model_dir: Path, task: str, out: Path) -> Path:
    """SFT from ``model_dir`` on ``task`` with the NoThinking mix: the shared start's recipe otherwise (cached)."""
    from curriculum.tasks.adapt import NOTHINK_RATE
    from rl.eval.heldout import sft_warm_start

    final = out / NOTHINK_START / "final"
    if final.is_dir():
        print(f"[compare] reusing {final}")
        return final
    print(f"[compare] {NOTHINK_START}: SFT on task:{task} with {NOTHINK_RATE:.0%} NoThinking traces (the AdaptThink start)")
    return sft_warm_start(model_dir, task, args.sft_steps, out / NOTHINK_START, report_to=args.report_to.split(","),
                          seed=args.seed, run_name="compare-sft-nothink", logging_steps=50,
                          dataset_kwargs={"nothink_rate": NOTHINK_RATE})


def reference_file(args, start: Path, task: str, out: Path, k: int = 16) -> Path:
    """``R_ref`` of every prompt the run draws (``grpo_steps`` x ``prompts_per_step``), ``k`` samples each, as
    ``parsimony adapt-think-ref`` writes it; cached by its settings."""
    from curriculum.data import load_dataset_spec
    from curriculum.samplers import PromptSampler
    from rl.methods.adapt_think_ref import write_reference_file
    from rollout.types import SamplingConfig

    path = out / NOTHINK_START / (f"ref_k{k}_steps{args.grpo_steps}x{args.prompts_per_step}_T{args.temperature:g}"
                                  f"_len{args.max_completion_length}.jsonl")
    if path.is_file():
        print(f"[compare] reusing {path}")
        return path
    rows = load_dataset_spec(f"task:{task}", "train", DATASET_NUM_EXAMPLES, args.seed, {})
    drawn = PromptSampler(len(rows), seed=args.seed).draw(args.grpo_steps * args.prompts_per_step)
    sampling = SamplingConfig(max_new_tokens=args.max_completion_length, temperature=args.temperature, top_p=1.0,
                              return_logprobs=False)
    n, mean = write_reference_file(start, [rows[i] for i in drawn], path, k=k, sampling=sampling, seed=args.seed)
    print(f"[compare] R_ref: {n} prompts x {k} Thinking samples on {start}, mean {mean:.3f} -> {path}")
    return path


def stage_plan(args, methods: list[str], settings: dict[str, dict], start: Path, model_dir: Path, task: str, out: Path,
               evaluate) -> tuple[dict[str, Path], dict[str, dict], dict[str, dict]]:
    """Each method's start and extra ``method_kwargs``, and the evaluations of the extra starts (``{row: result}``):
    the shared ``start`` for every method but those that need the both-modes one (:func:`needs_nothink_start`),
    which get :func:`nothink_start` and, unless their settings name one, the ``R_ref`` file."""
    starts = {m: start for m in methods}
    extra: dict[str, dict] = {m: {} for m in methods}
    adapt = [m for m in methods if needs_nothink_start(settings[m])]
    if not adapt:
        return starts, extra, {}
    second = nothink_start(args, model_dir, task, out)
    evaluated = {NOTHINK_START: evaluate(second)}
    ref = None
    for m in adapt:
        starts[m] = second
        if not settings[m].get("method_kwargs", {}).get("adapt_think_ref_accuracy"):
            ref = ref or reference_file(args, second, task, out)
            extra[m] = {"adapt_think_ref_accuracy": str(ref)}
    return starts, extra, evaluated
