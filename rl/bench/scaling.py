"""How step time and peak memory grow, for both trainers, as G, the prompts per step and the
completion length double (3 points each, the other two held at the base point).

    python scripts/bench_scaling.py --out DIR [--base-g 4] [--base-prompts 4] [--base-length 32]

Every point is one :func:`rl.bench.grpo_step.bench_size` call (the same fairness rules: forced equal
lengths, the two trainers alternated in their own subprocesses). The slope of an axis is the
least-squares slope of log2(cost) on log2(value): 1 = linear, 0 = flat, above 1 = super-linear.
Peak memory is the resident set of the run's processes, so it holds a fixed part (torch, the
model, the optimizer) that does not grow; its slope is the exponent of the increments between
doublings, where that fixed part cancels. Writes ``DIR/scaling.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

AXES = {"g": "num_generations", "prompts": "prompts_per_step", "length": "max_completion_length"}


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log2(y) on log2(x) (NaN when fewer than two positive points)."""
    pts = [(math.log2(x), math.log2(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else float("nan")


def growth_slope(xs: list[float], ys: list[float]) -> float:
    """The exponent of what grows, with a fixed part cancelled: for doubling ``xs`` and
    ``y = c + b x^k``, each increment is 2^k times the one before, so k = mean log2(increment ratio).
    NaN when an increment is not positive (noise larger than the growth)."""
    inc = [b - a for a, b in zip(ys, ys[1:])]
    if len(inc) < 2 or any(d <= 0 for d in inc):
        return float("nan")
    steps = [math.log2(b / a) / math.log2(x2 / x1) for a, b, x1, x2 in zip(inc, inc[1:], xs[1:], xs[2:])]
    return sum(steps) / len(steps)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/bench_scaling")
    p.add_argument("--base-g", type=int, default=4)
    p.add_argument("--base-prompts", type=int, default=4)
    p.add_argument("--base-length", type=int, default=32)
    p.add_argument("--points", type=int, default=3, help="values per axis: base, 2x base, 4x base, ...")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--size", default="tiny")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--frameworks", default="ours,trl")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from rl.bench import grpo_step as bench_grpo
    from rl.experiments.tiny_model import make_tiny_model

    a = parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model = out / f"model-{a.size}"
    if not (model / "config.json").exists():
        make_tiny_model(model, size=a.size, seed=0)
    frameworks = [f for f in a.frameworks.split(",") if f]
    base = {"g": a.base_g, "prompts": a.base_prompts, "length": a.base_length}
    cache: dict[tuple, dict[str, Any]] = {}
    axes: dict[str, dict[str, Any]] = {}
    for axis in AXES:
        values = [base[axis] * 2**i for i in range(a.points)]
        rows = []
        for v in values:
            point = {**base, axis: v}
            key = (point["g"], point["prompts"], point["length"])
            if key not in cache:
                args = bench_grpo.parse_args([
                    "--num-generations", str(point["g"]), "--prompts-per-step", str(point["prompts"]),
                    "--max-completion-length", str(point["length"]), "--steps", str(a.steps),
                    "--rounds", str(a.rounds), "--threads", str(a.threads), "--frameworks", a.frameworks])
                print(f"[bench_scaling] G {point['g']}, prompts {point['prompts']}, length {point['length']}", flush=True)
                cache[key] = bench_grpo.bench_size(args, model, out, frameworks)
            rows.append({"value": v, **{fw: {"s_per_step": cache[key][fw]["median_s_per_step"],
                                             "peak_rss_mb": cache[key][fw]["peak_rss_mb"]} for fw in frameworks}})
        axes[axis] = {"field": AXES[axis], "points": rows, "slopes": {
            fw: {"time": slope(values, [r[fw]["s_per_step"] for r in rows]),
                 "memory_growth": growth_slope(values, [r[fw]["peak_rss_mb"] for r in rows])} for fw in frameworks}}
    report = {"axes": axes, "base": base, "size": a.size, "machine": bench_grpo.machine(), "args": vars(a)}
    (out / "scaling.json").write_text(json.dumps(report, indent=1))
    print(table(axes, frameworks))
    print(f"\nscaling: {out / 'scaling.json'}")
    return 0


def table(axes: dict[str, dict[str, Any]], frameworks: list[str]) -> str:
    head = " | ".join(f"{fw} s/step | {fw} peak MB" for fw in frameworks)
    lines = [f"| axis | value | {head} |", "|---|---|" + "---|---|" * len(frameworks)]
    for axis, res in axes.items():
        for r in res["points"]:
            cells = " | ".join(f"{r[fw]['s_per_step']:.3f} | {r[fw]['peak_rss_mb']:.0f}" for fw in frameworks)
            lines.append(f"| {res['field']} | {r['value']} | {cells} |")
        cells = " | ".join(f"slope {res['slopes'][fw]['time']:.2f} | growth slope {res['slopes'][fw]['memory_growth']:.2f}"
                           for fw in frameworks)
        lines.append(f"| {res['field']} | log-log | {cells} |")
    return "\n".join(lines)
