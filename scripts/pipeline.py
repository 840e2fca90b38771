"""``parsimony pipeline``: a thin wrapper over :mod:`rl.methods.dereason_pipeline` (the code lives in the package)."""

from rl.methods.dereason_pipeline import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
