"""GRPO training: ``parsimony train --config recipes/grpo/tiny.yaml [--key value ...]``.

Also ``accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml scripts/train_grpo.py ...``.
``--role NAME``: a flag a method registers (``rl.role_flags.register_role_flag``), e.g. M-GRPO's
``planner | executor`` for decoupled training (docs/mgrpo.md): the role's process may train with a
trainer of its own.
"""

from __future__ import annotations


def main(argv=None) -> int:
    import sys

    from rl.config import GRPOConfig
    from rl.grpo_trainer import GRPOTrainer
    from rl.role_flags import pop_role_flag
    from rl.training_run import train_from_config

    args, role_trainer = pop_role_flag(sys.argv[1:] if argv is None else argv)
    return train_from_config(GRPOConfig, role_trainer or GRPOTrainer, args, help_flags=[("--role", ROLE_HELP)])


ROLE_HELP = ("A method's process role, e.g. M-GRPO's decoupled training: --role planner | executor (docs/mgrpo.md); "
             "`parsimony methods` lists the methods.")
