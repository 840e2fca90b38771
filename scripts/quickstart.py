"""The main job on the embedded default, end to end on CPU in a few minutes:

A thin wrapper over :mod:`rl.experiments.quickstart` (the code lives in the package, so a wheel install has it),
kept so that ``accelerate launch scripts/quickstart.py ...`` works from a checkout.
"""

from rl.experiments.quickstart import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
