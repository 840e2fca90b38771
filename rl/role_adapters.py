"""One LoRA adapter per role on one base model (``use_peft: true`` + ``role_adapters: [planner, executor]``).

Each role is a policy of its own over one frozen base: its adapter, its optimizer state (one AdamW
parameter group per role: AdamW's update is per parameter, so this equals one optimizer per role)
and its own gradient clipping (each group's norm is clipped alone, so one role's large gradients do
not shrink the other's step). The lr schedule is the same for every role.

- **Rows are routed by ``role``** (``Trajectory.role`` / ``batch.role``): role ``r`` trains adapter
  ``role_adapters[r]``. The update splits every micro-batch by role and runs each part's forward and
  backward with that role's adapter active (the loss denominators stay the whole batch's, so the
  split changes no gradient), and only that adapter receives gradients.
- **Generation per role**: the loop's engine generates with role 0's adapter; environments that run
  sub-episodes for another role (the M-GRPO planner's executor tool) ask the engine for that role
  (``engine.for_role(r)``) and generate with its adapter. HF engine only (vLLM would need
  multi-LoRA serving).
- **Checkpoints** hold every adapter (peft's ``save_pretrained`` writes one folder per adapter); the
  final export writes one merged model per role, ``final/<role>/``, plus the adapters in
  ``final/adapter/``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch

from rollout.types import EngineBase, as_rollout_engine


def add_role_adapters(model: Any, names: Sequence[str], r: int, alpha: int, dropout: float,
                      target_modules: Sequence[str]) -> Any:
    """``model`` with one LoRA adapter per name (the first one active), every adapter trainable."""
    from peft import LoraConfig, get_peft_model

    modules = {n.split(".")[-1] for n, _ in model.named_modules()}
    targets = [t for t in target_modules if t in modules]
    if not targets:
        raise ValueError(f"lora_target_modules: none of {list(target_modules)} exist in the model")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config, adapter_name=names[0])
    for name in names[1:]:
        peft_model.add_adapter(name, config)
    peft_model.set_adapter(names[0])
    for group in role_param_groups(peft_model, names):
        for p in group["params"]:
            p.requires_grad_(True)
    return peft_model


def role_param_groups(model: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """One optimizer parameter group per role: that adapter's LoRA parameters."""
    groups = []
    for name in names:
        params = [p for n, p in model.named_parameters() if "lora_" in n and f".{name}." in n]
        if not params:
            raise ValueError(f"role adapter {name!r} has no parameters in the model")
        groups.append({"params": params, "role_adapter": name})
    return groups


@contextmanager
def active_adapter(model: Any, name: str) -> Iterator[None]:
    """Run the block with adapter ``name`` active (peft's ``set_adapter``), then the previous one again."""
    previous = model.active_adapter
    if previous == name:
        yield
        return
    model.set_adapter(name)
    try:
        yield
    finally:
        model.set_adapter(previous)


def clip_role_groups(optimizer: torch.optim.Optimizer, max_norm: float) -> dict[str, float]:
    """Clip each role's group to ``max_norm`` alone (0 = no clipping); returns each group's pre-clip norm."""
    norms = {}
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            norms[group["role_adapter"]] = 0.0
            continue
        if max_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        norms[group["role_adapter"]] = float(norm)
    return norms


def split_by_role(roles: torch.Tensor, idx: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """The rows ``idx`` of a micro-batch as (role, rows) parts, in role order. roles: [N]."""
    r = roles[idx]
    return [(int(role), idx[r == role]) for role in torch.unique(r).tolist()]


class _RoleEngine(EngineBase):
    """The engine, generating with one role's adapter."""

    def __init__(self, engines: "RoleEngines", name: str) -> None:
        self._engines, self.name = engines, name
        self.pad_token_id = engines.engine.pad_token_id

    def generate(self, prompt_ids, n, sampling):
        with active_adapter(self._engines.model, self.name):
            return self._engines.engine.generate(prompt_ids, n, sampling)

    def sync_weights(self, model: Any) -> None:
        self._engines.sync_weights(model)


class RoleEngines(EngineBase):
    """The loop's engine (role 0's adapter) and, through ``for_role(r)``, the same engine with role
    ``r``'s adapter."""

    def __init__(self, engine: Any, model: Any, names: Sequence[str]) -> None:
        self.engine, self.model, self.names = as_rollout_engine(engine), model, list(names)  # the trainer's engine
        self.pad_token_id = self.engine.pad_token_id
        self._roles = [_RoleEngine(self, name) for name in self.names]

    def for_role(self, role: int) -> _RoleEngine:
        if not 0 <= role < len(self.names):
            raise ValueError(f"role {role} has no adapter; role_adapters: {self.names}")
        return self._roles[role]

    def generate(self, prompt_ids, n, sampling):
        return self._roles[0].generate(prompt_ids, n, sampling)

    def sync_weights(self, model: Any) -> None:
        self.engine.sync_weights(model)

    def sleep(self) -> None:
        self.engine.sleep()

    def close(self) -> None:
        self.engine.close()

    def generates_from(self, model: Any) -> bool:
        return self.model is model


def export_role_models(model: Any, names: Sequence[str], tokenizer: Any, out) -> None:
    """``out/adapter/<role>/``: the adapters; ``out/<role>/``: the base with that role's adapter merged."""
    import copy

    model.save_pretrained(out / "adapter", safe_serialization=True)
    for name in names:
        merged = copy.deepcopy(model)
        merged.set_adapter(name)
        merged = merged.merge_and_unload(adapter_names=[name])
        merged.save_pretrained(out / name, safe_serialization=True)
        tokenizer.save_pretrained(out / name)


def role_parts(model: Any, names: Sequence[str] | None, roles: torch.Tensor, idx: torch.Tensor) -> list[tuple[Any, torch.Tensor]]:
    """A micro-batch's rows as (context, rows) parts: one part per role with that role's adapter
    active when ``names`` (role adapters) are set; else the rows as one part, in no context."""
    from contextlib import nullcontext

    if not names:
        return [(nullcontext(), idx)]
    parts = []
    for role, rows in split_by_role(roles, idx):
        if role >= len(names):
            raise ValueError(f"a row has role {role}, but role_adapters names {len(names)} roles: {list(names)}")
        parts.append((active_adapter(model, names[role]), rows))
    return parts
