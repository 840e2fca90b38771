"""``parsimony import-model``: a thin wrapper over :mod:`rl.commands.import_model`."""

from rl.commands.import_model import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
