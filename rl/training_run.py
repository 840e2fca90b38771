"""The training commands' shared body (``parsimony train``, ``parsimony sft``): load the
config from the command line, build the trainer, attach the evaluation, train, print the
summary. ``scripts/train_grpo.py`` and ``scripts/train_sft.py`` are thin ``main(argv)``
wrappers over :func:`train_from_config`.

``--dry_run`` (also ``--dry_run true|false``, ``--dry-run``): resolve the recipe, the overrides
and the method preset, validate them, print the resolved config as YAML and exit 0, without
loading any model or dataset (neither needs to exist)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
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


DRY_RUN_HELP = ("Resolve the recipe, the flags and the method preset, check them, print the resolved config as "
                "YAML and exit, without loading a model or dataset (also --dry_run true|false, --dry-run).")


def train_from_config(config_cls: type, trainer_cls: Any, argv: Sequence[str] | None = None,
                      help_flags: Sequence[tuple[str, str]] = ()) -> int:
    """``load_config(config_cls, argv)`` -> ``trainer_cls(cfg.model, args=cfg)`` with the
    evaluation attached (:func:`rl.eval.training.attach_eval`) -> ``train()``. The main
    process prints the summary (without ``last_metrics``) as one JSON line. Returns the exit
    code (0). With ``--dry_run``: prints the resolved config as YAML and returns 0.
    ``help_flags``: the command's own flags, listed by ``--help`` (``--dry_run`` always is)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    argv, dry_run = pop_dry_run(argv)
    cfg = load_config(config_cls, argv, help_flags=[("--dry_run", DRY_RUN_HELP), *help_flags])
    if dry_run:
        sys.stdout.write(resolved_yaml(cfg))
        sys.stdout.flush()
        return 0
    check_start_checkpoint(cfg, recipe_path(argv))
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


START_LINE = "# start checkpoint:"  # a recipe's header line: the one command that builds its `model`


def recipe_path(argv: Sequence[str]) -> str | None:
    """The ``--config`` path of a command line (``--config PATH`` or ``--config=PATH``), if any."""
    for i, tok in enumerate(argv):
        if tok == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if tok.startswith("--config="):
            return tok.partition("=")[2]
    return None


def start_command(recipe: str | Path) -> str | None:
    """The command a recipe's header names for building its start checkpoint (``# start checkpoint: CMD``)."""
    try:
        lines = Path(recipe).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        if not line.startswith("#"):
            break
        if line.lower().startswith(START_LINE):
            return line[len(START_LINE):].strip() or None
    return None


def check_start_checkpoint(cfg: Any, recipe: str | None) -> None:
    """A recipe's local start checkpoint that is not there yet: one line that names the command
    which builds it (from the recipe's header), and the command before that when that one's own
    recipe starts from a checkpoint that is missing too. Checked before any model or dataset loads."""
    model = str(getattr(cfg, "model", "") or "")
    if not recipe or not model or Path(model).expanduser().exists():
        return
    from rl.config_loading import read_recipe

    if read_recipe(recipe).get("model") != model:  # --model given: the user's own path
        return
    cmd = start_command(recipe)
    if cmd is None:
        return
    steps = [cmd]
    seen = {str(recipe)}
    while True:  # the command's own recipe may start from a checkpoint that is missing too
        inner = recipe_path(shlex.split(cmd))
        if inner is None or inner in seen or not Path(inner).is_file():
            break
        seen.add(inner)
        first = read_recipe(inner).get("model")
        cmd = start_command(inner) if first and not Path(str(first)).exists() else None
        if cmd is None:
            break
        steps.insert(0, cmd)
    cmds = ", then ".join(f"`{c}`" for c in steps)
    raise ConfigError(f"model: {model!r} does not exist yet: this recipe starts from the checkpoint that {cmds} "
                      f"build{'s' if len(steps) == 1 else ''}; run {'them' if len(steps) > 1 else 'it'} first "
                      "(or pass --model PATH)")


def close_process_group(accelerator: Any) -> None:
    """All processes finish together, then the process group is destroyed: a gloo group left to
    the interpreter's exit can abort one rank ("terminate called without an active exception")
    after training has already succeeded."""
    import torch.distributed as dist

    if accelerator.num_processes > 1 and dist.is_available() and dist.is_initialized():
        accelerator.wait_for_everyone()
        dist.destroy_process_group()
