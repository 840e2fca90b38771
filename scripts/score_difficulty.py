"""Difficulty scoring and the DeReason split: ``parsimony score-difficulty --dataset ... --scorer ... --out DIR``.

A thin wrapper over :mod:`rl.commands.score_difficulty` (the code lives in the package, so a wheel install has it).
"""

from rl.commands.score_difficulty import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
