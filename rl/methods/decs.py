"""DECS advantage estimator (arXiv 2509.25827): decoupled token-level length reward.

    N = rollouts in the batch, T = padded completion length, G = rollouts of one prompt

The token-level reward ``decs_redundancy`` (``rewards/decs/reward.py``) marks, for every *correct*
response, the tokens after its necessary reasoning prefix (NRP) with 1.0 (0.0 elsewhere);
the trainer collates it into ``batch.rewards["decs_redundancy"]`` ``[N, T]``. With
``b = decs_beta``, outcome reward ``r_i = batch.total_reward[i]``, response length ``L_i``
and length scale ``L_max``, the per-token reward is::

    R[i, t] = r_i * (1 + b)                       every position (NRP tokens, incorrect responses)
    R[i, t] = r_i + b * (1 - L_i / L_max)         positions marked redundant, where r_i > 0 (correct responses)

``L_max`` is ``max_completion_length`` by default: the paper's code pads every response to the maximum
response length before it computes the reward (``decs_l_max: batch`` uses the batch's padded width).

and the advantage is normalised *per token position* over the G rollouts of a prompt::

    A[i, t] = (R[i, t] - mean_g R[., t]) / (std_g R[., t] + eps) * completion_mask[i, t]

(unbiased std; a singleton group uses mean 0 and std 1; a position where every rollout of the
group has the same R gets exactly 0). ``eps`` is ``advantage_eps`` (default 1e-6);
``scale_rewards`` does not apply to this estimator. Returns ``{"main": A}``; the loss is the
``single`` composition (clipped surrogate, ``loss_agg_mode``).

Settings come from ``args.method_kwargs`` (see :class:`DECSSettings`).

Importing this module registers the whole method: the ``decs`` estimator here, the
``decs_redundancy`` reward (``rewards/decs/reward.py``), the ``decs_kappa`` sampler
(``curriculum/decs_kappa.py``) and the ``decs`` preset (``method: decs``, see
:data:`DECS_PRESET`). ``rl.presets.load_methods()`` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from curriculum.decs_kappa import DECSKappaAssembler, KappaSettings  # importing it registers the "decs_kappa" sampler
from rewards.decs.reward import DECSRedundancyReward  # importing it registers the "decs_redundancy" reward
from rewards.decs.settings import DECSRewardSettings
from rewards.settings import MethodSettings, setting
from rl.advantages import DEFAULT_ADVANTAGE_EPS, register_advantage
from rl.batch import RolloutBatch
from rl.errors import ConfigError
from rl.presets import register_method

__all__ = ["DECSKappaAssembler", "DECSRedundancyReward", "DECSSettings", "DECS_PRESET", "decs", "decs_token_rewards",
           "position_group_mean_std"]

L_MAX_MODES = ("batch", "max_completion_length")


@dataclass(frozen=True)
class DECSSettings(MethodSettings):
    """The ``decs`` estimator's settings, read from ``args.method_kwargs`` (``parsimony methods`` lists
    them). Other ``decs_*`` keys (the reward's judge settings, the ``decs_kappa`` sampler's) are read by
    their own pieces and ignored here."""

    error = ConfigError

    beta: float = setting("decs_beta", 0.1, "length-reward weight b", minimum=0.0)
    l_max: str | int = setting(
        "decs_l_max", "max_completion_length",
        "L_max: 'max_completion_length' (the paper's: its code pads every response to the maximum response "
        "length before the reward), 'batch' (the padded batch width), or a token count",
        choices=L_MAX_MODES, minimum=1)
    redundancy_reward: str = setting("decs_redundancy_reward", "decs_redundancy",
                                     "the token-level reward in batch.rewards that marks the redundant tokens")

    def resolve_l_max(self, batch: RolloutBatch, args: Any) -> float:
        """The ``L_max`` used for this batch."""
        if isinstance(self.l_max, int):
            return float(self.l_max)
        if self.l_max == "batch":
            return float(max(1, batch.completion_ids.shape[1]))
        v = getattr(args, "max_completion_length", None)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise self.bad("decs_l_max", f"is 'max_completion_length' but args.max_completion_length is {v!r}")
        return float(v)


def position_group_mean_std(values: Tensor, group_index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-group, per-position mean, unbiased std and "all equal" flag, broadcast to rows.

    values [N, T] float, group_index [N] (any ids, any order)
    -> (mean [N, T], std [N, T], constant [N, T] bool).
    A singleton group gets mean 0 and std 1 (and constant False).
    """
    if values.dim() != 2 or group_index.dim() != 1 or group_index.shape[0] != values.shape[0]:
        raise ValueError(
            f"values must be [N, T] and group_index [N], got {tuple(values.shape)} and {tuple(group_index.shape)}"
        )
    n, t = values.shape
    if n == 0:
        return values.clone(), values.clone(), torch.zeros_like(values, dtype=torch.bool)
    _, inv = torch.unique(group_index, return_inverse=True)  # [N] in 0..K-1
    k = int(inv.max()) + 1
    zeros = torch.zeros(k, t, dtype=values.dtype, device=values.device)  # [K, T]
    count = torch.zeros(k, dtype=values.dtype, device=values.device).index_add_(
        0, inv, torch.ones(n, dtype=values.dtype, device=values.device)
    )  # [K]
    mean_k = zeros.clone().index_add_(0, inv, values) / count[:, None]  # [K, T]
    dev2 = (values - mean_k[inv]) ** 2  # [N, T]
    ss = zeros.clone().index_add_(0, inv, dev2)  # [K, T]
    std_k = torch.sqrt(ss / (count - 1).clamp(min=1)[:, None])  # [K, T]
    idx = inv[:, None].expand(n, t)
    hi = zeros.clone().scatter_reduce(0, idx, values, reduce="amax", include_self=False)  # [K, T]
    lo = zeros.clone().scatter_reduce(0, idx, values, reduce="amin", include_self=False)  # [K, T]
    single = (count < 2)[:, None].expand(k, t)  # [K, T]
    mean_k = torch.where(single, torch.zeros_like(mean_k), mean_k)
    std_k = torch.where(single, torch.ones_like(std_k), std_k)
    constant = (hi == lo) & ~single
    return mean_k[inv], std_k[inv], constant[inv]


def decs_token_rewards(batch: RolloutBatch, settings: DECSSettings, args: Any = None) -> Tensor:
    """The per-token DECS reward ``R`` [N, T] (float64), before normalisation."""
    r = batch.total_reward
    if r is None:
        raise ValueError("batch.total_reward is None: compute rewards before advantages")
    n, t = batch.completion_ids.shape
    if r.dim() != 1 or r.shape[0] != n:
        raise ValueError(f"batch.total_reward must be [N={n}], got {tuple(r.shape)}")
    name = settings.redundancy_reward
    red = batch.rewards.get(name)
    if red is None:
        have = sorted(batch.rewards)
        raise ValueError(
            f"the decs advantage estimator needs the token-level reward {name!r} in the batch, but the batch "
            f"has rewards {have}: add {name!r} to reward_funcs (e.g. reward_funcs: [accuracy, {name}])"
        )
    if red.dim() != 2 or tuple(red.shape) != (n, t):
        raise ValueError(
            f"reward {name!r} must be token-level [N={n}, T={t}] (one value per completion token), "
            f"got shape {tuple(red.shape)}"
        )
    r = r.detach().to(torch.float64)  # [N]
    b = settings.beta
    lengths = batch.completion_lengths.to(torch.float64)  # [N]
    l_max = settings.resolve_l_max(batch, args)
    base = r * (1.0 + b)  # [N]   NRP tokens and incorrect responses
    post = r + b * (1.0 - lengths / l_max)  # [N]   redundant tokens of correct responses
    # the post-NRP value only where the outcome reward is positive (the paper's `score > 0`): the redundancy
    # reward grades on its own, and where the two graders disagree a wrong response's tail is not rewarded
    redundant = (red.detach().to(r.device) > 0.5) & (r > 0)[:, None]  # [N, T] (NaN -> False)
    return torch.where(redundant, post[:, None].expand(n, t), base[:, None].expand(n, t))


def require_judge(cfg: Any) -> None:
    """Before the model loads (not in ``--dry_run``): the endpoint judge has its URL."""
    try:
        DECSRewardSettings.from_args(cfg).require_endpoint()
    except ValueError as e:
        raise ConfigError(str(e)) from None


@register_advantage("decs", settings=DECSSettings, preflight=require_judge)
def decs(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """DECS: per-token decoupled length reward, normalised per position within each group."""
    settings = DECSSettings.from_args(cfg)
    token_rewards = decs_token_rewards(batch, settings, cfg)  # [N, T] float64
    mean, std, constant = position_group_mean_std(token_rewards, batch.group_index.to(token_rewards.device))
    eps = getattr(cfg, "advantage_eps", None)
    eps = DEFAULT_ADVANTAGE_EPS if eps is None else float(eps)
    adv = (token_rewards - mean) / (std + eps)  # [N, T]
    adv = torch.where(constant, torch.zeros_like(adv), adv)  # no float noise where the group agrees
    mask = batch.completion_mask
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    return {"main": adv.to(dtype) * mask.to(dtype)}


# ``method: decs``. The defaults are the settings measured on the embedded task (docs/decs.md,
# "Results"; used by the quickstart, `parsimony compare` and recipes/decs/tiny.yaml). kappa starts
# at 0.5 and follows the NRP ratio with step 0.5: from the paper code's 0 (step 0.2) kappa stays
# near 0 with 8 prompts per step, and DECS then sees almost no easy prompt. The paper-scale recipes
# (recipes/decs/r1-distill-*.yaml) set the paper's decs_kappa_init 0.0 / decs_kappa_lr 0.2 and the
# endpoint judge explicitly.
DECS_PRESET = register_method(
    "decs",
    reward_funcs=["accuracy", "decs_redundancy"],
    advantage_estimator="decs",
    loss_composition="single",
    sampler="decs_kappa",
    method_kwargs={
        **DECSSettings.defaults("decs_beta", "decs_l_max"),
        **DECSRewardSettings.defaults("decs_judge"),
        **KappaSettings.defaults("decs_kappa_max"),
        "decs_kappa_init": 0.5,  # the measured settings above, not the pieces' (paper) defaults
        "decs_kappa_lr": 0.5,
    },
    description="DECS (arXiv 2509.25827): token-level length reward after the necessary reasoning prefix, "
    "per-position group advantages, kappa curriculum of easy prompts",
)
