"""The training commands' shared body (``parsimony train``, ``parsimony sft``): load the
config from the command line, build the trainer, attach the evaluation, train, print the
summary. ``scripts/train_grpo.py`` and ``scripts/train_sft.py`` are thin ``main(argv)``
wrappers over :func:`train_from_config`.

``--dry_run`` (also ``--dry_run true|false``, ``--dry-run``): resolve the recipe, the overrides
and the method preset, validate them, print the resolved config as YAML and exit 0, without
loading any model or dataset (neither needs to exist)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from rl.config import load_config
from rl.errors import ConfigError

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def pop_dry_run(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Take ``--dry_run`` (optionally followed by true/false, or ``--dry_run=<bool>``) out of ``argv``."""
    out: list[str] = []
    dry = False
    args = list(argv)
    i = 0
    while i < len(args):
        tok = args[i]
        key, eq, val = tok.partition("=")
        if key in ("--dry_run", "--dry-run"):
            if not eq and i + 1 < len(args) and args[i + 1].lower() in _TRUE + _FALSE:
                val, i = args[i + 1], i + 1
            elif not eq:
                val = "true"
            if val.lower() not in _TRUE + _FALSE:
                raise ConfigError(f"--dry_run: expects true or false, got {val!r}")
            dry = val.lower() in _TRUE
        else:
            out.append(tok)
        i += 1
    return out, dry


def resolved_yaml(cfg: Any) -> str:
    """The resolved config as YAML (field order of the dataclass), secrets masked (rl/redaction.py)."""
    import yaml

    from rl.redaction import redact

    return yaml.safe_dump(redact(cfg.to_dict()), sort_keys=False, default_flow_style=None, width=120)


def train_from_config(config_cls: type, trainer_cls: Any, argv: Sequence[str] | None = None) -> int:
    """``load_config(config_cls, argv)`` -> ``trainer_cls(cfg.model, args=cfg)`` with the
    evaluation attached (:func:`rl.eval.training.attach_eval`) -> ``train()``. The main
    process prints the summary (without ``last_metrics``) as one JSON line. Returns the exit
    code (0). With ``--dry_run``: prints the resolved config as YAML and returns 0."""
    import sys

    argv, dry_run = pop_dry_run(sys.argv[1:] if argv is None else argv)
    cfg = load_config(config_cls, argv)
    if dry_run:
        sys.stdout.write(resolved_yaml(cfg))
        sys.stdout.flush()
        return 0
    from rl.eval.training import attach_eval

    trainer = trainer_cls(cfg.model, args=cfg)
    attach_eval(trainer, cfg)
    try:
        summary = trainer.train()
    finally:
        trainer.close()  # engines that started threads or processes
    if trainer.is_main:
        print(json.dumps({k: v for k, v in summary.items() if k != "last_metrics"}))
    close_process_group(trainer.accelerator)
    return 0


def close_process_group(accelerator: Any) -> None:
    """All processes finish together, then the process group is destroyed: a gloo group left to
    the interpreter's exit can abort one rank ("terminate called without an active exception")
    after training has already succeeded."""
    import torch.distributed as dist

    if accelerator.num_processes > 1 and dist.is_available() and dist.is_initialized():
        accelerator.wait_for_everyone()
        dist.destroy_process_group()
