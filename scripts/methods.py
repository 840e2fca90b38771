"""List the registered methods and pieces: ``parsimony methods [--json]``.

A thin wrapper over :mod:`rl.commands.methods` (the code lives in the package, so a wheel install has it).
"""

from rl.commands.methods import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
