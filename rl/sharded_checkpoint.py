"""Checkpoints of a sharded (FSDP2) run, through ``torch.distributed.checkpoint`` (DCP).

    output_dir/checkpoint-<step>/
        sharded/                 DCP: {"model": sharded model state, "optimizer": sharded AdamW state}
                                 (each process writes its own shards; ``.metadata`` describes the whole)
        config.json, tokenizer   the model's config (for the export) and the tokenizer
        scheduler.pt             LR schedule (the same on every process)
        trainer_state.json       step, config, shared trainer state, ``"sharding": "fsdp2"``
        rng_state_<rank>.pt      per process: RNG, sampler cursor, curriculum state (as unsharded runs)

No process ever holds the full model or optimizer state while saving or loading. Resuming needs
the same number of processes (the per-process sampler / curriculum state says so anyway); DCP
itself could reshard the model and optimizer. The same write-to-``.tmp``-then-rename rule as
:mod:`rl.checkpoint` holds, and ``resume_from_checkpoint: latest`` finds these checkpoints too.

The final export (:func:`save_consolidated`) gathers the full state dict onto the main process
(on CPU) and writes a plain ``save_pretrained`` directory that ``from_pretrained`` loads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from rl import checkpoint as ckpt_lib
from rl.sharding import full_state_dict, is_zero3, plain_model_from_state, sharding_name

SHARDED_DIR = "sharded"
ZERO3_DIR = "zero3"  # ZeRO-3: accelerate.save_state (DeepSpeed's checkpoint) instead of DCP


def _inner_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it


def _states(model: Any, optimizer: Any) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, _inner_optimizer(optimizer))
    return {"model": model_sd, "optimizer": optim_sd}


def is_sharded_checkpoint(path: Path) -> bool:
    return (Path(path) / SHARDED_DIR / ".metadata").is_file() or (Path(path) / ZERO3_DIR).is_dir()


def save_checkpoint(trainer: Any, shared: dict[str, Any], local: dict[str, Any]) -> Path:
    """Every process calls this: DCP writes each process's shards, the main process the rest."""
    import torch.distributed.checkpoint as dcp

    acc = trainer.accelerator
    root = Path(trainer.args.output_dir)
    step = trainer.global_step
    final, tmp = root / f"checkpoint-{step}", root / f"checkpoint-{step}.tmp"
    if acc.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    if is_zero3(acc):  # untested here (GPU only): DeepSpeed's own sharded checkpoint
        acc.save_state(str(tmp / ZERO3_DIR))
    else:
        dcp.save(_states(trainer.model, trainer.optimizer), checkpoint_id=str(tmp / SHARDED_DIR))
    if acc.is_main_process:
        acc.unwrap_model(trainer.model).config.save_pretrained(tmp)
        if trainer.tokenizer is not None:
            trainer.tokenizer.save_pretrained(tmp)
        torch.save(trainer.scheduler.state_dict(), tmp / "scheduler.pt")
        with open(tmp / "trainer_state.json", "w") as f:
            json.dump({"step": step, "sharding": sharding_name(acc), **shared}, f, indent=1, default=str)
    acc.wait_for_everyone()
    torch.save({"rng": ckpt_lib.rng_state(), "local": local}, tmp / f"rng_state_{acc.process_index}.pt")
    acc.wait_for_everyone()
    if acc.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        limit = trainer.args.save_total_limit
        if limit > 0:
            for old in ckpt_lib.list_checkpoints(root)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def load_checkpoint(trainer: Any, path: Path) -> None:
    """Load the sharded model and optimizer state (and the scheduler) of ``path`` in place."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    if is_zero3(trainer.accelerator):  # untested here (GPU only)
        trainer.accelerator.load_state(str(Path(path) / ZERO3_DIR))
        trainer.scheduler.load_state_dict(ckpt_lib.read_torch(Path(path) / "scheduler.pt"))
        return
    if not is_sharded_checkpoint(path):
        raise RuntimeError(
            f"resume_from_checkpoint: {path} is not a sharded checkpoint (no {SHARDED_DIR}/.metadata); it was written "
            "by an unsharded run: resume it with the same accelerate config it was written with"
        )
    states = _states(trainer.model, trainer.optimizer)
    dcp.load(states, checkpoint_id=str(Path(path) / SHARDED_DIR))
    set_state_dict(
        trainer.model, _inner_optimizer(trainer.optimizer),
        model_state_dict=states["model"], optim_state_dict=states["optimizer"],
    )
    trainer.scheduler.load_state_dict(ckpt_lib.read_torch(Path(path) / "scheduler.pt"))


def save_consolidated(model: Any, accelerator: Any, tokenizer: Any, out: Path) -> Path:
    """Every process calls this; the main process writes a ``save_pretrained`` dir of the full model."""
    from rl.modeling import is_peft_model

    inner = accelerator.unwrap_model(model)
    peft = is_peft_model(inner)
    state = full_state_dict(model, accelerator)  # {} except on the main process
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if peft:  # LoRA: the adapter under final/adapter, the merged model in final/ (as unsharded runs)
            plain = _merged_peft_model(inner, state, out / "adapter")
        else:
            plain = plain_model_from_state(inner.config, state)
        plain.generation_config = inner.generation_config
        plain.save_pretrained(out, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(out)
        del plain, state
    accelerator.wait_for_everyone()
    return out


def _merged_peft_model(inner: Any, state: dict[str, torch.Tensor], adapter_dir: Path) -> Any:
    """A PEFT model of ``inner``'s base config and adapter config holding ``state`` (the gathered PEFT
    state dict); its adapter is saved to ``adapter_dir``; returns the merged plain model."""
    import copy

    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    base_config = inner.get_base_model().config
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(base_config, dtype=next(iter(state.values())).dtype)
    peft_model = get_peft_model(base, copy.deepcopy(inner.peft_config["default"]))
    missing, unexpected = peft_model.load_state_dict(state, strict=False, assign=True)
    missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"LoRA export: missing={missing[:5]} unexpected={unexpected[:5]}")
    if getattr(base_config, "tie_word_embeddings", False):
        peft_model.get_base_model().tie_weights()
    peft_model.save_pretrained(adapter_dir, safe_serialization=True)
    return peft_model.merge_and_unload()
