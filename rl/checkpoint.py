"""Checkpoints that resume exactly.

    output_dir/checkpoint-<step>/
        model.safetensors, config.json, tokenizer files   (save_pretrained; adapters with PEFT)
        optimizer.pt, scheduler.pt
        trainer_state.json                                  step, config, state every process shares
        rng_state_<rank>.pt                                  per process: python / numpy / torch (/ cuda) RNG and
                                                             the trainer's local state (sampler cursor, curriculum)

``trainer_state`` is ``{"shared": ..., "local": ...}``: ``shared`` comes from the main process only, so
anything that differs between processes (a sampler cursor, an assembler's running counts and RNG
draws) belongs in ``local``, which every process writes to its own ``rng_state_<rank>.pt``.

A checkpoint is written to ``checkpoint-<step>.tmp`` and renamed when complete, so a
crash while saving never leaves a half checkpoint that ``latest`` would pick.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(spec: str | None, output_dir: str | Path) -> Path | None:
    """``None`` | ``'latest'`` | a path -> checkpoint dir (or None when 'latest' finds none)."""
    if not spec:
        return None
    if spec == "latest":
        ckpts = list_checkpoints(output_dir)
        return ckpts[-1] if ckpts else None
    path = Path(spec)
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(f"resume_from_checkpoint: {spec!r} is not a checkpoint dir (no trainer_state.json)")
    return path


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer_state: dict[str, Any],
    rank: int = 0,
    is_main_process: bool = True,
    save_total_limit: int = 0,
    barrier=lambda: None,
) -> Path:
    """Write ``checkpoint-<step>``; every process calls this (each saves its RNG state)."""
    root = Path(output_dir)
    final = root / f"checkpoint-{step}"
    tmp = root / f"checkpoint-{step}.tmp"
    if is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        with open(tmp / "trainer_state.json", "w") as f:
            json.dump({"step": step, **trainer_state.get("shared", {})}, f, indent=1, default=str)
    barrier()
    torch.save(
        {"rng": rng_state(), "local": trainer_state.get("local", {})},
        tmp / f"rng_state_{rank}.pt",
    )
    barrier()
    if is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        if save_total_limit > 0:
            for old in list_checkpoints(root)[:-save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_trainer_state(ckpt: Path, rank: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """(shared state from trainer_state.json, this rank's {'rng', 'local'})."""
    with open(ckpt / "trainer_state.json") as f:
        shared = json.load(f)
    rank_file = ckpt / f"rng_state_{rank}.pt"
    if not rank_file.is_file():
        raise FileNotFoundError(
            f"{rank_file} is missing: the checkpoint was written by fewer processes than are resuming it"
        )
    local = torch.load(rank_file, weights_only=False)
    return shared, local


def load_model_weights(model: Any, ckpt: Path) -> None:
    """Load weights saved by ``save_pretrained`` into an already-built model (full or PEFT)."""
    from safetensors.torch import load_file

    adapter = ckpt / "adapter_model.safetensors"
    named = sorted(ckpt.glob("*/adapter_model.safetensors"))  # several adapters: one folder each (role adapters)
    if adapter.is_file() or named:
        from peft import set_peft_model_state_dict

        if adapter.is_file():
            set_peft_model_state_dict(model, load_file(str(adapter)))
        for f in named:
            name = f.parent.name
            if name not in model.peft_config:
                raise RuntimeError(f"checkpoint {ckpt} holds adapter {name!r}, the model has {sorted(model.peft_config)}")
            set_peft_model_state_dict(model, load_file(str(f)), adapter_name=name)
        return
    files = sorted(ckpt.glob("model*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no model weights in {ckpt}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # tied embeddings are saved once; anything else missing is a real mismatch
    missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {ckpt} does not match the model: missing={missing[:5]} unexpected={unexpected[:5]}")
