"""The efficiency leaderboard: Pareto frontier, seed aggregation, tables, plots, docs/leaderboard.md.

Pure functions over ``summary.json`` rows (written by ``parsimony compare``): one row per
``(method, decoding)`` with ``accuracy`` (0..1), ``mean_tokens``, ``redundant_fraction``,
``mean_tries`` (explore), ``train_seconds`` (wall time of the method's GRPO stage), and, from a
``--seeds N`` run, ``<field>_std`` and ``seeds``.

A method is **on the frontier** of a decoding when no other method of that decoding has accuracy
>= and mean tokens <= with at least one of the two strictly better (:func:`pareto_frontier`).
The SFT start (``sft_start``) is drawn for reference but is not a competitor.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Sequence

REFERENCE_ROWS = ("sft_start", "sft_nothink_start")  # the starts (the second: AdaptThink's, compare_starts.py)
# numeric columns averaged over seeds (others are taken from the first seed)
SEED_FIELDS = ("accuracy", "mean_tokens", "redundant_fraction", "redundant_chunks", "mean_tokens_correct", "mean_tries",
               "guess_fraction", "slip_fraction", "nothink_fraction", "nothink_accuracy", "think_accuracy", "train_seconds",
               "approx_rollouts", "accuracy_se")


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[bool]:
    """``points``: ``(accuracy, tokens)``; higher accuracy and fewer tokens are better. Returns, per
    point, whether no other point dominates it (>= on both axes, > on one). Equal points are both kept."""
    out = []
    for i, (a, t) in enumerate(points):
        dominated = any(
            (a2 >= a and t2 <= t) and (a2 > a or t2 < t) for j, (a2, t2) in enumerate(points) if j != i
        )
        out.append(not dominated)
    return out


def decodings(rows: Iterable[dict]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r["decoding"] not in seen:
            seen.append(r["decoding"])
    return seen


def frontier_methods(rows: Sequence[dict], decoding: str) -> list[str]:
    """The methods on the frontier of ``decoding`` (reference rows excluded), in row order."""
    cand = [r for r in rows if r["decoding"] == decoding and r["method"] not in REFERENCE_ROWS]
    flags = pareto_frontier([(r["accuracy"], r["mean_tokens"]) for r in cand])
    return [r["method"] for r, f in zip(cand, flags) if f]


def versus(rows: Sequence[dict], ref: str = "decs") -> list[dict]:
    """Per decoding and method, the differences to ``ref``: ``d_accuracy`` (points), ``d_tokens``
    (relative), and ``beats``: ``"dominates"`` (better on both), ``"accuracy"`` / ``"tokens"`` (better
    on one), or ``""``. Empty when ``ref`` is absent."""
    out = []
    for dec in decodings(rows):
        base = next((r for r in rows if r["decoding"] == dec and r["method"] == ref), None)
        if base is None:
            continue
        for r in rows:
            if r["decoding"] != dec or r["method"] in (ref, *REFERENCE_ROWS):
                continue
            da = 100 * (r["accuracy"] - base["accuracy"])
            dt = (r["mean_tokens"] - base["mean_tokens"]) / base["mean_tokens"] if base["mean_tokens"] else 0.0
            better_acc, fewer = r["accuracy"] > base["accuracy"], r["mean_tokens"] < base["mean_tokens"]
            no_worse = r["accuracy"] >= base["accuracy"] and r["mean_tokens"] <= base["mean_tokens"]
            beats = "dominates" if no_worse and (better_acc or fewer) else "accuracy" if better_acc else "tokens" if fewer else ""
            out.append({"decoding": dec, "method": r["method"], "d_accuracy": da, "d_tokens": dt, "beats": beats})
    return out


def aggregate_seeds(per_seed: Sequence[Sequence[dict]], fields: Sequence[str] = SEED_FIELDS) -> list[dict]:
    """Rows of several seeds -> one row per ``(method, decoding)``: the mean of each numeric field
    of ``fields`` (default :data:`SEED_FIELDS`), its sample std as ``<field>_std`` (0 with one seed), and ``seeds``."""
    keys: list[tuple[str, str]] = []
    cells: dict[tuple[str, str], list[dict]] = {}
    for rows in per_seed:
        for r in rows:
            k = (r["method"], r["decoding"])
            if k not in cells:
                keys.append(k)
                cells[k] = []
            cells[k].append(r)
    out = []
    for k in keys:
        rs = cells[k]
        row = dict(rs[0])
        for f in fields:
            vals = [float(r[f]) for r in rs if r.get(f) is not None and math.isfinite(float(r[f]))]
            if not vals:
                continue
            row[f] = sum(vals) / len(vals)
            row[f"{f}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        row["seeds"] = len(rs)
        out.append(row)
    return out


def _cell(r: dict, f: str, scale: float = 1.0, digits: int = 1, suffix: str = "") -> str:
    v = r.get(f)
    if v is None:
        return "-"
    s = f"{scale * v:.{digits}f}{suffix}"
    if r.get(f"{f}_std") is not None and r.get("seeds", 1) > 1:
        s += f" ± {scale * r[f + '_std']:.{digits}f}"
    return s


def markdown_table(rows: Sequence[dict]) -> str:
    """method | decoding | accuracy | mean tokens | redundant fraction | mean tries | wall s | frontier."""
    fronts = {d: set(frontier_methods(rows, d)) for d in decodings(rows)}
    tries = any(r.get("mean_tries") is not None for r in rows)
    head = "| method | decoding | accuracy (%) | mean tokens | redundant fraction |" + (" mean tries |" if tries else "")
    head += " train wall s | frontier |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {r['method']} | {r['decoding']} | {_cell(r, 'accuracy', 100)} | {_cell(r, 'mean_tokens')} | "
                f"{_cell(r, 'redundant_fraction', digits=3)} |")
        if tries:
            line += f" {_cell(r, 'mean_tries', digits=2)} |"
        on = "ref" if r["method"] in REFERENCE_ROWS else ("**yes**" if r["method"] in fronts[r["decoding"]] else "")
        line += f" {_cell(r, 'train_seconds', digits=0)} | {on} |"
        lines.append(line)
    return "\n".join(lines)


def findings(rows: Sequence[dict], ref: str = "decs") -> str:
    """The frontier per decoding, whether ``ref`` is on it, and where a method beats ``ref``."""
    lines = []
    vs = versus(rows, ref)
    for dec in decodings(rows):
        front = frontier_methods(rows, dec)
        on = ref in front
        lines.append(f"- **{dec}**: frontier = {', '.join(front) or '-'}; {ref} is "
                     f"{'on' if on else 'NOT on'} the frontier.")
        for v in (v for v in vs if v["decoding"] == dec and v["beats"]):
            what = {"dominates": "no less accurate and no longer (dominates)", "accuracy": "more accurate", "tokens": "shorter"}[v["beats"]]
            lines.append(f"  - {v['decoding']}: {v['method']} is {what} than {ref}: "
                         f"{v['d_accuracy']:+.1f} accuracy points, {100 * v['d_tokens']:+.0f}% tokens")
    return "\n".join(lines)


def plot_frontier(rows: Sequence[dict], path: Path, title: str = "") -> None:
    """Accuracy vs mean tokens, one panel per decoding, the Pareto frontier drawn as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decs = decodings(rows)
    fig, axes = plt.subplots(1, len(decs), figsize=(5.5 * len(decs), 4.2), squeeze=False)
    for ax, dec in zip(axes[0], decs):
        sub = [r for r in rows if r["decoding"] == dec]
        front = set(frontier_methods(rows, dec))
        labels: dict[tuple[float, float], list[str]] = {}  # methods at the same point share one label
        for r in sub:
            ref = r["method"] in REFERENCE_ROWS
            x, y = r["mean_tokens"], 100 * r["accuracy"]
            xerr = r.get("mean_tokens_std") if r.get("seeds", 1) > 1 else None
            yerr = 100 * r["accuracy_std"] if r.get("seeds", 1) > 1 and r.get("accuracy_std") is not None else None
            color = "grey" if ref else ("tab:red" if r["method"] in front else "tab:blue")
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o" if not ref else "s", color=color, ms=6, capsize=2)
            labels.setdefault((round(x, 1), round(y, 1)), []).append(r["method"])
        for (x, y), names in labels.items():
            text = "\n".join(", ".join(names[i : i + 3]) for i in range(0, len(names), 3))
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        pts = sorted((r["mean_tokens"], 100 * r["accuracy"]) for r in sub if r["method"] in front)
        if pts:
            xs, ys = [pts[0][0]], [pts[0][1]]
            for x, y in pts[1:]:
                xs += [x, x]
                ys += [ys[-1], y]
            ax.plot(xs, ys, "--", color="tab:red", alpha=0.7, label="Pareto frontier")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_xlabel("mean completion tokens")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{title + ': ' if title else ''}{dec} (up and left is better)", fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_run(out_dir: Path) -> tuple[list[dict], dict]:
    """``summary.json`` and ``summary_meta.json`` (empty when absent) of a compare output directory."""
    out_dir = Path(out_dir)
    rows = json.loads((out_dir / "summary.json").read_text())
    meta_path = out_dir / "summary_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return rows, meta


TASK_HEADING = "## Task `"


def task_sections(text: str) -> dict[str, str]:
    """The ``## Task `NAME``` sections of a generated leaderboard page, by task name, each from its
    heading up to the next one (or the end), trailing blank lines stripped."""
    sections: dict[str, str] = {}
    chunks = text.split("\n" + TASK_HEADING)
    for chunk in chunks[1:]:
        name, _, _ = chunk.partition("`")
        sections[name] = (TASK_HEADING + chunk).rstrip("\n")
    return sections


def render_doc(runs: Sequence[tuple[Path, list[dict], dict]], images: Sequence[str], generated: str,
               keep: dict[str, str] | None = None) -> str:
    """docs/leaderboard.md from compare runs ``(dir, rows, meta)`` and their plot paths (relative to docs/).
    ``keep``: sections of an earlier page (:func:`task_sections`) for tasks these runs do not cover,
    kept verbatim, so that one task's leaderboard can be regenerated without rerunning the others.
    Sections are ordered by task name."""
    sections = dict(keep or {})
    for (d, rows, meta), img in zip(runs, images):
        task = meta.get("task", Path(d).name)
        sections[task] = run_section(task, rows, meta, img)
    parts = [
        "# The efficiency-method leaderboard",
        "",
        "Generated by `parsimony leaderboard --from DIR [--from DIR ...] --out docs/leaderboard.md` from each "
        "run's `summary.json`; do not edit by hand. The methods are described in "
        "[efficiency-methods.md](efficiency-methods.md).",
        f"Generated {generated}.",
    ]
    for task in sorted(sections):
        parts += ["", sections[task]]
    return "\n".join(parts) + "\n"


def wall_time(meta: dict) -> str:
    """The run's wall time for the page: this invocation's, and where it reused stages trained by
    earlier invocations (a run split over processes), the GRPO stages' own sum as well."""
    secs = meta.get("total_seconds")
    text = f"{secs / 60:.0f} min" if secs is not None else "unknown"
    reused = meta.get("reused_stages") or []
    if reused:
        text += f" for this invocation, which reused {len(reused)} stage(s) trained earlier ({', '.join(reused)})"
        if meta.get("train"):
            stage = sum(t.get("seconds", 0.0) for t in meta["train"].values())
            text += f"; the GRPO stages took {stage / 60:.0f} min in all"
    return text


def run_section(task: str, rows: list[dict], meta: dict, img: str) -> str:
    """One task's section of docs/leaderboard.md."""
    seeds = max((r.get("seeds", 1) for r in rows), default=1)
    parts = [f"{TASK_HEADING}{task}`", ""]
    parts.append(f"- command: `{meta.get('command', 'parsimony compare ...')}`")
    parts.append(f"- machine: {meta.get('machine', 'unknown')}; date: {meta.get('date', 'unknown')}; "
                 f"total wall time: {wall_time(meta)}")
    parts.append(f"- budget: {meta.get('grpo_steps', '?')} GRPO steps x {meta.get('prompts_per_step', '?')} prompts x "
                 f"G={meta.get('num_generations', '?')}, the same SFT start and seed for every method; "
                 + (f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed (no ± : differences of a few points "
                    "may be noise)"))
    if meta.get("hf_decode"):  # recorded from 2026-12-06 on; earlier runs used generate and one padded update
        parts.append(f"- engine: HF `hf_decode: {meta['hf_decode']}`, update in {meta.get('update_split', 1)} length-sorted "
                     f"piece(s); {meta.get('jobs', 1)} stage(s) at a time x {meta.get('threads', 1)} thread(s)")
    parts.append("- GFPO samples `gfpo_sample_factor` x G completions per prompt and trains on G of them: the same "
                 "trained rollouts, more generated ones (its wall time shows the cost).")
    parts += ["", markdown_table(rows), "", findings(rows), "", f"![{task}]({img})"]
    return "\n".join(parts)


def machine_description() -> str:
    import os
    import platform

    cpu = ""
    try:  # the CPU model matters on CPU: the tiny model's matmuls run near its peak
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores{f' ({cpu})' if cpu else ''}, "
            f"Python {platform.python_version()}")


def write_run_outputs(rows: Sequence[dict], out: Path, meta: dict, command: str | None = None) -> None:
    """A compare run's leaderboard files in ``out``: ``leaderboard.md`` (the table with the frontier
    marked, the findings), ``plot.png`` (accuracy vs tokens, frontier drawn) and ``summary_meta.json``
    (``meta`` plus the command, the machine and the date)."""
    import datetime
    import shlex
    import sys

    out = Path(out)
    meta = dict(meta)
    meta.setdefault("command", command or "parsimony compare " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    meta.setdefault("machine", machine_description())
    meta.setdefault("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    (out / "summary_meta.json").write_text(json.dumps(meta, indent=1, default=str))
    (out / "leaderboard.md").write_text(markdown_table(rows) + "\n\n" + findings(rows) + "\n")
    plot_frontier(rows, out / "plot.png", title=str(meta.get("task", "")))


def each_seed(run_one, argv: list[str], args: Any, load) -> tuple[list, list] | int:
    """Run ``run_one(argv + [--out DIR/seed<k> --seed k --seeds 1])`` for ``k = seed .. seed + N - 1``;
    returns ``([rows per seed], [meta per seed])`` as ``load(DIR/seed<k>)`` reads them, or the first
    nonzero exit code."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_seed, metas = [], []
    for k in range(args.seed, args.seed + args.seeds):
        sub = out / f"seed{k}"
        code = run_one(list(argv) + ["--out", str(sub), "--seed", str(k), "--seeds", "1"])
        if code:
            return code
        rows, meta = load(sub)
        per_seed.append(rows)
        metas.append(meta)
    return per_seed, metas


def run_seeds(run_one, argv: list[str], args: Any) -> int:
    """``parsimony compare --seeds N``: run ``run_one(argv + [--out DIR/seed<k> --seed k --seeds 1])``
    for ``k = seed .. seed + N - 1``, then write the mean ± std of every cell to ``DIR/summary.json``
    (:func:`aggregate_seeds`) and the leaderboard files (:func:`write_run_outputs`)."""
    import shlex
    import time

    out = Path(args.out)
    t0 = time.time()
    done = each_seed(run_one, argv, args, load_run)
    if isinstance(done, int):
        return done
    per_seed, metas = done
    rows = aggregate_seeds(per_seed)
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    meta = {**metas[0], "seeds": list(range(args.seed, args.seed + args.seeds)), "total_seconds": time.time() - t0,
            "seed_dirs": [f"seed{k}" for k in range(args.seed, args.seed + args.seeds)],
            # every seed's stages trained by an earlier invocation, not only the first seed's
            "reused_stages": [f"seed{k}/{m}" for k, m_ in zip(range(args.seed, args.seed + args.seeds), metas)
                              for m in m_.get("reused_stages") or []],
            "seed_seconds": [m_.get("total_seconds") for m_ in metas]}
    for key in ("command", "train", "seed"):
        meta.pop(key, None)
    write_run_outputs(rows, out, meta, command="parsimony compare " + " ".join(shlex.quote(a) for a in argv))
    print("\n" + markdown_table(rows) + "\n\n" + findings(rows))
    print(f"\n[compare] {args.seeds} seeds: wrote {out / 'summary.json'}, {out / 'leaderboard.md'}, {out / 'plot.png'}")
    return 0
