"""The leaderboard's length-efficiency methods: DLER's advantage, GFPO's group filter, and presets.

    N = rollouts in the batch, T = padded completion length, G = num_generations

Rewards live in :mod:`rewards.length` (``published``, ``penalties``, ``group_shaped``, ``adaptive``); this
module adds the two non-reward pieces and the presets (docs/efficiency-methods.md has each method's formula, settings and paper result):

- advantage ``dler`` (DLER, arXiv 2510.15110, batch-wise reward normalisation):
  ``A_i = r_i - mean_g(r)`` (group baseline), then ``(A_i - mean_B(A)) / (std_B(A) + eps)`` over
  the whole batch ``B`` (unbiased std; ``eps = advantage_eps``), instead of GRPO's per-group std:
  a strict length budget makes many groups' std tiny, and dividing by it inflates their advantages.
  ``B`` is this process's batch (with several processes, each normalises its own rows).
- sampler ``gfpo`` (GFPO, arXiv 2508.09726): each drawn prompt is rolled out
  ``gfpo_sample_factor`` times (``factor x G`` completions per prompt, scored as usual), the
  rollouts of a prompt are merged into one group, and only the ``gfpo_keep`` (default ``G``) best
  by ``gfpo_metric`` enter the batch: ``length`` keeps the shortest, ``token_efficiency`` the
  highest ``reward / length``. Advantages are then computed over the kept subset only (its own
  mean and std), which is GFPO's rule; the rejected rollouts are not trained on at all.

  **Budget.** GFPO trains on as many rollouts per step as every other method (``step_prompts x
  gfpo_keep``, with ``gfpo_keep = G``), but *generates* ``factor`` times as many; the metric
  ``sampling/rollouts_per_prompt`` records it, and ``parsimony compare`` counts the generated
  rollouts and reports the wall time, so the extra sampling shows as cost, not as a free lunch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# importing these registers the length rewards: length_penalty, l1_target_length, thinkprune (penalties);
# cosine, soft_overlong, linear_pass_rate, grpo_lead, dler_truncation (published); kimi_length,
# sigmoid_length, shorter_better, alp (group_shaped); laser_d, short_rl (adaptive)
from rewards.length.adaptive import LaserDSettings, ShortRLSettings
from rewards.length.group_shaped import ALPSettings, KimiLengthSettings, ShorterBetterSettings, SigmoidLengthSettings
from rewards.length.penalties import L1Settings, LengthPenaltySettings, ThinkPruneSettings
from rewards.length.published import GRPOLeadSettings, LinearPassRateSettings
from rewards.settings import MethodSettings, setting
from curriculum.samplers import BatchAssembler, DrawFn, RolloutFn, ScoredGroup, register_assembler
from rl.advantages import advantage_eps, broadcast_to_tokens, outcome_rewards, group_mean_std, register_advantage
from rl.batch import RolloutBatch
from rl.errors import ConfigError
from rl.presets import register_method

GFPO_METRICS = ("length", "token_efficiency")


# --- DLER: batch-wise normalisation -----------------------------------------------------------


def batch_normalized_advantage(r: Tensor, group_index: Tensor, eps: float = 1e-6) -> Tensor:
    """``r`` [N], ``group_index`` [N] -> [N]: group-centred, then standardised over the batch.

    A batch whose centred rewards are all equal (e.g. every group zero-variance) gets 0."""
    mean, _ = group_mean_std(r, group_index)
    a = r - mean  # [N]
    if a.numel() < 2:
        return torch.zeros_like(a)
    std = a.std()
    if not torch.isfinite(std) or float(std) == 0.0:
        return torch.zeros_like(a)
    return (a - a.mean()) / (std + eps)


@register_advantage("dler")
def dler(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """DLER: ``(A - mean_B A) / (std_B A + eps)`` with ``A = r - mean_g r`` (batch-wise normalisation)."""
    adv = batch_normalized_advantage(outcome_rewards(batch), batch.group_index, advantage_eps(cfg))
    return {"main": broadcast_to_tokens(adv, batch.completion_mask)}


# --- GFPO: sample a larger group, train on the best k ----------------------------------------


@dataclass(frozen=True)
class GFPOSettings(MethodSettings):
    """The ``gfpo`` sampler's settings."""

    error = ConfigError

    sample_factor: int = setting("gfpo_sample_factor", 2, "rollout groups drawn per prompt: factor x G rollouts",
                                 minimum=1)
    keep: int | None = setting("gfpo_keep", None, "rollouts kept per prompt (null: num_generations)", minimum=2)
    metric: str = setting("gfpo_metric", "length", "'length' keeps the shortest, 'token_efficiency' the highest "
                          "reward / length", choices=GFPO_METRICS)


def gfpo_scores(group: ScoredGroup, metric: str) -> list[float]:
    """Lower is better: the length, or minus the token efficiency ``total reward / max(1, length)``."""
    lengths = [len(t.completion_ids) for t in group.trajectories]
    if metric == "length":
        return [float(L) for L in lengths]
    return [-(r if math.isfinite(r) else -math.inf) / max(1, L) for r, L in zip(group.total, lengths)]


def select_subset(group: ScoredGroup, keep: int, metric: str) -> ScoredGroup:
    """The ``keep`` rollouts of ``group`` with the lowest :func:`gfpo_scores` (ties: earlier first),
    in their original order, with their rewards."""
    scores = gfpo_scores(group, metric)
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))[:keep]
    idx = sorted(order)
    return ScoredGroup(
        prompt_index=group.prompt_index,
        trajectories=[group.trajectories[i] for i in idx],
        rewards={k: [v[i] for i in idx] for k, v in group.rewards.items()},
        total=[group.total[i] for i in idx],
        meta=dict(group.meta),
    )


def merge_groups(groups: list[ScoredGroup]) -> ScoredGroup:
    """One group from several rollout groups of the same prompt: the first group's id for all."""
    gid = groups[0].trajectories[0].group_index if groups[0].trajectories else 0
    trajs = [t for g in groups for t in g.trajectories]
    for t in trajs:
        t.group_index = gid
    return ScoredGroup(
        prompt_index=groups[0].prompt_index,
        trajectories=trajs,
        rewards={k: [x for g in groups for x in g.rewards[k]] for k in groups[0].rewards},
        total=[x for g in groups for x in g.total],
        meta=dict(groups[0].meta),
    )


@register_assembler("gfpo")
class GFPOAssembler(BatchAssembler):
    """GFPO: ``gfpo_sample_factor x G`` rollouts per prompt, the best ``gfpo_keep`` of them trained on."""

    method_settings = GFPOSettings

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        s = GFPOSettings.from_args(cfg)
        G = int(getattr(cfg, "num_generations", 2))
        self.factor = s.sample_factor
        self.keep = s.keep or G
        self.metric = s.metric
        if self.keep > self.factor * G:
            raise GFPOSettings.bad("gfpo_keep", f"keeps {self.keep} of only {self.factor} x {G} sampled rollouts per prompt")

    def assemble(self, draw: DrawFn, rollout: RolloutFn, num_groups: int) -> tuple[list[ScoredGroup], dict]:
        indices = draw(num_groups)
        rolled = rollout([i for i in indices for _ in range(self.factor)])  # factor rollout groups per prompt
        kept: list[ScoredGroup] = []
        sampled_tokens = kept_tokens = sampled = 0
        for j in range(len(indices)):
            group = merge_groups(rolled[j * self.factor : (j + 1) * self.factor])
            sub = select_subset(group, self.keep, self.metric)
            sampled += len(group.trajectories)
            sampled_tokens += sum(len(t.completion_ids) for t in group.trajectories)
            kept_tokens += sum(len(t.completion_ids) for t in sub.trajectories)
            kept.append(sub)
        n_kept = sum(len(g.trajectories) for g in kept)
        return kept, {
            "sampling/zero_std_frac": sum(not g.has_variance for g in kept) / max(1, len(kept)),
            "sampling/generation_rounds": 1,
            "sampling/rollouts_per_prompt": sampled / max(1, len(indices)),
            "gfpo/sampled_mean_tokens": sampled_tokens / max(1, sampled),
            "gfpo/kept_mean_tokens": kept_tokens / max(1, n_kept),
        }


# --- presets ----------------------------------------------------------------------------------

register_method(
    "cosine",
    reward_funcs=["cosine"],
    description="cosine-scaled length reward by correctness (Demystifying Long CoT): short correct > long correct, "
                "long wrong > short wrong, truncated -10",
)
register_method(
    "soft_overlong",
    reward_funcs=["soft_overlong"],
    description="DAPO's soft overlong punishment: +1/-1 correctness, a linear penalty over the last 20% of the budget",
)
register_method(
    "linear_pass_rate",
    reward_funcs=["linear_pass_rate"],
    method_kwargs=LinearPassRateSettings.defaults("pass_rate_alpha"),
    description="correct 1 - alpha * pass_rate_g * L / L_ref, wrong 0: a linear length penalty scaled by the group's pass rate",
)
register_method(
    "grpo_lead",
    reward_funcs=["grpo_lead"],
    method_kwargs=GRPOLeadSettings.defaults("lead_alpha"),
    description="GRPO-LEAD: correct exp(-alpha z), z = length z-score among the group's correct completions; wrong -1",
)
register_method(
    "gfpo",
    reward_funcs=["accuracy"],
    sampler="gfpo",
    method_kwargs=GFPOSettings.defaults("gfpo_sample_factor", "gfpo_metric"),
    description="GFPO: sample factor x G per prompt, train on the G shortest (or most token-efficient)",
)
register_method(
    "dler",
    reward_funcs=["dler_truncation"],
    advantage_estimator="dler",
    sampler="dynamic",
    fields={"epsilon_high": 0.28},
    description="DLER: truncation penalty + batch-wise reward normalisation + clip-higher (0.28) + dynamic sampling",
)

# --- the length family's first presets (rewards/length/penalties.py) ---------------------------------

register_method(
    "length_penalty",
    reward_funcs=["length_penalty"],
    method_kwargs=LengthPenaltySettings.defaults(),
    description="sequence-level length penalty: correct 1 - alpha * L / L_ref (or Kimi k1.5's group-relative form)",
)
register_method(
    "l1",
    reward_funcs=["l1_target_length"],
    method_kwargs=L1Settings.defaults("length_l1_alpha", "length_target_column"),
    description="L1 / LCPO-exact: accuracy - alpha * |L_target - L| / L_target (per-row target column or length_target)",
)
register_method(
    "thinkprune",
    reward_funcs=["thinkprune"],
    method_kwargs=ThinkPruneSettings.defaults("thinkprune_require_think_close"),
    description="ThinkPrune: accuracy, 0 past a (scheduled) token cap, when truncated or without </think>",
)

# --- the second round of published presets (rewards/length/group_shaped.py, rewards/length/adaptive.py) -------

register_method(
    "kimi_length",
    reward_funcs=["kimi_length"],
    method_kwargs=KimiLengthSettings.defaults(),
    description="Kimi k1.5: accuracy + w * lambda, lambda = 0.5 - (L - L_min) / (L_max - L_min) in the group "
                "(wrong: min(0, lambda)), after a warm-up",
)
register_method(
    "sigmoid_length",
    reward_funcs=["sigmoid_length"],
    advantage_estimator="rloo",
    method_kwargs=SigmoidLengthSettings.defaults("sigmoid_alpha"),
    description="Arora & Zanette: correct 1 - alpha * sigmoid((L - mu) / sigma) over the group's correct lengths, "
                "wrong 0; RLOO advantages (the authors' code)",
)
register_method(
    "laser_d",
    reward_funcs=["laser_d"],
    method_kwargs=LaserDSettings.defaults("laser_alpha", "laser_wrong_reward", "laser_update_every"),
    description="LASER-D: correctness + alpha if correct within the target length of the group's difficulty "
                "bucket; targets re-estimated during training",
)
register_method(
    "shorter_better",
    reward_funcs=["shorter_better"],
    method_kwargs=ShorterBetterSettings.defaults(),
    description="ShorterBetter: alpha * correct - beta * |L - l*|, l* the group's shortest correct length "
                "(its mean length if none is correct)",
)
register_method(
    "alp",
    reward_funcs=["alp"],
    method_kwargs=ALPSettings.defaults("alp_beta"),
    description="Adaptive length penalty: correct - beta * max(solve_rate, 1/G) * L / N",
)
register_method(
    "short_rl",
    reward_funcs=["short_rl"],
    method_kwargs=ShortRLSettings.defaults(),
    description="Short-RL: a Kimi-style length reward on correct rollouts beyond a tolerance above the group's "
                "shortest correct, on while training accuracy holds",
)
