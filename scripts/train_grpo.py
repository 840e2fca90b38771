"""GRPO training: ``parsimony train --config recipes/grpo/tiny.yaml [--key value ...]``.

Also ``accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml scripts/train_grpo.py ...``.
"""

from __future__ import annotations

import json


def main(argv=None) -> int:
    from rl.config import GRPOConfig, load_config
    from rl.grpo_trainer import GRPOTrainer
    from rl.training_eval import attach_eval

    cfg = load_config(GRPOConfig, argv)
    trainer = GRPOTrainer(cfg.model, args=cfg)
    attach_eval(trainer, cfg)
    summary = trainer.train()
    if trainer.is_main:
        print(json.dumps({k: v for k, v in summary.items() if k != "last_metrics"}))
    return 0


if __name__ == "__main__":
    from rl.cli import run_cli

    run_cli(main)
