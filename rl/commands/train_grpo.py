"""GRPO training: ``parsimony train --config recipes/grpo/tiny.yaml [--key value ...]``.

Also ``accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml scripts/train_grpo.py ...``.
``--role planner|executor``: one role of decoupled M-GRPO (``rl/methods/mgrpo_two_process.py``, docs/mgrpo.md).
"""

from __future__ import annotations


def main(argv=None) -> int:
    import sys

    from rl.config import GRPOConfig
    from rl.grpo_trainer import GRPOTrainer
    from rl.training_run import train_from_config

    args = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--role" or a.startswith("--role=") for a in args):  # decoupled roles (rl/methods/mgrpo_two_process.py)
        from rl.methods.mgrpo_two_process import StoreExecutorTrainer, pop_role

        args, role = pop_role(args)
        return train_from_config(GRPOConfig, StoreExecutorTrainer if role == "executor" else GRPOTrainer, args)
    return train_from_config(GRPOConfig, GRPOTrainer, args)
