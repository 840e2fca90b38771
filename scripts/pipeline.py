"""``parsimony pipeline``: a thin wrapper over :mod:`rl.commands.pipeline` (the code lives in the package)."""

from rl.commands.pipeline import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
