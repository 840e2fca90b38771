"""Learning parity with TRL: the same GRPO run in TRL's ``GRPOTrainer`` and in parsimony's.

A thin wrapper over :mod:`rl.experiments.compare_trl` (the code lives in the package, so a wheel install has it),
kept so that ``python scripts/compare_trl.py ...`` works from a checkout.
"""

from rl.experiments.compare_trl import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
