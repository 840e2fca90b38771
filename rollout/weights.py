"""The policy's weights in checkpoint format, for pushing into an inference engine.

Engines load weights by their Hugging Face checkpoint names (``model.layers.0.mlp.up_proj.weight``).
A PEFT model stores its base weights under other names and keeps the adapters apart: the
export adds each LoRA delta to a copy of its base weight, so the engine generates from exactly
the policy being trained while the model's own (frozen) base weights are never touched.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch


def unwrap(model: Any) -> Any:
    """The module inside DDP / accelerate wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return model


def is_peft_model(model: Any) -> bool:
    return hasattr(unwrap(model), "peft_config")


def checkpoint_name(peft_name: str) -> str | None:
    """``base_model.model.model.layers.0.q_proj.base_layer.weight`` -> ``model.layers.0.q_proj.weight``;
    adapter tensors (``lora_A`` ...) map to None."""
    name = peft_name
    if name.startswith("base_model.model."):
        name = name[len("base_model.model.") :]
    if ".lora_" in name or ".original_module." in name:  # adapters; the frozen copy of a modules_to_save layer
        return None
    for wrapper in (".base_layer.", ".modules_to_save.default."):
        name = name.replace(wrapper, ".")
    return name


def _lora_deltas(model: Any) -> dict[str, torch.Tensor]:
    """``{state-dict key of a base weight: its active LoRA delta}`` for unmerged LoRA layers."""
    deltas: dict[str, torch.Tensor] = {}
    for module_name, module in model.named_modules():
        get_delta = getattr(module, "get_delta_weight", None)
        if get_delta is None or not hasattr(module, "base_layer") or getattr(module, "merged", False):
            continue
        adapters = [a for a in getattr(module, "active_adapters", []) if a in getattr(module, "lora_A", {}) or a in getattr(module, "lora_embedding_A", {})]
        if adapters:
            deltas[f"{module_name}.base_layer.weight"] = sum(get_delta(a) for a in adapters)
    return deltas


@contextmanager
def policy_weights(model: Any) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Yield ``[(checkpoint_name, tensor)]`` of the current policy.

    For a PEFT model the LoRA deltas are added to copies of the base weights: the model itself
    is never merged and unmerged, which would leave round-off in the frozen base weights after
    every sync. Other tensors are detached views of the live parameters: consume them inside
    the ``with``. A model sharded with FSDP2 yields an iterator instead of a list: each tensor is
    gathered in full when it is reached (every process must consume it, see :func:`drain_weights`),
    a LoRA layer's base weight together with its adapter factors.
    """
    model = unwrap(model)
    with torch.no_grad():
        if is_sharded_model(model):  # FSDP2: gathered tensor by tensor as they are consumed
            yield _sharded_peft_weights(model) if is_peft_model(model) else _full_tensors(model.state_dict())
            return
        if not is_peft_model(model):
            yield [(n, t.detach()) for n, t in model.state_dict().items()]
            return
        deltas = _lora_deltas(model)
        out = []
        for n, t in model.state_dict().items():
            name = checkpoint_name(n)
            if name is None:
                continue
            t = t.detach()
            if n in deltas:
                t = t + deltas[n].to(t.dtype)
            out.append((name, t))
        yield out


def is_sharded_model(model: Any) -> bool:
    """Any parameter is a DTensor (FSDP2): reading the full weights takes every process."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        return False
    return any(isinstance(p, DTensor) for p in unwrap(model).parameters())


def _full_tensors(state: dict[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, full tensor)`` one at a time: a sharded tensor is all-gathered when it is reached and
    dropped when the consumer moves on, so the full model is never held on top of the shards (every
    process must consume the iterator to its end, in the same order)."""
    from torch.distributed.tensor import DTensor

    for name, t in state.items():
        yield name, (t.full_tensor() if isinstance(t, DTensor) else t).detach()


def _lora_factors(model: Any) -> dict[str, list[tuple[str, str, float, bool]]]:
    """``{base weight key: [(lora_A key, lora_B key, scaling, fan_in_fan_out)]}`` of the active adapters of
    every unmerged LoRA linear layer (the keys of ``model.state_dict()``)."""
    out: dict[str, list[tuple[str, str, float, bool]]] = {}
    for module_name, module in model.named_modules():
        if not hasattr(module, "base_layer") or getattr(module, "merged", False):
            continue
        if any(a in getattr(module, "lora_embedding_A", {}) for a in getattr(module, "active_adapters", [])):
            raise NotImplementedError(f"{module_name}: pushing a sharded LoRA embedding adapter is not supported")
        for a in getattr(module, "active_adapters", []):
            if a in getattr(module, "lora_A", {}):
                out.setdefault(f"{module_name}.base_layer.weight", []).append(
                    (f"{module_name}.lora_A.{a}.weight", f"{module_name}.lora_B.{a}.weight", float(module.scaling[a]),
                     bool(getattr(module, "fan_in_fan_out", False))))
    return out


def _sharded_peft_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """A LoRA policy sharded with FSDP2, in checkpoint names: each base weight gathered with its
    adapters' factors, the delta ``B @ A * scaling`` added to the full copy (the shards are never
    touched), one layer at a time (every process consumes it to the end, in the same order)."""
    from torch.distributed.tensor import DTensor

    def full(t: torch.Tensor) -> torch.Tensor:
        return (t.full_tensor() if isinstance(t, DTensor) else t).detach()

    state = model.state_dict()
    factors = _lora_factors(model)
    for n, t in state.items():
        name = checkpoint_name(n)
        if name is None:
            continue
        w = full(t)
        for ka, kb, scale, fan_in_fan_out in factors.get(n, []):
            delta = (full(state[kb]).float() @ full(state[ka]).float()) * scale  # [out, r] @ [r, in]
            w = w + (delta.T if fan_in_fan_out else delta).to(w.dtype)
        yield name, w


def drain_weights(model: Any) -> None:
    """A process that sends nothing still takes part in the gathers of a sharded model's weights."""
    if is_sharded_model(model):
        with policy_weights(model) as weights:
            for _ in weights:
                pass


def save_weights_file(model: Any, path: str | os.PathLike) -> int:
    """Write the policy's weights (adapters merged) as one safetensors file; returns its bytes.

    A tensor that shares storage with an earlier one (a tied ``lm_head``) is written as a copy:
    safetensors refuses shared storage, and vLLM's in-place reload expects every name.
    """
    from safetensors.torch import save_file

    seen: set[tuple[int, int]] = set()
    tensors = {}
    with policy_weights(model) as weights:
        for name, t in weights:
            key = (t.untyped_storage().data_ptr(), t.storage_offset())
            t = t.detach().to("cpu").contiguous()
            tensors[name] = t.clone() if key in seen else t
            seen.add(key)
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)  # the server never sees a half-written file
    return Path(path).stat().st_size
