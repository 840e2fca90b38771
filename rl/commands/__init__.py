"""The code behind each ``parsimony <command>``.

Each module has ``main(argv=None) -> int``. The package holds them (not ``scripts/``) so that a
regular wheel install has every subcommand; ``scripts/<name>.py`` are thin wrappers, so
``accelerate launch scripts/train_grpo.py ...`` still works from a checkout.
"""
