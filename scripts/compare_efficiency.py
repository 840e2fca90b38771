"""Reasoning-efficiency comparison on the embedded overthinking task:

A thin wrapper over :mod:`rl.experiments.compare` (the code lives in the package, so a wheel install has it),
kept so that ``accelerate launch scripts/compare_efficiency.py ...`` works from a checkout.
"""

from rl.experiments.compare import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
