"""Step time and peak memory of both trainers as G, prompts per step and completion length double.

A thin wrapper over :mod:`rl.bench.scaling`:

    python scripts/bench_scaling.py --out DIR [--base-g 4] [--base-prompts 4] [--base-length 32]

Writes ``DIR/scaling.json`` and prints a table with the log-log slopes.
"""

from rl.bench.scaling import main

if __name__ == "__main__":
    raise SystemExit(main())
