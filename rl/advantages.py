"""Advantage estimators: a registry of ``fn(batch, cfg) -> {channel: [N, T]}``.

    N = rollouts in the batch, T = padded completion length

An estimator reads the batch (usually ``batch.total_reward`` [N] and ``batch.group_index`` [N])
and returns one or more named per-token advantage *channels*. Every channel is ``[N, T]`` and
already multiplied by ``batch.completion_mask``, so padding and tool-observation tokens carry 0.
Single-channel methods return ``{"main": A}``. A loss composition (``rl/losses.py``) says which
loss consumes which channel; the trainer never names a method.

``cfg`` is any object with attributes (the trainer passes its ``GRPOConfig``). Estimators read:

- ``scale_rewards``: ``"group"`` (default) | ``"batch"`` | ``"none"``;
- ``advantage_eps``: added to the std before dividing, default ``1e-6`` (verl's value; TRL uses
  1e-4). A group whose rewards all agree has std 0 and gets advantage exactly 0 either way.

Conventions (documented because papers and libraries differ):

- std is the unbiased (Bessel-corrected) std, as ``torch.std`` / TRL / verl;
- a group with a single rollout gets mean 0 and std 1 (verl's convention), so ``grpo`` and
  ``dr_grpo`` give it ``A = r`` (divided by ``1 + eps`` for ``grpo``); ``rloo`` gives it 0, since
  there is no other rollout to form a baseline from;
- ``group_index`` holds arbitrary integer ids: groups need not be sorted, contiguous, numbered
  from 0 or of equal size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from rl.batch import RolloutBatch
from rl.pieces import RegisteredPiece, registering

AdvantageFn = Callable[[RolloutBatch, Any], "dict[str, Tensor]"]
# an estimator's optional step on the scored groups before they are collated (M-GRPO's alignment):
# (groups, cfg, step) -> (groups, metrics)
PrepareGroupsFn = Callable[[list, Any, int], "tuple[list, dict[str, float]]"]
# an estimator's optional check of what it needs from the outside world (M-GRPO's store), run when a
# run starts, before the model loads: (cfg) -> None, raising an error whose message is one line
PreflightFn = Callable[[Any], None]
# an estimator's optional step when a run's training loop ends: (cfg, summary) -> None; the summary is the
# trainer's (global_step, interrupted, budget_spent, ...), e.g. M-GRPO's planner marks in its store where it stopped
RunEndedFn = Callable[[Any, dict], None]

DEFAULT_ADVANTAGE_EPS = 1e-6
SCALE_MODES = ("group", "batch", "none")


class AdvantageEstimator(Protocol):
    """What the trainer calls on the configured estimator (``advantage_estimator``)."""

    name: str

    def __call__(self, batch: RolloutBatch, cfg: Any) -> "dict[str, Tensor]":
        """The finished batch -> advantage channels, each ``[N, T]`` and already masked."""
        ...

    def prepare_groups(self, groups: list, cfg: Any, step: int) -> "tuple[list, dict[str, float]]":
        """The step's scored groups -> the groups to collate, plus metrics (identity by default)."""
        ...

    def preflight(self, cfg: Any) -> None:
        """Check what the estimator needs outside the process, before the model loads (nothing by default)."""
        ...

    def run_ended(self, cfg: Any, summary: dict) -> None:
        """The training loop has ended with ``summary`` (nothing by default)."""
        ...


@dataclass(frozen=True)
class RegisteredEstimator(RegisteredPiece):
    """An estimator function with its declared settings and optional group preparation."""

    prepare: PrepareGroupsFn | None = None
    check: PreflightFn | None = None
    on_end: RunEndedFn | None = None

    def prepare_groups(self, groups: list, cfg: Any, step: int) -> "tuple[list, dict[str, float]]":
        if self.prepare is None:
            return groups, {}
        return self.prepare(groups, cfg, step)

    def preflight(self, cfg: Any) -> None:
        if self.check is not None:
            self.check(cfg)

    def run_ended(self, cfg: Any, summary: dict) -> None:
        if self.on_end is not None:
            self.on_end(cfg, summary)


ADVANTAGES: dict[str, RegisteredEstimator] = {}


def register_advantage(
    name: str,
    *,
    settings: Any = None,
    validate: "Callable[[Any], None] | None" = None,
    prepare_groups: PrepareGroupsFn | None = None,
    preflight: PreflightFn | None = None,
    run_ended: RunEndedFn | None = None,
) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: register ``fn(batch, cfg) -> dict[str, Tensor [N, T]]`` under ``name``.

    ``settings``: the ``cfg.method_kwargs`` keys the estimator reads: a settings class
    (``rewards.settings.MethodSettings``, validated by its ``from_kwargs``) or a mapping key ->
    default; ``validate(method_kwargs)`` raises ``ValueError`` naming a bad key. Both are checked when
    the config is built (``rl/presets.py``). ``prepare_groups(groups, cfg, step) -> (groups,
    metrics)``: a step the trainer runs on the scored groups before it collates them (e.g. M-GRPO's
    trajectory alignment). ``preflight(cfg)``: a check of what the estimator needs outside the process
    (e.g. M-GRPO's store), run when a run starts, before the model loads. ``run_ended(cfg, summary)``: run
    when the training loop ends, with the trainer's summary (e.g. M-GRPO's planner marks where a budget of
    generated tokens stopped it, for its executor's process). The registry keeps a
    :class:`RegisteredEstimator`; ``fn`` is returned unchanged."""
    return registering(ADVANTAGES, "advantage estimator", name, lambda fn: RegisteredEstimator(
        name, fn, settings if settings is not None else {}, validate, prepare_groups, preflight, run_ended))


def get_advantage(name: str) -> RegisteredEstimator:
    try:
        return ADVANTAGES[name]
    except KeyError:
        raise ValueError(
            f"unknown advantage estimator {name!r}; registered: {sorted(ADVANTAGES)}"
        ) from None


# --- helpers -------------------------------------------------------------------------------------


def group_mean_std(values: Tensor, group_index: Tensor) -> tuple[Tensor, Tensor]:
    """Per-group mean and unbiased std, broadcast back to rows.

    values [N] float, group_index [N] int (any ids, any order) -> (mean [N], std [N]).
    A singleton group gets mean 0 and std 1 (verl's convention).
    """
    if values.dim() != 1 or group_index.shape != values.shape:
        raise ValueError(
            f"values and group_index must both be [N], got {tuple(values.shape)} and {tuple(group_index.shape)}"
        )
    if values.numel() == 0:
        return values.clone(), values.clone()
    _, inv = torch.unique(group_index, return_inverse=True)  # inv [N] in 0..K-1
    k = int(inv.max()) + 1
    count = torch.zeros(k, dtype=values.dtype, device=values.device).index_add_(0, inv, torch.ones_like(values))  # [K]
    total = torch.zeros(k, dtype=values.dtype, device=values.device).index_add_(0, inv, values)  # [K]
    mean_k = total / count  # [K]
    dev2 = (values - mean_k[inv]) ** 2  # [N]
    ss = torch.zeros(k, dtype=values.dtype, device=values.device).index_add_(0, inv, dev2)  # [K]
    single = count < 2  # [K]
    std_k = torch.sqrt(ss / (count - 1).clamp(min=1))  # [K]
    mean_k = torch.where(single, torch.zeros_like(mean_k), mean_k)
    std_k = torch.where(single, torch.ones_like(std_k), std_k)
    return mean_k[inv], std_k[inv]


def group_sizes(group_index: Tensor) -> Tensor:
    """group_index [N] -> size of each row's group [N] (long)."""
    _, inv, counts = torch.unique(group_index, return_inverse=True, return_counts=True)
    return counts[inv]


def broadcast_to_tokens(adv: Tensor, mask: Tensor) -> Tensor:
    """adv [N] -> [N, T]: every token of a row gets the row's advantage, times ``mask`` [N, T].

    The result has the mask's dtype when that is floating point, else float32.
    """
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    return adv.to(dtype)[:, None] * mask.to(dtype)


def outcome_rewards(batch: RolloutBatch) -> Tensor:
    """batch.total_reward as a detached float64 [N] (float64 for exact group statistics)."""
    r = batch.total_reward
    if r is None:
        raise ValueError("batch.total_reward is None: compute rewards before advantages")
    if r.dim() != 1 or r.shape[0] != batch.num_rollouts:
        raise ValueError(f"batch.total_reward must be [N={batch.num_rollouts}], got {tuple(r.shape)}")
    return r.detach().to(torch.float64)


def advantage_eps(cfg: Any) -> float:
    eps = getattr(cfg, "advantage_eps", None)
    return DEFAULT_ADVANTAGE_EPS if eps is None else float(eps)


# --- estimators ----------------------------------------------------------------------------------


@register_advantage("grpo")
def grpo(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """GRPO: ``(r - mean_g) / (std + eps)``; std per group, over the batch, or none (scale_rewards)."""
    r = outcome_rewards(batch)  # [N]
    mode = getattr(cfg, "scale_rewards", "group") or "group"
    if mode is True:  # TRL's old boolean form
        mode = "group"
    elif mode is False:
        mode = "none"
    mean, std = group_mean_std(r, batch.group_index)  # [N], [N]
    centered = r - mean  # [N]
    if mode == "group":
        adv = centered / (std + advantage_eps(cfg))
    elif mode == "batch":
        # TRL's scale_rewards="batch": mean per group, std over the whole step's batch (every process)
        pool = batch.global_total_reward.detach().double() if batch.global_total_reward is not None else r  # [M]
        batch_std = pool.std() if pool.numel() > 1 else torch.ones((), dtype=r.dtype, device=r.device)
        adv = centered / (batch_std + advantage_eps(cfg))
    elif mode == "none":
        adv = centered
    else:
        raise ValueError(f"scale_rewards must be one of {list(SCALE_MODES)}, got {mode!r}")
    return {"main": broadcast_to_tokens(adv, batch.completion_mask)}


@register_advantage("dr_grpo")
def dr_grpo(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """Dr.GRPO: ``r - mean_g`` (never divided by a std, whatever scale_rewards says)."""
    r = outcome_rewards(batch)
    mean, _ = group_mean_std(r, batch.group_index)
    return {"main": broadcast_to_tokens(r - mean, batch.completion_mask)}


@register_advantage("rloo")
def rloo(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """RLOO: ``r_i - mean_{j != i} r_j = G / (G - 1) * (r_i - mean_g)``; 0 for a singleton group."""
    r = outcome_rewards(batch)
    mean, _ = group_mean_std(r, batch.group_index)
    g = group_sizes(batch.group_index).to(r.dtype)  # [N]
    scale = torch.where(g > 1, g / (g - 1).clamp(min=1), torch.zeros_like(g))
    adv = scale * (r - mean)
    return {"main": broadcast_to_tokens(adv, batch.completion_mask)}

