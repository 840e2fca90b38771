"""Build the embedded tiny Qwen2 model + tokenizer: ``parsimony make-tiny-model --out DIR``.

A thin wrapper over :mod:`rl.commands.make_tiny_model` (the code lives in the package, so a wheel install has it),
kept so that ``accelerate launch scripts/make_tiny_model.py ...`` works from a checkout.
"""

from rl.commands.make_tiny_model import main

if __name__ == "__main__":
    from rl.commands.cli import run_cli

    run_cli(main)
