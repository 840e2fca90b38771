"""``parsimony compare-schedules``: a thin wrapper over :mod:`rl.experiments.compare_schedules` (the code lives in the package)."""

from rl.experiments.compare_schedules import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
