"""Config-free helpers for building engines (the code that reads a ``GRPOConfig`` is in
``rl/engines.py``; ``rollout/`` never imports ``rl``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rollout.weights import save_weights_file, unwrap


def engine_model_dir(model: Any, tokenizer: Any, export_dir: str | os.PathLike) -> str:
    """A directory (or hub id) vLLM can start from: the model's own source when it has one,
    otherwise an export of its config, tokenizer and current weights.

    The engine is started from it once; the trainer's live weights are synced right after it is
    built and again after a checkpoint is loaded, so a resumed run or a PEFT policy generates
    from the right weights either way.
    """
    model = unwrap(model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    source = str(getattr(base.config, "_name_or_path", "") or "")
    if source and Path(source, "config.json").is_file():
        has_tokenizer = any(Path(source, f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
        if has_tokenizer:
            return source
    out = Path(export_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_weights_file(model, out / "model.safetensors")
    base.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)
