#!/usr/bin/env python
"""Throughput of the math grader on a realistic GRPO-like mix.

MATH-500 ground truths (``../shared/data/benchmarks/math/test.parquet``, synthetic ones if
absent), each with ``--group`` verbose 1-2 KB completions: correct verbatim, correct in
another notation, wrong (another number / another problem's answer), answer-phrase
without a box, and ``--patho`` (5%) pathological ones (1 MB texts, unbalanced LaTeX, power
towers, huge factorials, garbage LaTeX) plus ``--hang`` sympy-hanging ones (each costs a
full timeout). Graded with ``MathGrader`` in trainer-sized batches; then a sequential
in-process baseline (``grade_one`` = extraction + ``verify_answer``, no pool; SIGALRM
guard so hanging items stop at the same timeout).

    python scripts/bench_grader.py [--workers 2] [--timeout 1.0] [--batch 512]
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rewards.math import MathGrader, grade_one  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "benchmarks" / "math" / "test.parquet"

FILLER = [
    "Let me start by restating the problem in my own words.",
    "We know that $a + b = {n}$ and we want to find the value of the expression.",
    "Substituting $x = {n}$ into the equation gives $x^2 - {m}x + {n} = 0$.",
    "Hmm, wait, let me double-check that step, since the sign might be off.",
    "By the Pythagorean theorem, $c^2 = a^2 + b^2 = {n}^2 + {m}^2$.",
    "So the sum is $\\frac{{{n}}}{{{m}}} + \\frac{{1}}{{2}}$, which simplifies nicely.",
    "Now consider the case where $n$ is even; then $n = 2k$ for some integer $k$.",
    "Multiplying both sides by {m}, we obtain {n} on the right-hand side.",
    "Therefore the area of the triangle is $\\frac{{1}}{{2}} \\cdot {n} \\cdot {m}$.",
    "This matches the earlier estimate, so I am fairly confident in the computation.",
]


def verbose(rng: random.Random, answer_tail: str) -> str:
    parts = ["<think>"]
    target = rng.randint(1000, 2000)
    while sum(len(p) for p in parts) < target:
        parts.append(rng.choice(FILLER).format(n=rng.randint(2, 99), m=rng.randint(2, 99)))
    parts.append("</think>")
    parts.append(answer_tail)
    return "\n".join(parts)


def load_ground_truths() -> tuple[list[str], str]:
    if DATA.exists():
        import pandas as pd

        df = pd.read_parquet(DATA, columns=["reward_model"])
        return [rm["ground_truth"] for rm in df["reward_model"]], str(DATA)
    rng = random.Random(0)
    gts = []
    for i in range(500):
        k = i % 5
        gts.append(
            [str(rng.randint(0, 999)), f"\\frac{{{rng.randint(1, 9)}}}{{{rng.randint(10, 20)}}}",
             f"{rng.randint(2, 9)}\\sqrt{{{rng.choice([2, 3, 5])}}}", f"({rng.randint(0, 9)}, {rng.randint(0, 9)})",
             f"x^2 + {rng.randint(1, 9)}x"][k]
        )
    return gts, "synthetic (MATH-500 not found)"


def other_notation(gt: str) -> str:
    alt = gt.replace("\\frac", "\\dfrac").replace(",", ", ")
    if alt == gt:
        alt = f"x = {gt}" if gt.lstrip("-").isdigit() else " " + gt + " "
    return alt


def wrong_answer(rng: random.Random, gt: str, gts: list[str]) -> str:
    """Mostly a near miss of the same shape (a digit changed), sometimes another
    problem's answer."""
    digits = [i for i, ch in enumerate(gt) if ch.isdigit()]
    if digits and rng.random() < 0.75:
        i = rng.choice(digits)
        return gt[:i] + rng.choice([d for d in "0123456789" if d != gt[i]]) + gt[i + 1 :]
    return rng.choice(gts)


PATHOLOGICAL = [
    lambda rng: ("Let me think. " * 80_000)[:1_000_000] + " so \\boxed{5",  # 1 MB
    lambda rng: "\\boxed{\\frac{1}{2}" + "}" * 7 + "{" * 40,  # unbalanced
    lambda rng: f"\\boxed{{{rng.randint(2, 9)}^{{{rng.randint(2, 9)}^{{{rng.randint(5, 9)}^{{9}}}}}}}}",  # tower
    lambda rng: "\\boxed{(10^{9})!}",  # huge factorial
    lambda rng: "\\boxed{\\frac{\\sqrt{}}{\\left(}} \\begin{matrix} & \\\\",  # garbage
    lambda rng: "\\boxed{" + "x+" * 3000 + "1}",  # very long answer
]
HANGING = lambda rng: f"\\boxed{{(x+1)^{{{rng.randint(1500, 2500)}}}-(x-1)^{{{rng.randint(1500, 2500)}}}}}"  # noqa: E731


def build(args) -> tuple[list[str], list[str], str]:
    rng = random.Random(args.seed)
    gts, source = load_ground_truths()
    comps, golds = [], []
    for _ in range(args.repeat):
        for gt in gts:
            for _ in range(args.group):
                u = rng.random()
                if u < args.hang:
                    comps.append(HANGING(rng))
                elif u < args.hang + args.patho:
                    comps.append(rng.choice(PATHOLOGICAL)(rng))
                elif u < 0.45:
                    comps.append(verbose(rng, f"So the final answer is $\\boxed{{{gt}}}$."))
                elif u < 0.55:
                    comps.append(verbose(rng, f"So the final answer is $\\boxed{{{other_notation(gt)}}}$."))
                elif u < 0.60:
                    comps.append(verbose(rng, f"The answer is ${wrong_answer(rng, gt, gts)}$."))
                else:
                    comps.append(verbose(rng, f"Thus we get $\\boxed{{{wrong_answer(rng, gt, gts)}}}$."))
                golds.append(gt)
    return comps, golds, source


class _Alarm(BaseException):
    pass


def _raise_alarm(signum, frame):
    raise _Alarm()


def baseline(comps: list[str], golds: list[str], timeout: float) -> tuple[float, collections.Counter]:
    signal.signal(signal.SIGALRM, _raise_alarm)
    counts: collections.Counter = collections.Counter()
    t = time.perf_counter()
    for c, g in zip(comps, golds):
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                counts[grade_one(c, g)[2]] += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Alarm:
            counts["timeout"] += 1
    return time.perf_counter() - t, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=512, help="completions per grade() call")
    ap.add_argument("--group", type=int, default=8, help="completions per problem")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the ground truths")
    ap.add_argument("--patho", type=float, default=0.05, help="fraction of pathological completions")
    ap.add_argument("--hang", type=float, default=0.0, help="fraction of sympy-hanging completions")
    ap.add_argument("--baseline-items", type=int, default=1000, help="items for the in-process baseline (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    comps, golds, source = build(args)
    kb = sum(min(len(c), 10_000) for c in comps) / len(comps) / 1024
    print(f"data: {source}")
    print(f"{len(comps)} completions (mean {kb:.1f} KB, 1 MB ones counted as 10 KB), batch {args.batch}, "
          f"{args.workers} workers, timeout {args.timeout}s, pathological {args.patho:.1%}, hanging {args.hang:.2%}")

    with MathGrader(num_workers=args.workers, timeout=args.timeout) as grader:
        t = time.perf_counter()
        grader.start()
        startup = time.perf_counter() - t
        counts: collections.Counter = collections.Counter()
        cpu0 = time.process_time()
        t = time.perf_counter()
        for i in range(0, len(comps), args.batch):
            for r in grader.grade(comps[i : i + args.batch], golds[i : i + args.batch]):
                counts[r.status] += 1
        elapsed = time.perf_counter() - t
        parent_cpu = time.process_time() - cpu0
        stats = dict(grader.stats)
    rate = len(comps) / elapsed
    print(f"pool start-up: {startup:.2f}s (once)")
    print(f"pool:     {rate:8.1f} completions/s  ({len(comps)} in {elapsed:.2f}s)")
    print(f"          max time an item held a worker: {stats['max_item_seconds']:.3f}s; "
          f"workers spawned {int(stats['spawned'])}, killed {int(stats['killed'])}, died {int(stats['died'])}")
    print("          statuses: " + ", ".join(f"{k}={counts[k]}" for k in ("correct", "wrong", "no_answer", "timeout", "error")))
    print(f"          parent (caller) CPU time: {parent_cpu:.2f}s ({1e6 * parent_cpu / len(comps):.0f} us per completion)")

    if args.baseline_items:
        n = min(args.baseline_items, len(comps))
        b_elapsed, b_counts = baseline(comps[:n], golds[:n], args.timeout)
        b_rate = n / b_elapsed
        print(f"baseline: {b_rate:8.1f} completions/s  (sequential in-process grade_one/verify_answer on the first {n})")
        print("          statuses: " + ", ".join(f"{k}={b_counts[k]}" for k in ("correct", "wrong", "no_answer", "timeout", "error")))
        print(f"ratio pool/baseline: {rate / b_rate:.2f}x")


if __name__ == "__main__":
    main()
