"""HDPO (arXiv 2604.08545, "Metis"): a conditional tool-efficiency advantage and a dual loss.

    N = rollouts in the batch, T = padded completion length, G = rollouts of one prompt

Two advantage channels (estimator ``hdpo``):

- ``acc``: GRPO over all rollouts of a prompt group, on ``batch.total_reward`` (the weighted reward
  sum; the preset makes it ``r_acc = 0.9 * accuracy + 0.1 * format``), exactly the ``grpo``
  estimator (``scale_rewards``, ``advantage_eps`` apply);
- ``tool``: GRPO of ``r_tool = 1 / (T_i + 1)``, ``T_i = meta["tool_calls"]`` (tool round-trips of
  the episode, 0 when absent), over the *qualifying set* ``Q_g`` of the group, its correct rollouts
  (``rewards[hdpo_correct_reward] >= hdpo_correct_threshold``): ``(r_tool - mean_Q) / (std_Q + 1e-6)``
  with the unbiased std over ``Q_g``. It is 0 outside ``Q_g`` and 0 for the whole group when
  ``|Q_g| < 2``. A correct rollout with 0 calls has ``r_tool = 1`` and qualifies (the public code
  does not require a call, although its docstring says "used tools"; we follow the code).

The estimator also sets ``batch.rollout_masks["has_tool_signal"]`` [N]: the rollouts whose tool advantage
is not 0 (Metis's normalisation, ``hdpo_tool_loss_rows: nonzero``, the default), or every rollout of a
``Q_g`` with ``|Q_g| >= 2`` (``hdpo_tool_loss_rows: qualifying``: zero-advantage rows, e.g. two correct
rollouts with the same call count, then dilute the tool loss).

Composition ``dual``::

    L = w_acc * Agg_all[loss(A_acc)] + w_tool * Agg_S[loss(A_tool)]

with ``S`` the tokens of the rollouts with a tool signal, so the tool loss is not diluted by the
share of qualifying rollouts. ``loss`` is ``loss_type`` (default the clipped surrogate), ``Agg`` is
``loss_agg_mode``; both terms use the same forward pass, log-probs and ratio. Defaults
``w_acc = 1.0``, ``w_tool = 0.15`` (the paper's ablation optimum; the public code's config
defaults ``w_tool`` to 0, which is silently plain GRPO: ours does not).

Settings (``method_kwargs``): :class:`HDPOAdvantageSettings` (``hdpo_correct_reward``,
``hdpo_correct_threshold``, ``hdpo_tool_eps``) and :class:`HDPOLossSettings` (``hdpo_w_acc``,
``hdpo_w_tool``); ``parsimony methods`` lists them with their defaults.

``method: hdpo`` sets ``reward_funcs: [accuracy, format]``, ``reward_weights: [0.9, 0.1]``,
``advantage_estimator: hdpo``, ``loss_composition: dual`` and ``environment: tools``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rewards.settings import MethodSettings, setting
from rewards.tools import tool_call_penalty  # importing it registers the "tool_call_penalty" reward (coupled baselines)
from rl.advantages import broadcast_to_tokens, grpo, register_advantage
from rl.batch import RolloutBatch
from rl.errors import ConfigError
from rl.losses import LossTerm, register_composition
from rl.presets import register_method

__all__ = ["DECSHDPOSettings", "HDPOAdvantageSettings", "HDPOLossSettings", "HDPO_PRESET", "conditional_tool_advantage",
           "correct_mask", "decs_hdpo", "dual", "hdpo", "tool_call_penalty", "tool_calls"]

TOOL_SIGNAL_MASK = "has_tool_signal"


@dataclass(frozen=True)
class HDPOAdvantageSettings(MethodSettings):
    """The ``hdpo`` estimator's settings: which rollouts are correct, and the tool channel's eps."""

    error = ConfigError

    correct_reward: str = setting("hdpo_correct_reward", "accuracy", "the reward that decides which rollouts are correct")
    correct_threshold: float = setting("hdpo_correct_threshold", 0.5, "a rollout is correct when that reward is >= this")
    tool_eps: float = setting("hdpo_tool_eps", 1e-6, "eps of the tool advantage's std", exclusive_minimum=0.0)
    tool_loss_rows: str = setting(
        "hdpo_tool_loss_rows", "nonzero",
        "the rollouts the tool loss is averaged over: 'nonzero' (Metis's code: rows whose tool advantage is not 0) "
        "or 'qualifying' (every correct rollout of a group with >= 2 correct, zero-advantage rows included)",
        choices=("nonzero", "qualifying"))


@dataclass(frozen=True)
class HDPOLossSettings(MethodSettings):
    """The ``dual`` composition's weights."""

    error = ConfigError

    w_acc: float = setting("hdpo_w_acc", 1.0, "weight of the accuracy loss", minimum=0.0)
    w_tool: float = setting("hdpo_w_tool", 0.15, "weight of the tool-efficiency loss (the paper's ablation optimum)",
                            minimum=0.0)

    def check(self) -> None:
        if self.w_acc == 0 and self.w_tool == 0:
            raise self.bad("hdpo_w_tool", "hdpo_w_acc and hdpo_w_tool are both 0: nothing would be trained")


def tool_calls(batch: RolloutBatch) -> Tensor:
    """``meta["tool_calls"]`` per rollout as float64 [N] (0 where absent)."""
    vals = [float(m.get("tool_calls", 0) or 0) for m in batch.meta] if batch.meta else [0.0] * batch.num_rollouts
    return torch.tensor(vals, dtype=torch.float64)


def correct_mask(batch: RolloutBatch, settings: HDPOAdvantageSettings) -> Tensor:
    """[N] bool: the rollouts whose correctness reward reaches the threshold (NaN = not correct)."""
    r = batch.rewards.get(settings.correct_reward)
    if r is None:
        raise ValueError(
            f"the hdpo estimator needs the reward {settings.correct_reward!r} in the batch (it decides which "
            f"rollouts are correct); the batch has {sorted(batch.rewards)}: add it to reward_funcs or set "
            "method_kwargs.hdpo_correct_reward"
        )
    if r.dim() != 1:
        raise ValueError(f"reward {settings.correct_reward!r} must be sequence-level [N], got {tuple(r.shape)}")
    r = r.detach().to(torch.float64)
    return torch.nan_to_num(r, nan=-math.inf) >= settings.correct_threshold


def conditional_tool_advantage(
    r_tool: Tensor, qualifying: Tensor, group_index: Tensor, eps: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """GRPO of ``r_tool`` [N] within each group's qualifying rows ``qualifying`` [N] bool.

    Returns (advantage [N], signal [N] bool): 0 outside the qualifying set and for groups with fewer
    than 2 qualifying rows; ``signal`` marks the qualifying rows of groups with at least 2."""
    adv = torch.zeros_like(r_tool, dtype=torch.float64)
    signal = torch.zeros_like(qualifying, dtype=torch.bool)
    for g in torch.unique(group_index).tolist():
        rows = (group_index == g) & qualifying
        k = int(rows.sum())
        if k < 2:
            continue
        vals = r_tool[rows].to(torch.float64)
        mean, std = vals.mean(), vals.std(unbiased=True)
        if float(vals.max() - vals.min()) == 0.0:
            a = torch.zeros_like(vals)  # all equal: exactly 0, no float noise
        else:
            a = (vals - mean) / (std + eps)
        adv[rows] = a
        signal |= rows
    return adv, signal


@register_advantage("hdpo", settings=HDPOAdvantageSettings)
def hdpo(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """HDPO: ``acc`` = GRPO over all rollouts; ``tool`` = GRPO of 1/(T+1) over the correct rollouts."""
    s = HDPOAdvantageSettings.from_args(cfg)
    acc = grpo(batch, cfg)["main"]
    T = tool_calls(batch)
    r_tool = 1.0 / (T + 1.0)
    q = correct_mask(batch, s)
    a_tool, signal = conditional_tool_advantage(r_tool, q, batch.group_index.cpu(), s.tool_eps)
    if s.tool_loss_rows == "nonzero":  # Metis: the tool loss is averaged over rows whose tool advantage is not 0
        signal = signal & (a_tool != 0)
    batch.rollout_masks[TOOL_SIGNAL_MASK] = signal
    return {"acc": acc, "tool": broadcast_to_tokens(a_tool, batch.completion_mask)}


@register_composition("dual", settings=HDPOLossSettings)
def dual(cfg: Any) -> list[LossTerm]:
    """``w_acc * loss(acc)`` over all rollouts + ``w_tool * loss(tool)`` over the rollouts with a tool signal."""
    s = HDPOLossSettings.from_args(cfg)
    loss = getattr(cfg, "loss_type", None) or "clipped"
    return [
        LossTerm("acc", loss=loss, weight=s.w_acc),
        LossTerm("tool", loss=loss, weight=s.w_tool, rollout_mask=TOOL_SIGNAL_MASK),
    ]


HDPO_PRESET = register_method(
    "hdpo",
    reward_funcs=["accuracy", "format"],
    advantage_estimator="hdpo",
    loss_composition="dual",
    sampler="plain",
    method_kwargs=HDPOLossSettings.defaults(),
    fields={"reward_weights": [0.9, 0.1], "environment": "tools"},
    description="HDPO (arXiv 2604.08545): accuracy advantage over all rollouts + tool-efficiency advantage "
    f"1/(T+1) over the correct rollouts only, two losses (w_tool {HDPOLossSettings.w_tool})",
)


# The paper's baseline: a coupled penalty r = r_acc - lambda * T under one GRPO normalisation. The two
# lambdas bracket the trade-off on a [0, 1] accuracy scale (not tuned): 0.02 barely moves a correct
# answer's reward per call, 0.3 makes two calls cost more than the format reward and half a wrong answer.
COUPLED_LAMBDAS = {"coupled_small": 0.02, "coupled_large": 0.3}
for _name, _lam in COUPLED_LAMBDAS.items():
    register_method(
        _name,
        reward_funcs=["accuracy", "format", "tool_call_penalty"],
        advantage_estimator="grpo",
        loss_composition="single",
        sampler="plain",
        fields={"reward_weights": [0.9, 0.1, _lam], "environment": "tools"},
        description=f"HDPO's coupled baseline: r = 0.9 accuracy + 0.1 format - {_lam} x tool calls, one GRPO advantage",
    )


# --- DECS + HDPO in one run ---------------------------------------------------------------------
# DECS's per-token length advantage on the accuracy channel, HDPO's conditional tool channel on the
# other: L = w_acc * TokenMean_all[clip(A_decs)] + w_tool * TokenMean_S[clip(A_tool)].
from rl.methods.decs import DECS_PRESET, DECSSettings, decs, require_judge  # noqa: E402


@dataclass(frozen=True)
class DECSHDPOSettings(DECSSettings, HDPOAdvantageSettings):
    """The ``decs_hdpo`` estimator reads both estimators' settings."""


@register_advantage("decs_hdpo", settings=DECSHDPOSettings, preflight=require_judge)
def decs_hdpo(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """``acc`` = DECS's per-token advantage (rl/methods/decs.py); ``tool`` = HDPO's conditional tool advantage."""
    out = hdpo(batch, cfg)
    out["acc"] = decs(batch, cfg)["main"]
    return out


register_method(
    "decs_hdpo",
    reward_funcs=["accuracy", "format", "decs_redundancy"],
    advantage_estimator="decs_hdpo",
    loss_composition="dual",
    sampler="decs_kappa",
    method_kwargs={**dict(DECS_PRESET.method_kwargs), **HDPOLossSettings.defaults()},
    fields={"reward_weights": [0.9, 0.1, 1.0], "environment": "tools"},
    description="DECS's token-level length advantage and HDPO's tool-efficiency channel in one run (dual loss)",
)
