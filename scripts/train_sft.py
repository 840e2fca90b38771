"""Supervised fine-tuning: ``parsimony sft --config recipes/sft/tiny.yaml [--key value ...]``.

A thin wrapper over :mod:`rl.commands.train_sft` (the code lives in the package, so a wheel install has it),
kept so that ``accelerate launch scripts/train_sft.py ...`` works from a checkout.
"""

from rl.commands.train_sft import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
