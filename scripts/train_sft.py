"""Supervised fine-tuning: ``parsimony sft --config recipes/sft/tiny.yaml [--key value ...]``."""

from __future__ import annotations

import json


def main(argv=None) -> int:
    from rl.config import SFTConfig, load_config
    from rl.sft_trainer import SFTTrainer
    from rl.training_eval import attach_eval

    cfg = load_config(SFTConfig, argv)
    trainer = SFTTrainer(cfg.model, args=cfg)
    attach_eval(trainer, cfg)
    summary = trainer.train()
    if trainer.is_main:
        print(json.dumps({k: v for k, v in summary.items() if k != "last_metrics"}))
    return 0


if __name__ == "__main__":
    from rl.cli import run_cli

    run_cli(main)
