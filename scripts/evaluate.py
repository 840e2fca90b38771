"""Evaluate checkpoints on math benchmarks: ``parsimony eval``.

A thin wrapper over :mod:`rl.commands.evaluate` (the code lives in the package, so a wheel install has it),
kept so that ``accelerate launch scripts/evaluate.py ...`` works from a checkout.
"""

from rl.commands.evaluate import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
