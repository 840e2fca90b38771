"""DeReason's proof: five data schedules at equal compute, on the mixed-difficulty task.

    parsimony compare-schedules --task mixed --out DIR [--config recipes/dereason/tiny.yaml] [--set KEY=VALUE ...]

Schedules (``--schedules``, in this order):
1. ``dereason``: SFT on the easy set, then GRPO on the hard set (the recipe's ``split``: a threshold, or
   the hardest ``rl_fraction``) from the SFT model;
2. ``sft_only``: SFT on all the data;
3. ``rl_only``: GRPO on all the data from the start (untrained) model;
4. ``sft_then_rl``: SFT on all, then GRPO on all;
5. ``random_split``: SFT then GRPO on a seeded random split of the DeReason split's sizes.

**Equal compute = the same number of training tokens** (tokens that carry a loss: SFT completion
tokens with their eos; GRPO completion tokens of every rollout). The DeReason schedule sets the
budget: its SFT stage runs the recipe's ``sft.max_steps`` and its GRPO stage ``rl.max_steps``, and
the tokens they trained on, ``B_sft`` and ``B_rl``, are measured. Two-stage schedules then get
``B_sft`` SFT tokens (their SFT steps are chosen so that batch rows x mean tokens per row meets it)
and ``B_rl`` GRPO tokens (the run stops after the step that reaches them); single-stage schedules
get ``B_sft + B_rl``. Every other setting (lr, batch, G, schedule shape, temperature) is the
recipe's, the same for all. Each ``summary.json`` row reports the tokens actually trained.

Stage settings come from the pipeline recipe's ``sft``, ``rl``, ``eval`` and ``split`` sections.
Every stage is cached and resumable like the pipeline's (``DIR/<schedule>/sft|rl``; a finished
``final/`` is reused, an interrupted run resumes from its checkpoint); delete a directory to redo
it. Writes ``DIR/summary.json`` (rows ``{method, decoding, accuracy, accuracy_hard, accuracy_easy,
train_tokens, ...}``), ``DIR/summary.md`` and ``DIR/plot.png``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from rl.cli_flags import CommaList, FlagParser
from rl.errors import ConfigError
from rl.eval.report import fmt_pct

SCHEDULES = ("dereason", "sft_only", "rl_only", "sft_then_rl", "random_split")
DEFAULT_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "dereason" / "tiny.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    p = FlagParser(prog="parsimony compare-schedules", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="mixed", help="embedded task (its rows need extra_info.difficulty)")
    p.add_argument("--out", default="outputs/compare-schedules")
    p.add_argument("--config", default=str(DEFAULT_RECIPE), help="pipeline recipe: the sft / rl / eval / split settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override, as in `parsimony pipeline`")
    p.add_argument("--schedules", action=CommaList, default=",".join(SCHEDULES))
    p.add_argument("--rl-step-cap", type=int, default=2000,
                   help="most GRPO steps a token-budgeted stage may take (rl_only from an untrained model "
                        "spends ~max_completion_length tokens per rollout, so it needs few)")
    return p.parse_args(argv)


def schedule_sets(rows: list[dict], threshold: int | None = None, seed: int = 0,
                  rl_fraction: float | None = None) -> dict[str, tuple[list[int], list[int]]]:
    """name -> (SFT row indices, RL row indices): ``dereason`` by difficulty (``threshold`` or the
    hardest ``rl_fraction``, as :func:`curriculum.dereason.difficulty.split_by_difficulty`), ``random`` a
    seeded shuffle cut at the DeReason sizes, ``all`` every row for both stages."""
    from curriculum.dereason.difficulty import split_by_difficulty
    from rl.methods.dereason import row_difficulty

    diffs = [row_difficulty(r) for r in rows]
    missing = [i for i, d in enumerate(diffs) if d is None]
    if missing:
        raise ValueError(f"row {missing[0]}: no difficulty (extra_info.difficulty) to split by")
    sft, rl, report = split_by_difficulty(diffs, threshold=threshold, rl_fraction=rl_fraction, seed=seed)
    if not sft or not rl:
        raise ValueError(f"split {report['rule']}: the DeReason split is empty on one side (SFT {len(sft)}, RL {len(rl)})")
    order = list(range(len(rows)))
    random.Random(f"random_split/{seed}").shuffle(order)
    rand_sft, rand_rl = sorted(order[: len(sft)]), sorted(order[len(sft):])
    every = list(range(len(rows)))
    return {"dereason": (sft, rl), "random": (rand_sft, rand_rl), "all": (every, every)}


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decodings = sorted({r["decoding"] for r in summary})
    fig, axes = plt.subplots(1, len(decodings), figsize=(5.5 * len(decodings), 4.2), squeeze=False)
    for ax, decoding in zip(axes[0], decodings):
        rows = [r for r in summary if r["decoding"] == decoding]
        x = range(len(rows))
        for j, (key, label) in enumerate((("accuracy", "overall"), ("accuracy_easy", "easy"), ("accuracy_hard", "hard"))):
            ax.bar([i + (j - 1) * 0.27 for i in x], [100 * (r[key] or 0.0) for r in rows], width=0.27, label=label)
        ax.set_xticks(list(x), [r["method"] for r in rows], rotation=20, fontsize=8)
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_title(f"{decoding} decoding, equal training tokens")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(summary: list[dict]) -> str:
    lines = ["| method | decoding | accuracy | easy | hard | after the SFT stage (all / easy / hard) | train tokens | SFT steps | RL steps |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in summary:
        se = f" ± {100 * r['accuracy_se']:.1f}" if r.get("accuracy_se") is not None else ""
        stage = (" / ".join(fmt_pct(r.get(f"sft_stage_{k}"), "%") for k in ("accuracy", "accuracy_easy", "accuracy_hard"))
                 if r.get("sft_stage_accuracy") is not None else "-")
        lines.append(f"| {r['method']} | {r['decoding']} | {fmt_pct(r['accuracy'], '%')}{se} | {fmt_pct(r['accuracy_easy'], '%')} | "
                     f"{fmt_pct(r['accuracy_hard'], '%')} | {stage} | {r['train_tokens']:,} | {r['sft_steps']} | {r['rl_steps']} |")
    return "\n".join(lines)


def _steps(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
    return max((int(r.get("step", 0)) for r in rows), default=0)


def main(argv=None) -> int:
    import torch

    from curriculum.data import load_dataset_spec
    from curriculum.tasks import task_text_metrics
    from rl.methods.dereason_pipeline import EMBEDDED, load_recipe
    from rl.methods.dereason import evaluate_buckets, sft_loss_tokens, sft_steps_for_tokens, trained_tokens, train_rl_stage, train_sft_stage

    args = parse_args(argv)
    recipe = load_recipe(args.config, args.set, args.out)
    out = Path(recipe["out"])
    out.mkdir(parents=True, exist_ok=True)
    if recipe.get("threads"):
        torch.set_num_threads(int(recipe["threads"]))
    wanted = [s for s in args.schedules.split(",") if s]
    bad = sorted(set(wanted) - set(SCHEDULES))
    if bad:
        raise ConfigError(f"--schedules: unknown schedule(s) {bad}; known: {', '.join(SCHEDULES)}")
    seed = int(recipe.get("seed", 0))
    sft_cfg, rl_cfg, ev = {"seed": seed, **recipe["sft"]}, {"seed": seed, **recipe["rl"]}, recipe["eval"]
    if int(sft_cfg.get("logging_steps", 1)) != 1 or "jsonl" not in sft_cfg.get("report_to", ["jsonl"]):
        raise ConfigError("sft: compare-schedules counts tokens from metrics.jsonl: set logging_steps: 1 and report_to: [jsonl]")
    if "jsonl" not in rl_cfg.get("report_to", ["jsonl"]):
        raise ConfigError("rl: compare-schedules reads train_tokens from metrics.jsonl: report_to must include jsonl")
    split = recipe["split"]
    threshold = int(ev.get("threshold", split.get("threshold", 4)))  # the easy / hard buckets of the evaluation
    t_all = time.time()

    model = str(recipe["model"])
    if model.startswith(EMBEDDED):
        from rl.experiments.tiny_model import make_tiny_model

        start = out / "model"
        if not (start / "config.json").is_file():
            make_tiny_model(start, size=model[len(EMBEDDED):] or "tiny", seed=seed)
    else:
        start = Path(model)
    kwargs = recipe["data"].get("kwargs") or {}
    train_set = load_dataset_spec(f"task:{args.task}", "train", int(recipe["data"].get("num_examples", 8000)), seed, kwargs)
    rows = list(train_set)
    test = list(load_dataset_spec(f"task:{args.task}", "test", int(ev.get("num_examples", 500)), int(ev.get("seed", seed + 1)), kwargs))
    sets = schedule_sets(rows, split.get("threshold"), seed, split.get("rl_fraction"))
    tokens = sft_loss_tokens(start, train_set, int(sft_cfg.get("max_length", 512)), sft_cfg.get("system_prompt"))
    rows_per_step = int(sft_cfg.get("per_device_train_batch_size", 8)) * int(sft_cfg.get("gradient_accumulation_steps", 1))

    def subset(idx):
        return train_set.select(idx)

    def sft(name: str, idx: list[int], budget: int | None) -> Path:
        section = dict(sft_cfg)
        if budget is not None:
            section["max_steps"] = sft_steps_for_tokens([tokens[i] for i in idx], budget, rows_per_step)
        return train_sft_stage(section, start, subset(idx), out / name / "sft", where=f"{name}: sft", run_name=f"{name}-sft")

    def rl(name: str, model_dir: Path, idx: list[int], budget: int) -> Path:
        section = dict(rl_cfg)
        if budget:
            section["max_steps"] = args.rl_step_cap
        return train_rl_stage(section, model_dir, subset(idx), out / name / "rl", where=f"{name}: rl",
                              token_budget=budget, run_name=f"{name}-rl")

    # the budget: DeReason's own stages at the recipe's step counts
    budget_path = out / "budget.json"
    dr_sft, dr_rl = sets["dereason"]
    need_dr = "dereason" in wanted or not budget_path.is_file()
    finals: dict[str, dict] = {}
    if need_dr:
        s = sft("dereason", dr_sft, None)
        r = rl("dereason", s, dr_rl, 0)
        finals["dereason"] = {"final": r, "dirs": [out / "dereason" / "sft", out / "dereason" / "rl"]}
    if not budget_path.is_file():
        budget = {"sft_tokens": trained_tokens(out / "dereason" / "sft", "tokens"),
                  "rl_tokens": trained_tokens(out / "dereason" / "rl", "train_tokens"),
                  "sft_rows": len(dr_sft), "rl_rows": len(dr_rl), "split": split}
        budget_path.write_text(json.dumps(budget, indent=1))
    budget = json.loads(budget_path.read_text())
    b_sft, b_rl = int(budget["sft_tokens"]), int(budget["rl_tokens"])
    print(f"[compare-schedules] budget: {b_sft:,} SFT + {b_rl:,} RL tokens (set by dereason: SFT on {len(dr_sft)} easy "
          f"rows, RL on {len(dr_rl)} hard rows)", flush=True)

    for name in wanted:
        if name == "dereason":
            continue
        print(f"[compare-schedules] {name}", flush=True)
        if name == "sft_only":
            final, dirs = sft(name, sets["all"][0], b_sft + b_rl), [out / name / "sft"]
        elif name == "rl_only":
            final, dirs = rl(name, start, sets["all"][1], b_sft + b_rl), [out / name / "rl"]
        else:
            s_idx, r_idx = sets["all" if name == "sft_then_rl" else "random"]
            final = rl(name, sft(name, s_idx, b_sft), r_idx, b_rl)
            dirs = [out / name / "sft", out / name / "rl"]
        finals[name] = {"final": final, "dirs": dirs}

    summary = []
    metrics = task_text_metrics(args.task)

    def evaluated(model_dir: Path, cache: Path) -> dict:
        if not cache.is_file():
            res = evaluate_buckets(model_dir, test, threshold=threshold,
                                   decodings=ev.get("decodings", ["greedy", "sampled"]),
                                   max_new_tokens=int(ev.get("max_new_tokens", 160)), temperature=float(ev.get("temperature", 1.0)),
                                   seed=seed, batch_size=int(ev.get("batch_size", 100)), text_metrics=metrics)
            cache.write_text(json.dumps(res, indent=1))
        return json.loads(cache.read_text())

    for name in wanted:
        res = evaluated(finals[name]["final"], out / name / "eval.json")
        sft_dir, rl_dir = out / name / "sft", out / name / "rl"
        # a two-stage schedule's SFT stage on its own: what the RL stage then added
        stage = evaluated(sft_dir / "final", out / name / "sft_eval.json") if sft_dir.is_dir() and rl_dir.is_dir() else {}
        sft_tok = trained_tokens(sft_dir, "tokens") if sft_dir.is_dir() else 0
        rl_tok = trained_tokens(rl_dir, "train_tokens") if rl_dir.is_dir() else 0
        for decoding, r in res.items():
            st = stage.get(decoding, {})
            summary.append({
                "method": name, "decoding": decoding, "accuracy": r["accuracy"], "accuracy_hard": r["accuracy_hard"],
                "accuracy_easy": r["accuracy_easy"], "train_tokens": sft_tok + rl_tok, "sft_tokens": sft_tok,
                "rl_tokens": rl_tok, "budget_tokens": b_sft + b_rl, "sft_steps": _steps(sft_dir), "rl_steps": _steps(rl_dir),
                "accuracy_se": r["accuracy_se"], "accuracy_by_difficulty": r["accuracy_by_difficulty"],
                "sft_stage_accuracy": st.get("accuracy"),
                "sft_stage_accuracy_easy": st.get("accuracy_easy"),
                "sft_stage_accuracy_hard": st.get("accuracy_hard"),
                **{k: r.get(k) for k in metrics},
            })
    for r in {r["method"]: r for r in summary}.values():
        if r["train_tokens"] < 0.95 * r["budget_tokens"]:  # e.g. --rl-step-cap reached first
            print(f"[compare-schedules] warning: {r['method']} trained {r['train_tokens']:,} tokens, under the "
                  f"budget of {r['budget_tokens']:,}", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    text = table(summary)
    meta = {"task": args.task, "budget": budget, "eval_problems": len(test), "threshold": threshold,
            "total_seconds": time.time() - t_all, "recipe": recipe}
    (out / "summary.md").write_text(text + "\n\n```json\n" + json.dumps(meta, indent=1, default=str) + "\n```\n")
    plot(summary, out / "plot.png")
    print("\n" + text)
    print(f"\n[compare-schedules] wrote {out / 'summary.json'}, {out / 'summary.md'}, {out / 'plot.png'}")
    return 0
