"""Sharded training (FSDP2, and DeepSpeed ZeRO-3 on GPUs) through accelerate.

The sharding mode comes from the accelerate config the run was launched with
(``accelerate launch --config_file recipes/accelerate/fsdp2.yaml ...`` sets ``ACCELERATE_USE_FSDP``
and ``FSDP_*``). accelerate prepares the model itself (``fully_shard`` per decoder layer, its
``MixedPrecisionPolicy`` from ``mixed_precision`` / ``bf16``).

On CPU, accelerate turns any multi-process launch into ``MULTI_CPU`` (DDP over gloo) and never
picks FSDP. :func:`make_accelerator` promotes that state to FSDP2 when an FSDP2 config asked for
it, so CPU runs go through accelerate's own FSDP2 code (``fsdp2_prepare_model``, its DTensor-aware
clipping, ``no_sync``) exactly as a GPU run does; ``torch.distributed.fsdp.fully_shard`` works
over gloo.

What sharding changes in the loops, all of it here:
- :func:`gathered` unshards every FSDP unit once and keeps it unsharded until the block ends, so
  generation (HF ``generate``), evaluation and anything else that runs a variable number of
  forwards on each process issues no collective inside the block: processes with different
  numbers of generation rounds (dynamic sampling) or decoding steps cannot hang.
- :func:`empty_micro_batch_backward`: a process with an empty micro-batch (a dynamic-sampling
  shortfall) still runs one forward and backward, so the all-gathers and reduce-scatters line up.
- :func:`build_reference_model`: the reference model (beta > 0) is a fresh model of the same
  config, loaded with the policy's gathered start weights and sharded by the same plugin; never a
  ``deepcopy`` of a sharded module.
- checkpoints: :mod:`rl.sharded_checkpoint` (``torch.distributed.checkpoint``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import torch


def fsdp2_requested() -> bool:
    """The launch asked for FSDP2 (an accelerate config with ``distributed_type: FSDP``, version 2)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and os.environ.get("FSDP_VERSION", "1") == "2"


def deepspeed_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def make_accelerator(mixed_precision: str) -> Any:
    """``Accelerator`` for this launch: DDP / MULTI_CPU as before, FSDP2 when the config asks for it
    (on CPU too, over gloo). ZeRO-3 needs an accelerator and is refused on CPU with the reason."""
    from accelerate import Accelerator, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    cpu = not torch.cuda.is_available()
    if cpu and deepspeed_requested():
        raise RuntimeError(
            "DeepSpeed (zero2/zero3 accelerate configs) needs a GPU; on CPU use recipes/accelerate/fsdp2_cpu_2proc.yaml "
            "(FSDP2 over gloo) or cpu_2proc.yaml (DDP)"
        )
    if cpu and fsdp2_requested():
        # accelerate would build an FSDP1 plugin from FSDP_* here and then ignore it on CPU: build the
        # FSDP2 plugin ourselves and install it after the (MULTI_CPU) state exists
        accelerator = Accelerator(mixed_precision=mixed_precision, cpu=True)
        state = accelerator.state
        if state.distributed_type == DistributedType.MULTI_CPU:
            plugin = FullyShardedDataParallelPlugin(fsdp_version=2)
            if mixed_precision != "no":
                plugin.set_mixed_precision(mixed_precision)
            state.fsdp_plugin = plugin
            # every later AcceleratorState() copies PartialState's fields over its own: set both
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            state.distributed_type = DistributedType.FSDP
        return accelerator
    return Accelerator(mixed_precision=mixed_precision, cpu=cpu)


def is_fsdp2(accelerator: Any) -> bool:
    return bool(getattr(accelerator, "is_fsdp2", False))


def is_zero3(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return False
    plugin = accelerator.state.deepspeed_plugin
    return plugin is not None and int(plugin.zero_stage) == 3


def is_sharded(accelerator: Any) -> bool:
    """Parameters are sharded over processes (FSDP2 or ZeRO-3): no process holds the full model."""
    return is_fsdp2(accelerator) or is_zero3(accelerator)


def sharding_name(accelerator: Any) -> str:
    return "fsdp2" if is_fsdp2(accelerator) else "zero3" if is_zero3(accelerator) else "none"


# --- gathered parameters ----------------------------------------------------------------------------


def fsdp_units(model: Any) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def _reshards_after_forward(unit: Any) -> bool:
    group = unit._get_fsdp_state()._fsdp_param_group
    return group is not None and group.post_forward_mesh_info is not None


@contextmanager
def gathered(model: Any, accelerator: Any) -> Iterator[Any]:
    """Inside the block every parameter of ``model`` is unsharded (full) on every process, and
    forwards issue no collective. Every process must enter and leave it together (the entry
    all-gathers); what runs inside may differ between processes. Outside sharding: a no-op."""
    if is_fsdp2(accelerator):
        units = fsdp_units(model)
        state = getattr(model, "_get_fsdp_state", None)
        if callable(state):  # a PEFT model generates through its inner module: the root must be set up first
            state()._lazy_init()
        before = [_reshards_after_forward(u) for u in units]
        for u in units:
            u.set_reshard_after_forward(False, recurse=False)
        for u in units:
            u.unshard()
        # transformers' generate() turns on synced_gpus for FSDP-managed modules (an all-reduce per decoding
        # step); with the weights gathered no step needs the other processes, so it is switched off here
        managed = [m for m in model.modules() if getattr(m, "_is_fsdp_managed_module", False)]
        for m in managed:
            m._is_fsdp_managed_module = False
        try:
            yield model
        finally:
            for m in managed:
                m._is_fsdp_managed_module = True
            for u, flag in zip(units, before):
                u.reshard()
                u.set_reshard_after_forward(flag, recurse=False)
    elif is_zero3(accelerator):  # untested here (GPU only): DeepSpeed's own gather
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
            yield model
    else:
        yield model


def maybe_gathered(model: Any, accelerator: Any, needed: bool = True):
    return gathered(model, accelerator) if needed and is_sharded(accelerator) else nullcontext(model)


# --- micro-batches and clipping ------------------------------------------------------------------------


def empty_micro_batch_backward(model: Any, accelerator: Any, pad_token_id: int) -> None:
    """A zero loss for a process whose micro-batch is empty. DDP: a zero over the parameters keeps
    its all-reduce aligned. Sharded: one real forward of a single pad token, so the all-gathers of
    the forward and the reduce-scatters of the backward happen as on the other processes."""
    if is_sharded(accelerator):
        ids = torch.full((1, 1), int(pad_token_id), dtype=torch.long, device=accelerator.device)
        with accelerator.autocast():
            logits = model(input_ids=ids, use_cache=False).logits
        accelerator.backward(logits.float().sum() * 0.0)
        return
    dummy = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
    accelerator.backward(dummy)


@torch.no_grad()
def empty_forward(models: list[Any], accelerator: Any, pad_token_id: int) -> None:
    """Sharded runs: one forward of a single pad token through each of ``models`` (nothing to score on
    this process, but the others' forwards all-gather). Without sharding: nothing."""
    if not is_sharded(accelerator):
        return
    ids = torch.full((1, 1), int(pad_token_id), dtype=torch.long, device=accelerator.device)
    for m in models:
        m(input_ids=ids, use_cache=False)


def _full(x: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return x.full_tensor() if isinstance(x, DTensor) else x


def clip_grad_norm(accelerator: Any, params: list[torch.Tensor], max_norm: float) -> float:
    """Pre-clip global gradient norm, clipping when ``max_norm > 0``; DTensor (FSDP2) grads included."""
    if not is_fsdp2(accelerator):
        if max_norm > 0:  # DeepSpeed clips inside its step and may report no norm yet
            norm = accelerator.clip_grad_norm_(params, max_norm)
            return float(norm) if norm is not None else float("nan")
        return float(torch.sqrt(sum((p.grad.detach().float() ** 2).sum() for p in params if p.grad is not None)))
    grads = [p.grad for p in params if p.grad is not None]
    norm = _full(torch.nn.utils.get_total_norm(grads, 2.0))
    if max_norm > 0:
        from torch.distributed.tensor import DTensor

        with_mesh = [p for p in params if p.grad is not None]
        total = norm
        if with_mesh and isinstance(with_mesh[0].grad, DTensor):
            total = DTensor.from_local(norm, with_mesh[0].grad.device_mesh)
        torch.nn.utils.clip_grads_with_norm_(with_mesh, max_norm, total)
    return float(norm)


# --- full state --------------------------------------------------------------------------------------


def full_state_dict(model: Any, accelerator: Any, rank0_only: bool = True) -> dict[str, torch.Tensor]:
    """The consolidated (unsharded) state dict on CPU: on the main process only by default (the others
    get ``{}``); every process must call it."""
    if is_fsdp2(accelerator):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=rank0_only)
        sd = get_model_state_dict(model, options=opts)
        return {k: v.detach().cpu() for k, v in sd.items()} if (sd and (accelerator.is_main_process or not rank0_only)) else {}
    if is_zero3(accelerator):  # untested here (GPU only)
        sd = accelerator.get_state_dict(model)
        return sd if accelerator.is_main_process or not rank0_only else {}
    return {k: v.detach().cpu().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}


def plain_model_from_state(config: Any, state: dict[str, torch.Tensor]) -> Any:
    """A plain ``transformers`` model of ``config`` holding ``state`` (no second copy: the tensors are
    assigned, the model is built on the meta device first)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=next(iter(state.values())).dtype)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
        missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"state does not match the model: missing={missing[:5]} unexpected={unexpected[:5]}")
    # non-persistent buffers (rotary ``inv_freq``) stay on meta: the model is for ``save_pretrained`` only
    return model


def build_reference_model(model: Any, accelerator: Any) -> Any:
    """A frozen reference model with ``model``'s current weights, sharded like the policy (FSDP2)."""
    from transformers import AutoModelForCausalLM

    from accelerate.utils import fsdp2_prepare_model

    config = accelerator.unwrap_model(model).config
    state = full_state_dict(model, accelerator, rank0_only=False)  # every process builds the unsharded copy once
    with torch.random.fork_rng(devices=[]):  # its random init must not move the run's RNG (sampling)
        ref = AutoModelForCausalLM.from_config(config, dtype=next(iter(state.values())).dtype)
    missing, unexpected = ref.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"reference model: missing={missing[:5]} unexpected={unexpected[:5]}")
    del state
    ref.eval().requires_grad_(False)
    if is_fsdp2(accelerator):
        ref = fsdp2_prepare_model(accelerator, ref)
    elif is_zero3(accelerator):  # untested here (GPU only): an inference engine sharded by ZeRO-3, as TRL does
        ref = _zero3_inference_engine(ref, accelerator)
    return ref.eval()


def _zero3_inference_engine(model: Any, accelerator: Any) -> Any:
    import copy

    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    config["zero_optimization"] = {**config.get("zero_optimization", {}), "stage": 3}
    engine, *_ = deepspeed.initialize(model=model, config=config)
    return engine.module
