"""Supervised fine-tuning: ``parsimony sft --config recipes/sft/tiny.yaml [--key value ...]``."""

from __future__ import annotations


def main(argv=None) -> int:
    from rl.config import SFTConfig
    from rl.sft_trainer import SFTTrainer
    from rl.training_run import train_from_config

    return train_from_config(SFTConfig, SFTTrainer, argv)
