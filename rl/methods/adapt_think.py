"""AdaptThink (Zhang et al., arXiv 2505.13417): a reasoning model learns when to think.

    N = rollouts in the batch, T = padded completion length, G = num_generations

Three pieces and a preset, faithful to the authors' code (THU-KEG/AdaptThink, read in a fork that carries it):

- reward ``adapt_think`` (:mod:`rewards.adapt_think`): ``c_i - R_ref(x) + delta * 1[NoThinking]``;
- sampler ``adapt_think`` (:class:`AdaptThinkAssembler`), the paper's importance sampling: in every group,
  ``round(G * adapt_think_nothink_ratio)`` completions are forced to start with the end-of-thinking marker
  (``</think>``: NoThinking) and the others with the thinking start (``adapt_think_think_start``; the authors force
  "Alright", the first word of their model's thinking, after a prompt that ends in ``<think>``). The proposal
  ``pi_IS`` picks the first token with probability ``ratio`` / ``1 - ratio`` and then follows the old policy, so each
  forced token records that log-probability (:mod:`rollout.prefixes`) and the update's ratio is
  ``pi_theta(y|x) / pi_IS(y|x)`` (the first token's old log-prob replaced by the proposal's, the authors'
  ``adjust_old_logprobs``). The prefix is part of the completion, so the policy learns the first-token choice.
  NoThinking completions get ``adapt_think_nothink_budget`` of ``max_completion_length`` (the authors' 4096 of
  16384 tokens);
- advantage ``adapt_think``: the reward itself, ``A_i = r_i`` on every token (the authors' ``naive`` estimator:
  ``R_ref`` is the baseline, no group mean, no std);
- the preset sets ``loss_type: gspo`` (the authors' ratio is per sequence, of the length-normalised log-probs:
  ``exp(mean_t logp_t - mean_t logp_old_t)``, clipped at 1 -/+ ``epsilon`` = 0.2 as in their runs) and
  ``loss_agg_mode: seq-mean-token-mean`` (their loss is the mean over rows). ``loss_type: clipped`` gives the
  per-token ratio instead (only the forced token's then differs from 1).

``R_ref`` per training prompt: ``parsimony adapt-think-ref`` (:mod:`rl.methods.adapt_think_ref`).
docs/efficiency-methods.md has the formula, the defaults and the differences from the authors' code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from curriculum.samplers import BatchAssembler, DrawFn, RolloutFn, ScoredGroup, register_assembler
from rewards.adapt_think import AdaptThinkSettings
from rewards.settings import MethodSettings, setting
from rl.advantages import broadcast_to_tokens, outcome_rewards, register_advantage
from rl.batch import RolloutBatch
from rl.errors import ConfigError
from rl.presets import register_method
from rollout.prefixes import CompletionPrefix

__all__ = ["AdaptThinkAssembler", "AdaptThinkSamplerSettings", "adapt_think_advantage", "adapt_think_prefixes"]

NOTHINK, THINK = "nothink", "think"


@dataclass(frozen=True)
class AdaptThinkSamplerSettings(MethodSettings):
    """The ``adapt_think`` sampler's settings."""

    error = ConfigError

    nothink_ratio: float = setting("adapt_think_nothink_ratio", 0.5, "the proposal's share of NoThinking starts: "
                                   "round(G * ratio) completions per group are forced to start with the "
                                   "end-of-thinking marker, the rest with adapt_think_think_start (the paper's 0.5)",
                                   exclusive_minimum=0.0, exclusive_maximum=1.0)
    think_start: str = setting("adapt_think_think_start", "<think>", "the forced start of a Thinking completion (the "
                               "authors force 'Alright' after a prompt ending in <think>; the embedded tasks' traces "
                               "open with <think>)")
    think_end: str = setting("adapt_think_think_end", "</think>", "the end-of-thinking marker: a completion that starts "
                             "with it is NoThinking")
    nothink_budget: float = setting("adapt_think_nothink_budget", 0.25, "a NoThinking completion's token budget, as a "
                                    "share of max_completion_length (the authors' 4096 of 16384)",
                                    exclusive_minimum=0.0, maximum=1.0)


def adapt_think_prefixes(s: AdaptThinkSamplerSettings, group_size: int, max_completion_length: int) -> list[CompletionPrefix]:
    """The two forced starts of a group: NoThinking first (as the authors' rollout orders them), then Thinking."""
    n_nothink = round(group_size * s.nothink_ratio)  # Python's round, as the authors'
    if not 0 < n_nothink < group_size:
        raise AdaptThinkSamplerSettings.bad(
            "adapt_think_nothink_ratio", f"round(num_generations {group_size} x {s.nothink_ratio}) = {n_nothink} leaves "
            "no NoThinking or no Thinking completion in a group")
    nothink_budget = max(1, int(max_completion_length * s.nothink_budget))
    return [CompletionPrefix(s.think_end, n_nothink, math.log(s.nothink_ratio), nothink_budget, NOTHINK),
            CompletionPrefix(s.think_start, group_size - n_nothink, math.log(1.0 - s.nothink_ratio), None, THINK)]


@register_assembler("adapt_think")
class AdaptThinkAssembler(BatchAssembler):
    """AdaptThink's importance sampling: each group's completions start half NoThinking, half Thinking."""

    method_settings = AdaptThinkSamplerSettings

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        if getattr(cfg, "async_rollouts", False) or getattr(cfg, "environment", None):
            raise ConfigError("sampler: adapt_think forces the start of single-turn completions: it runs without "
                              "async_rollouts and without an environment")
        s = AdaptThinkSamplerSettings.from_args(cfg)
        self.prefixes = adapt_think_prefixes(s, int(getattr(cfg, "num_generations", 2)),
                                             int(getattr(cfg, "max_completion_length", 256)))

    def assemble(self, draw: DrawFn, rollout: RolloutFn, num_groups: int) -> tuple[list[ScoredGroup], dict]:
        groups = rollout(draw(num_groups), prefixes=self.prefixes)
        zero = sum(not g.has_variance for g in groups)
        return groups, {"sampling/zero_std_frac": zero / max(1, len(groups)), "sampling/generation_rounds": 1}


@register_advantage("adapt_think")
def adapt_think_advantage(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """AdaptThink: the reward itself on every completion token (it is centred by R_ref already)."""
    return {"main": broadcast_to_tokens(outcome_rewards(batch), batch.completion_mask)}


register_method(
    "adapt_think",
    reward_funcs=["adapt_think"],
    advantage_estimator="adapt_think",
    sampler="adapt_think",
    fields={"loss_type": "gspo", "loss_agg_mode": "seq-mean-token-mean"},
    method_kwargs={**AdaptThinkSettings.defaults("adapt_think_delta", "adapt_think_ref_accuracy"),
                   **AdaptThinkSamplerSettings.defaults("adapt_think_nothink_ratio")},
    description="AdaptThink: correct - R_ref(x) + delta * NoThinking, half of each group forced to skip thinking, "
                "importance-weighted against that proposal; the reward is the advantage",
)
