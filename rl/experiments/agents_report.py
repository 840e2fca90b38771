"""The report of ``parsimony compare-agents``: the verdicts, the table, the plot, and the mean over seeds.

Rows (``summary.json``): ``method, decoding, accuracy, accuracy_se, executor_accuracy, executor_format_ok,
mean_calls, mean_tokens, truncated_frac`` (the episodes that ran out of their context budget),
``problems``, ``train_seconds``, ``train_tokens`` (generated in training, every role); over seeds each numeric field is the mean, with ``<field>_std`` and
``seeds``, and ``accuracy_se`` is the pooled binomial SE of all the seeds' episodes.
"""

from __future__ import annotations

import json
import math
import shlex
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rl.eval.report import fmt_pct

MGRPO_ARMS = ("mgrpo_shared", "mgrpo_separate", "mgrpo_lora")
BASELINES = ("single_agent", "frozen_executor")
DECODINGS = ("greedy", "sampled")
SEED_FIELDS = ("accuracy", "executor_accuracy", "executor_format_ok", "mean_calls", "mean_tokens", "truncated_frac",
               "train_seconds", "train_tokens")


def beats_baselines(summary: list[dict]) -> dict[str, dict[str, bool | None]]:
    """Per M-GRPO arm and decoding: its held-out accuracy above every baseline's (None: no baseline ran)."""
    acc = {(r["method"], r["decoding"]): r["accuracy"] for r in summary}
    out: dict[str, dict[str, bool | None]] = {}
    for arm in MGRPO_ARMS:
        for decoding in DECODINGS:
            if (arm, decoding) not in acc:
                continue
            base = [acc[(b, decoding)] for b in BASELINES if (b, decoding) in acc]
            out.setdefault(arm, {})[decoding] = all(acc[(arm, decoding)] > b for b in base) if base else None
    return out


def verdict_with_se(summary: list[dict]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per M-GRPO arm, decoding and baseline: the accuracy margin (points), the combined SE
    ``sqrt(se_arm^2 + se_base^2)`` (points) and ``clear``: margin > 2 combined SE (the proof's target)."""
    cells = {(r["method"], r["decoding"]): r for r in summary}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for arm in MGRPO_ARMS:
        for decoding in DECODINGS:
            a = cells.get((arm, decoding))
            if a is None:
                continue
            for base in BASELINES:
                b = cells.get((base, decoding))
                if b is None:
                    continue
                margin = 100 * (a["accuracy"] - b["accuracy"])
                se = 100 * math.hypot(a.get("accuracy_se") or 0.0, b.get("accuracy_se") or 0.0)
                out.setdefault(arm, {}).setdefault(decoding, {})[base] = {
                    "margin": round(margin, 2), "combined_se": round(se, 2), "clear": margin > 2 * se}
    return out


def table(summary: list[dict]) -> str:
    lines = ["| method | decoding | accuracy | executor accuracy | executor format ok | mean calls | mean tokens | "
             "context overruns | train s | train tokens |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary:
        se = f" ± {100 * r['accuracy_se']:.1f}" if r.get("accuracy_se") is not None else ""
        secs = "-" if r.get("train_seconds") is None else f"{r['train_seconds']:.0f}"
        toks = "-" if r.get("train_tokens") is None else f"{r['train_tokens']:,.0f}"
        sd = f" (sd {100 * r['accuracy_std']:.1f})" if r.get("seeds", 1) > 1 and "accuracy_std" in r else ""
        over = r.get("truncated_frac")
        lines.append(f"| {r['method']} | {r['decoding']} | {100 * r['accuracy']:.1f}%{se}{sd} | "
                     f"{fmt_pct(r['executor_accuracy'], '%')} | {fmt_pct(r['executor_format_ok'], '%')} | "
                     f"{r['mean_calls']:.2f} | {r['mean_tokens']:.1f} | {'-' if over is None else f'{100 * over:.1f}%'} | {secs} | {toks} |")
    return "\n".join(lines)


def plot(summary: list[dict], path: Path) -> None:
    """Held-out planner and executor accuracy per arm (left) and mean calls per episode (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.4))
    labels = [f"{r['method']}\n{r['decoding']}" for r in summary]
    xs = list(range(len(summary)))
    ax.bar([x - 0.2 for x in xs], [100 * r["accuracy"] for r in summary], width=0.4, label="accuracy (planner / system)",
           yerr=[100 * (r.get("accuracy_se") or 0.0) for r in summary])
    ax.bar([x + 0.2 for x in xs], [100 * (r["executor_accuracy"] or 0.0) for r in summary], width=0.4,
           label="executor accuracy (r_local)")
    ax.set_xticks(xs, labels, fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("held-out accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    bx.bar(xs, [r["mean_calls"] for r in summary])
    bx.set_xticks(xs, labels, fontsize=7, rotation=45, ha="right")
    bx.set_ylabel("mean calls per episode (executor | tools)")
    bx.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def aggregate(per_seed: Sequence[Sequence[dict]]) -> list[dict]:
    """One row per ``(method, decoding)`` over seeds: :func:`rl.experiments.leaderboard.aggregate_seeds` of
    :data:`SEED_FIELDS`, and ``accuracy_se`` pooled over every seed's episodes."""
    from rl.experiments.leaderboard import aggregate_seeds

    rows = aggregate_seeds(per_seed, fields=SEED_FIELDS)
    for r in rows:
        n = sum(int(s["problems"]) for seed in per_seed for s in seed
                if (s["method"], s["decoding"]) == (r["method"], r["decoding"]))
        r["problems"] = n
        r["accuracy_se"] = math.sqrt(r["accuracy"] * (1 - r["accuracy"]) / n) if n else None
    return rows


def write_report(out: Path, summary: list[dict], meta: dict[str, Any]) -> str:
    """``summary.json``, ``summary.md`` (the table, the verdicts, the settings), ``summary_meta.json``, ``plot.png``."""
    meta = {**meta, "mgrpo_beats_baselines": beats_baselines(summary), "margins": verdict_with_se(summary)}
    text = table(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(
        text + "\n\nM-GRPO above both baselines (held-out accuracy): " + json.dumps(meta["mgrpo_beats_baselines"])
        + "\n\nMargins over each baseline (points) and the combined SE; clear = margin > 2 SE: "
        + json.dumps(meta["margins"]) + "\n\n```json\n" + json.dumps(meta, indent=1) + "\n```\n")
    (out / "summary_meta.json").write_text(json.dumps(meta, indent=1))
    plot(summary, out / "plot.png")
    return text


def run_seeds(run_one: Callable[[list[str]], int], argv: list[str], args: Any) -> int:
    """``compare-agents --seeds N``: ``run_one(argv + [--out DIR/seed<k> --seed k --seeds 1])`` for each seed,
    then the mean over seeds (:func:`aggregate`) in ``DIR``'s report."""
    from rl.experiments.leaderboard import each_seed

    out = Path(args.out)
    t0 = time.time()
    done = each_seed(run_one, argv, args, lambda sub: (json.loads((sub / "summary.json").read_text()),
                                                       json.loads((sub / "summary_meta.json").read_text())))
    if isinstance(done, int):
        return done
    per_seed, metas = done
    rows = aggregate(per_seed)
    meta = {**{k: v for k, v in metas[0].items() if k not in ("seed", "train", "total_seconds", "sft_checkpoints")},
            "seeds": list(range(args.seed, args.seed + args.seeds)), "seed_seconds": [m["total_seconds"] for m in metas],
            "total_seconds": time.time() - t0, "command": "parsimony compare-agents " + " ".join(shlex.quote(a) for a in argv)}
    text = write_report(out, rows, meta)
    print("\n" + text + f"\n\n[compare-agents] {args.seeds} seeds: wrote {out / 'summary.json'}, {out / 'summary.md'}")
    return 0
