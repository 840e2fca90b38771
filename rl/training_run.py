"""The training commands' shared body (``parsimony train``, ``parsimony sft``): load the
config from the command line, build the trainer, attach the evaluation, train, print the
summary. ``scripts/train_grpo.py`` and ``scripts/train_sft.py`` are thin ``main(argv)``
wrappers over :func:`train_from_config`."""

from __future__ import annotations

import json
from typing import Any, Sequence

from rl.config import load_config
from rl.eval.training import attach_eval


def train_from_config(config_cls: type, trainer_cls: Any, argv: Sequence[str] | None = None) -> int:
    """``load_config(config_cls, argv)`` -> ``trainer_cls(cfg.model, args=cfg)`` with the
    evaluation attached (:func:`rl.eval.training.attach_eval`) -> ``train()``. The main
    process prints the summary (without ``last_metrics``) as one JSON line. Returns the exit
    code (0)."""
    cfg = load_config(config_cls, argv)
    trainer = trainer_cls(cfg.model, args=cfg)
    attach_eval(trainer, cfg)
    summary = trainer.train()
    if trainer.is_main:
        print(json.dumps({k: v for k, v in summary.items() if k != "last_metrics"}))
    return 0
