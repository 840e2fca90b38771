"""Regenerate docs/leaderboard.md from `parsimony compare` outputs: ``parsimony leaderboard --from DIR ...``.

A thin wrapper over :mod:`rl.commands.leaderboard` (the code lives in the package, so a wheel install has it).
"""

from rl.commands.leaderboard import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
