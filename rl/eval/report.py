"""Outputs of ``parsimony eval``: the resumable sample store (``samples.jsonl``), the run
config check, ``results.json``, the markdown table (``results.md``), the
accuracy-vs-tokens plot and W&B logging."""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from rl.eval.errors import EvalError
from rl.eval.metrics import summarize_samples

SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"
PLOT_FILE = "accuracy_vs_tokens.png"
CONFIG_FILE = "run_config.json"

# per-record fields kept in memory (completions can be long: they stay on disk only)
_KEEP = ("model", "benchmark", "problem", "sample", "extracted", "correct", "status", "tokens", "truncated",
         "tool_calls", "gen_seconds")


def _error(msg: str) -> Exception:
    return EvalError(msg)


# ---------------------------------------------------------------------------------------
# samples.jsonl
# ---------------------------------------------------------------------------------------


class SampleStore:
    """Every completion of a run, one JSON line each, appended (flushed and fsynced) per
    finished batch. A problem is *finished* for a (model, benchmark) when its samples
    ``0 .. n-1`` are all recorded. On open, the file is read back and rewritten without
    undecodable lines (an interrupted write), duplicates (the last copy wins) and the
    samples of unfinished problems, which are generated again."""

    def __init__(self, path: str | Path, n: int, fresh: bool = False):
        self.path = Path(path)
        self.n = int(n)
        # (model, benchmark) -> problem -> sample -> record (without the completion text)
        self._data: dict[tuple[str, str], dict[int, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
        self.dropped_lines = 0
        if fresh and self.path.exists():
            self.path.unlink()
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        lines: dict[tuple, str] = {}  # insertion order = file order; a later duplicate replaces
        bad = 0
        with open(self.path, "r", encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    key = (rec["model"], rec["benchmark"], int(rec["problem"]), int(rec["sample"]))
                    if not 0 <= key[3] < self.n:
                        raise ValueError
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    bad += 1
                    continue
                if key in lines:
                    bad += 1
                    del lines[key]
                lines[key] = line if line.endswith("\n") else line + "\n"
        count: dict[tuple, int] = defaultdict(int)
        for key in lines:
            count[key[:3]] += 1
        good = []
        for key, line in lines.items():
            if count[key[:3]] == self.n:
                good.append(line)
                self._remember(json.loads(line))
            else:
                bad += 1
        self.dropped_lines = bad
        if bad:
            tmp = self.path.with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(good)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def _remember(self, rec: dict[str, Any]) -> None:
        slim = {k: rec[k] for k in _KEEP if k in rec}
        self._data[(rec["model"], rec["benchmark"])][int(rec["problem"])][int(rec["sample"])] = slim

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for rec in records:
            self._remember(rec)

    def finished(self, model: str, benchmark: str, n: int) -> set[int]:
        """Problem indices with all ``n`` samples recorded."""
        probs = self._data.get((model, benchmark), {})
        return {p for p, s in probs.items() if all(j in s for j in range(n))}

    def records(self, model: str, benchmark: str, n: int, problems: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Samples ``0 .. n-1`` of the finished problems (restricted to ``problems``)."""
        probs = self._data.get((model, benchmark), {})
        wanted = set(problems) if problems is not None else None
        out = []
        for p in sorted(self.finished(model, benchmark, n)):
            if wanted is None or p in wanted:
                out.extend(probs[p][j] for j in range(n))
        return out


# ---------------------------------------------------------------------------------------
# run config (resume safety)
# ---------------------------------------------------------------------------------------


def _fingerprint(settings: Any, options: Any) -> dict[str, Any]:
    return {**settings.fingerprint(), "engine": options.engine, "dtype": options.dtype}


def check_run_config(out: Path, settings: Any, options: Any, overwrite: bool = False) -> None:
    """Refuse to resume into a directory whose samples were generated with other settings
    (those of :meth:`EvalSettings.fingerprint`, the engine and the dtype)."""
    path = Path(out) / CONFIG_FILE
    if overwrite or not path.is_file() or not (Path(out) / SAMPLES_FILE).exists():
        return
    try:
        old = json.loads(path.read_text()).get("settings", {})
    except (json.JSONDecodeError, OSError):
        return
    new = _fingerprint(settings, options)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
        raise _error(
            f"{out} holds samples generated with other settings ({detail}); use another --output-dir or --overwrite"
        )


def write_run_config(out: Path, settings: Any, models: Sequence[Any], benchmarks: Sequence[Any], options: Any) -> None:
    cfg = {
        "settings": _fingerprint(settings, options),
        "batch_size": settings.batch_size,
        "models": [vars(m) for m in models],
        "benchmarks": [{"name": b.name, "source": b.source, "grading": b.mode, "num_problems": len(b)} for b in benchmarks],
        "argv": sys.argv[1:],
    }
    (Path(out) / CONFIG_FILE).write_text(json.dumps(cfg, indent=1))


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------


def build_results(store: SampleStore, models: Sequence[Any], benchmarks: Sequence[Any], settings: Any) -> list[dict[str, Any]]:
    """One result per model x benchmark, plus one ``"benchmark": "overall"`` per model that
    pools every sample of that model (problems weighted equally across benchmarks; the
    unweighted mean of the benchmarks' pass@1 is ``macro_pass@1``)."""
    rows: list[dict[str, Any]] = []
    for m in models:
        pooled: list[dict[str, Any]] = []
        per_bench: list[float] = []
        for b in benchmarks:
            recs = store.records(m.name, b.name, settings.n, [p.index for p in b.problems])
            summary = summarize_samples(recs)
            row = {"model": m.name, "model_path": m.path, "adapter": m.adapter, "benchmark": b.name,
                   "source": b.source, "grading": b.mode, "complete": summary["num_problems"] == len(b)}
            row.update(summary)
            row.update(_settings_columns(settings))
            rows.append(row)
            pooled.extend(recs)
            if summary["pass@1"] is not None:
                per_bench.append(summary["pass@1"])
        summary = summarize_samples(pooled, problem_keys=("benchmark", "problem"))
        row = {"model": m.name, "model_path": m.path, "adapter": m.adapter, "benchmark": "overall",
               "source": ", ".join(b.name for b in benchmarks), "grading": "mixed" if len({b.mode for b in benchmarks}) > 1
               else benchmarks[0].mode, "complete": all(r["complete"] for r in rows if r["model"] == m.name)}
        row.update(summary)
        row["macro_pass@1"] = sum(per_bench) / len(per_bench) if per_bench else None
        row.update(_settings_columns(settings))
        rows.append(row)
    return rows


def _settings_columns(settings: Any) -> dict[str, Any]:
    return {"temperature": settings.temperature, "top_p": settings.top_p, "top_k": settings.top_k,
            "max_new_tokens": settings.max_new_tokens, "seed": settings.seed}


def fmt_pct(x: float | None, suffix: str = "") -> str:
    """A fraction as a percentage with one decimal (``0.123`` -> ``12.3``), ``-`` for a missing value."""
    return "-" if x is None else f"{100 * x:.1f}{suffix}"


def fmt_num(x: float | None, fmt: str = "{:.1f}") -> str:
    """A number for a markdown table, ``-`` for a missing value."""
    return "-" if x is None else fmt.format(x)


def markdown_table(results: Sequence[dict[str, Any]], n: int) -> str:
    """The results as a markdown table (accuracies in %)."""
    head = ["model", "benchmark", "problems", "pass@1", f"maj@{n}", f"pass@{n}", "mean tokens", "median tokens",
            "tokens (correct)", "tokens (incorrect)", "truncated %", "tok/s"]
    has_tools = any("mean_tool_calls" in r for r in results)
    if has_tools:
        head.insert(10, "tool calls")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in results:
        cells = [
            r["model"], r["benchmark"], str(r["num_problems"]), fmt_pct(r["pass@1"]), fmt_pct(r["maj@n"]),
            fmt_pct(r["pass@k"].get(str(r["n"]))), fmt_num(r["mean_tokens"]), fmt_num(r["median_tokens"]),
            fmt_num(r["mean_tokens_correct"]), fmt_num(r["mean_tokens_incorrect"]), fmt_pct(r["truncated_frac"]),
            fmt_num(r["tokens_per_second"], "{:.0f}"),
        ]
        if has_tools:
            cells.insert(10, fmt_num(r.get("mean_tool_calls"), "{:.2f}"))
        if r["benchmark"] == "overall":
            cells[0], cells[1] = f"**{cells[0]}**", "**overall**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_accuracy_vs_tokens(results: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One labelled point per model x benchmark: x = mean completion tokens, y = pass@1 (%).
    Colour = model, marker = benchmark; a dashed grey line joins one benchmark's points in
    the order the models were given (e.g. base -> tuned), so a move up-left is "more
    accurate with fewer tokens"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    pts = [r for r in results if r["benchmark"] != "overall" and r["pass@1"] is not None and r["mean_tokens"] is not None]
    models = list(dict.fromkeys(r["model"] for r in pts))
    benches = list(dict.fromkeys(r["benchmark"] for r in pts))
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    markers_cycle = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
    markers = {b: markers_cycle[i % len(markers_cycle)] for i, b in enumerate(benches)}
    fig = Figure(figsize=(8, 6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for b in benches:
        seq = [r for m in models for r in pts if r["model"] == m and r["benchmark"] == b]
        if len(seq) > 1:
            ax.plot([r["mean_tokens"] for r in seq], [100 * r["pass@1"] for r in seq], ls="--", lw=0.8, c="0.6", zorder=1)
    for r in pts:
        x, y = r["mean_tokens"], 100 * r["pass@1"]
        ax.scatter([x], [y], c=colors[r["model"]], marker=markers[r["benchmark"]], s=60, zorder=2)
        ax.annotate(f"{r['model']} / {r['benchmark']}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.margins(0.12)
    ax.set_xlabel("mean completion tokens")
    ax.set_ylabel("pass@1 (%, averaged over samples)")
    ax.set_title("accuracy vs tokens (up-left = better)")
    ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], ls="", marker="o", c=colors[m], label=m) for m in models]
    handles += [Line2D([], [], ls="", marker=markers[b], c="0.3", label=b) for b in benches]
    ax.legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def write_outputs(out: Path, results: list[dict[str, Any]], models: Sequence[Any], settings: Any, plot: bool = True) -> dict[str, Path]:
    out = Path(out)
    paths = {"results": out / RESULTS_FILE, "table": out / TABLE_FILE, "samples": out / SAMPLES_FILE}
    paths["results"].write_text(json.dumps(results, indent=1))
    paths["table"].write_text(markdown_table(results, settings.n) + "\n")
    if plot and len(models) > 1:
        paths["plot"] = plot_accuracy_vs_tokens(results, out / PLOT_FILE)
    return paths


def progress_bar(total: int, initial: int = 0, desc: str = "", enabled: bool = True) -> Any:
    """A tqdm bar counting problems (its rate reads problems/s)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="problem", dynamic_ncols=True, disable=not enabled,
                file=sys.stderr)


def flat_metrics(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``eval/<model>/<benchmark>/<metric>`` -> value for every numeric metric."""
    flat: dict[str, float] = {}
    for r in results:
        prefix = f"eval/{r['model']}/{r['benchmark']}"
        for k, v in r.items():
            if isinstance(v, bool) or k in ("seed",):
                continue
            if isinstance(v, (int, float)):
                flat[f"{prefix}/{k}"] = v
        for k, v in r["pass@k"].items():
            flat[f"{prefix}/pass@{k}"] = v
    return flat


def log_wandb(out: Path, results: list[dict[str, Any]], settings: Any, models: Sequence[Any], benchmarks: Sequence[Any],
              options: Any, paths: dict[str, Path]) -> None:
    """Scalars, a results table and the plot to W&B (offline when no API key, see rl/tracking.py)."""
    from rl.tracking import Tracker

    name = options.run_name or ("eval-" + "-vs-".join(m.name for m in models))[:120]
    config = {"settings": settings.fingerprint(), "models": [vars(m) for m in models],
              "benchmarks": [b.name for b in benchmarks], "engine": options.engine}
    tracker = Tracker(str(out), ["wandb"], total_steps=0, config=config, run_name=name, project="parsimony-eval")
    try:
        tracker.log(0, flat_metrics(results))
        import wandb

        if wandb.run is not None:
            cols = ["model", "benchmark", "num_problems", "n", "pass@1", "maj@n", "mean_tokens", "median_tokens",
                    "mean_tokens_correct", "mean_tokens_incorrect", "truncated_frac", "tokens_per_second"]
            table = wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in results])
            payload: dict[str, Any] = {"eval/results": table}
            if "plot" in paths:
                payload["eval/accuracy_vs_tokens"] = wandb.Image(str(paths["plot"]))
            wandb.run.log(payload)
    finally:
        tracker.close()
