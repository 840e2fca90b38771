"""GRPO step time on identical work, parsimony vs TRL (``use_vllm=False``), alternated A, B, A, B.

A thin wrapper over :mod:`rl.bench.grpo_step` (see its docstring for the settings and the fairness rules):

    python scripts/bench_grpo_step.py --out DIR [--sizes tiny,small] [--steps 4] [--rounds 2]

Writes ``DIR/bench.json`` = ``{"ratio", "ours", "trl", "settings", "sizes"}`` and prints a table.
"""

from rl.bench.grpo_step import main

if __name__ == "__main__":
    raise SystemExit(main())
