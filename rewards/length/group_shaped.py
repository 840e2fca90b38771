"""Group-relative length rewards shaped within each prompt's group alone (no state across calls).

Each returns the *full* reward (correctness included) and replaces ``accuracy`` in ``reward_funcs``.
Correctness comes from the math grader against the row's ground truth (rows without one get
``None`` and take no part in their group's statistics); ``L_i = len(completion_ids[i])``. A group is
the completions of one prompt (:func:`rewards.length.base.group_keys`: the dataset index, so a prompt
rolled out twice in a step forms one group). docs/efficiency-methods.md has each method's source.

- ``kimi_length`` (:class:`KimiLengthReward`; Kimi k1.5, arXiv 2501.12599): over the group,
  ``lam_i = 0.5 - (L_i - L_min) / (L_max - L_min)`` (0 when all lengths are equal); reward
  ``c_i + w * (lam_i if correct else min(0, lam_i))``, accuracy alone during a warm-up of
  ``kimi_warmup_steps`` optimizer steps.
- ``sigmoid_length`` (:class:`SigmoidLengthReward`; Arora & Zanette, arXiv 2502.04463): correct
  ``1 - alpha * sigmoid((L_i - mu) / (sigma + eps))`` with ``mu``, ``sigma`` the mean and population
  std of the group's *correct* lengths; wrong ``0``; a truncated completion counts as wrong.
- ``shorter_better`` (:class:`ShorterBetterReward`; ShorterBetter, arXiv 2504.21370):
  ``alpha * c_i - beta * |L_i - l*|`` with ``l*`` the group's shortest correct length (its mean
  length when none is correct).
- ``alp`` (:class:`ALPReward`; Adaptive Length Penalty, arXiv 2506.05256):
  ``c_i - beta * max(p_g, 1/G) * L_i / N`` with ``p_g`` the group's solve rate, ``G`` its size and
  ``N`` a normalisation length (the completion budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from rewards.length.base import BudgetedLengthReward
from rewards.registry import register_reward
from rewards.settings import MethodSettings, setting

__all__ = [
    "ALPReward",
    "ALPSettings",
    "KimiLengthReward",
    "KimiLengthSettings",
    "ShorterBetterReward",
    "ShorterBetterSettings",
    "SigmoidLengthReward",
    "SigmoidLengthSettings",
    "kimi_lambda",
]


def kimi_lambda(length: int, shortest: int, longest: int) -> float:
    """Kimi k1.5's ``0.5 - (L - L_min) / (L_max - L_min)``, 0 when ``L_max == L_min``."""
    return 0.0 if longest == shortest else 0.5 - (length - shortest) / (longest - shortest)


# --- Kimi k1.5 ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KimiLengthSettings(MethodSettings):
    weight: float = setting("kimi_weight", 0.5, "weight of the length reward added to the accuracy (the paper "
                            "gives no value)", minimum=0.0)
    warmup_steps: int = setting("kimi_warmup_steps", 0, "optimizer steps of accuracy alone before the length reward "
                                "starts (the paper's warm-up; it gives no length)", minimum=0)


@register_reward("kimi_length")
class KimiLengthReward(BudgetedLengthReward):
    """``kimi_length``: accuracy plus Kimi k1.5's group-relative length reward (after a warm-up)."""

    name = "kimi_length"
    method_settings = KimiLengthSettings

    def __init__(self, grader: Any = None, name: str | None = None, *, weight: float | None = None,
                 warmup_steps: int | None = None) -> None:
        self.step = 0
        super().__init__(grader, name, kimi_weight=weight, kimi_warmup_steps=warmup_steps)

    def set_step(self, step: int) -> None:
        self.step = int(step)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        n, lengths, correct, groups = self._graded(prompts, completions, completion_ids, columns)
        w = self.settings["kimi_weight"]
        if self.step < self.settings["kimi_warmup_steps"]:
            self._count("kimi_length/warmup_calls")
            w = 0.0
        out: list[float | None] = [None] * n
        for rows in groups.values():
            lo, hi = min(lengths[i] for i in rows), max(lengths[i] for i in rows)
            for i in rows:
                lam = kimi_lambda(lengths[i], lo, hi)
                out[i] = 1.0 + w * lam if correct[i] else w * min(0.0, lam)
        return out


# --- Arora & Zanette: sigmoid of the length z-score among the correct ---------------------------------------


@dataclass(frozen=True)
class SigmoidLengthSettings(MethodSettings):
    alpha: float = setting("sigmoid_alpha", 0.1, "weight of the length term (the authors' scripts: 0.1; the "
                           "paper sweeps 0.05-0.4)", minimum=0.0, exclusive_maximum=1.0)
    eps: float = setting("sigmoid_eps", 1e-7, "eps added to the std of the correct lengths", exclusive_minimum=0.0)
    truncated_wrong: bool = setting("sigmoid_truncated_wrong", True, "a truncated completion (no eos at the budget) "
                                    "counts as wrong and is left out of mu and sigma (the authors' check_eos)")


@register_reward("sigmoid_length")
class SigmoidLengthReward(BudgetedLengthReward):
    """``sigmoid_length``: correct ``1 - alpha * sigmoid(z)``, z = length z-score among the group's correct."""

    name = "sigmoid_length"
    method_settings = SigmoidLengthSettings

    def __init__(self, grader: Any = None, name: str | None = None, *, alpha: float | None = None,
                 eps: float | None = None, truncated_wrong: bool | None = None) -> None:
        super().__init__(grader, name, sigmoid_alpha=alpha, sigmoid_eps=eps, sigmoid_truncated_wrong=truncated_wrong)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        n, lengths, correct, groups = self._graded(prompts, completions, completion_ids, columns)
        s = self.settings
        ok = [bool(c) and not (s["sigmoid_truncated_wrong"] and self._truncated(completion_ids[i]))
              for i, c in enumerate(correct)]
        self._count("sigmoid_length/truncated_correct", sum(bool(c) and not k for c, k in zip(correct, ok)))
        out: list[float | None] = [None] * n
        for rows in groups.values():
            good = [lengths[i] for i in rows if ok[i]]
            mu = sum(good) / len(good) if good else 0.0
            sigma = math.sqrt(sum((L - mu) ** 2 for L in good) / len(good)) if good else 0.0
            for i in rows:
                if ok[i]:
                    z = (lengths[i] - mu) / (sigma + s["sigmoid_eps"])
                    out[i] = 1.0 - s["sigmoid_alpha"] / (1.0 + math.exp(-z))
                else:
                    out[i] = 0.0
        return out


# --- ShorterBetter: distance to the group's shortest correct length ----------------------------------------


@dataclass(frozen=True)
class ShorterBetterSettings(MethodSettings):
    alpha: float = setting("sb_alpha", 2.0, "reward of a correct answer (the paper's alpha)", minimum=0.0)
    beta: float = setting("sb_beta", 0.001, "penalty per token of distance to the sample optimal length",
                          minimum=0.0)


@register_reward("shorter_better")
class ShorterBetterReward(BudgetedLengthReward):
    """``shorter_better``: ``alpha * correct - beta * |L - l*|``, l* the group's shortest correct length."""

    name = "shorter_better"
    method_settings = ShorterBetterSettings

    def __init__(self, grader: Any = None, name: str | None = None, *, alpha: float | None = None,
                 beta: float | None = None) -> None:
        super().__init__(grader, name, sb_alpha=alpha, sb_beta=beta)

    @staticmethod
    def optimal_length(lengths: Sequence[int], correct: Sequence[bool]) -> float:
        """The sample optimal length: the shortest correct length, else the mean length."""
        good = [L for L, c in zip(lengths, correct) if c]
        return float(min(good)) if good else sum(lengths) / len(lengths)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        n, lengths, correct, groups = self._graded(prompts, completions, completion_ids, columns)
        a, b = self.settings["sb_alpha"], self.settings["sb_beta"]
        out: list[float | None] = [None] * n
        for rows in groups.values():
            best = self.optimal_length([lengths[i] for i in rows], [bool(correct[i]) for i in rows])
            if not any(correct[i] for i in rows):
                self._count("shorter_better/groups_without_correct")
            for i in rows:
                out[i] = a * float(bool(correct[i])) - b * abs(lengths[i] - best)
        return out


# --- ALP: a length penalty scaled by the solve rate -----------------------------------------------------------


@dataclass(frozen=True)
class ALPSettings(MethodSettings):
    beta: float = setting("alp_beta", 0.5, "global weight of the penalty (ours: the paper's value was not "
                          "confirmed)", minimum=0.0)
    length_norm: int | None = setting("alp_length_norm", None, "N, the normalisation length (null: "
                                      "max_completion_length, else the call's longest completion)", minimum=1)


@register_reward("alp")
class ALPReward(BudgetedLengthReward):
    """``alp``: ``correct - beta * max(solve_rate, 1/G) * L / N`` (Adaptive Length Penalty)."""

    name = "alp"
    method_settings = ALPSettings

    def __init__(self, grader: Any = None, name: str | None = None, *, beta: float | None = None,
                 length_norm: int | None = None) -> None:
        super().__init__(grader, name, alp_beta=beta, alp_length_norm=length_norm)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        n, lengths, correct, groups = self._graded(prompts, completions, completion_ids, columns)
        beta = self.settings["alp_beta"]
        norm = self._limit(self.settings["alp_length_norm"], lengths)
        out: list[float | None] = [None] * n
        for rows in groups.values():
            scale = max(sum(bool(correct[i]) for i in rows) / len(rows), 1.0 / len(rows))
            for i in rows:
                out[i] = float(bool(correct[i])) - beta * scale * lengths[i] / norm
        return out
