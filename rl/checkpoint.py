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

**Loading runs no code.** Every ``.pt`` file is read with ``torch.load(weights_only=True)``: tensors,
numbers, strings, lists, tuples and dicts, plus exactly the numpy types of numpy's RNG state
(:data:`SAFE_NUMPY_GLOBALS`). A file that holds anything else is refused, naming it
(:func:`read_torch`); model weights are safetensors. Before any model loads,
:mod:`rl.checkpoint_check` checks that a checkpoint is complete and readable.
"""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl.errors import CheckpointError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# numpy's RNG state (np.random.get_state(): a uint32 array) is the one non-torch object a checkpoint holds
SAFE_NUMPY_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def read_torch(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load`` that cannot run code: ``weights_only=True`` with :data:`SAFE_NUMPY_GLOBALS`
    allowed. A file holding other Python objects, or one that is truncated or corrupt, is a
    :class:`CheckpointError` naming it."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):
            return torch.load(path, weights_only=True, map_location="cpu", mmap=mmap)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            unsafe = _unsafe_globals(path)
            what = f" ({', '.join(unsafe[:3])})" if unsafe else ""
            raise CheckpointError(f"{path}: refused: it holds Python objects{what} that could run code when loaded; "
                                  "parsimony checkpoints hold only tensors and plain data") from None
        raise CheckpointError(f"{path}: unreadable ({_first_line(e)}): the file is truncated or corrupt") from None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (RuntimeError, EOFError, MemoryError, OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {_first_line(e)}): the file is truncated "
                              "or corrupt") from None


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint: the names cannot be listed without unpickling
        return []


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


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
    shared = read_trainer_state(ckpt)
    rank_file = ckpt / f"rng_state_{rank}.pt"
    if not rank_file.is_file():
        raise CheckpointError(f"{rank_file}: missing (the checkpoint is incomplete, or was written by fewer processes "
                              "than are resuming it)")
    local = read_torch(rank_file)
    if not isinstance(local, dict) or "rng" not in local:
        raise CheckpointError(f"{rank_file}: not a parsimony RNG state (no 'rng' entry)")
    return shared, local


def read_trainer_state(ckpt: Path) -> dict[str, Any]:
    """``trainer_state.json`` as a dict with an integer ``step``; a :class:`CheckpointError` otherwise."""
    path = Path(ckpt) / "trainer_state.json"
    try:
        with open(path) as f:
            shared = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (the checkpoint is incomplete)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({_first_line(e)}): the file is truncated or corrupt") from None
    if not isinstance(shared, dict) or isinstance(shared.get("step"), bool) or not isinstance(shared.get("step"), int):
        raise CheckpointError(f"{path}: has no integer 'step'")
    return shared


def load_model_weights(model: Any, ckpt: Path) -> None:
    """Load weights saved by ``save_pretrained`` into an already-built model (full or PEFT)."""
    def load_file(path: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file as read

        try:
            return read(path)
        except Exception as e:  # safetensors raises its own error types for a corrupt file
            raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {_first_line(e)})") from None

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
        raise CheckpointError(f"{ckpt}: no model weights (model*.safetensors)")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # tied embeddings are saved once; anything else missing is a real mismatch
    missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {ckpt} does not match the model: missing={missing[:5]} unexpected={unexpected[:5]}")
