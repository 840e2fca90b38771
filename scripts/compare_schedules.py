"""``parsimony compare-schedules``: a thin wrapper over :mod:`rl.commands.compare_schedules` (the code lives in the package)."""

from rl.commands.compare_schedules import main

if __name__ == "__main__":
    from rl.cli import run_cli

    run_cli(main)
