"""GRPO training: ``parsimony train --config recipes/grpo/tiny.yaml [--key value ...]``.

Also ``accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml scripts/train_grpo.py ...``.
"""

from __future__ import annotations


def main(argv=None) -> int:
    from rl.config import GRPOConfig
    from rl.grpo_trainer import GRPOTrainer
    from rl.training_run import train_from_config

    return train_from_config(GRPOConfig, GRPOTrainer, argv)
