"""M-GRPO's proof harness: single agent, frozen executor, M-GRPO shared and separate at the same budget.

A thin wrapper over :mod:`rl.experiments.compare_agents` (the code lives in the package, so a wheel install has it),
kept so that ``python scripts/compare_agents.py ...`` works from a checkout.
"""

from rl.experiments.compare_agents import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
