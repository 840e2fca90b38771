"""Published length-efficiency rewards (the leaderboard's presets): each returns the *full* reward.

Like :mod:`rewards.length.penalties`, use one of them **instead of** ``accuracy`` in ``reward_funcs``.
Correctness comes from the math grader against the row's ground truth (rows without one get
``None``); ``L_i = len(completion_ids[i])``; a completion is *truncated* when it reached
``max_completion_length`` without ending in an eos token. Settings come from
``args.method_kwargs`` (``setup``), or keyword arguments to the constructor (which win).

- ``cosine`` (:class:`CosineLengthReward`; Yeo et al. 2025, "Demystifying Long Chain-of-Thought
  Reasoning in LLMs"): ``f(L; r0, rL) = rL + (r0 - rL) * (1 + cos(pi * L / L_max)) / 2``, so
  ``f(0) = r0`` and ``f(L_max) = rL``; correct: ``f(L; r0c, rLc)``, wrong: ``f(L; r0w, rLw)``,
  truncated: ``r_exceed``. Defaults are the paper's ``r0c=2, rLc=1, r0w=-10, rLw=0, r_exceed=-10``:
  a short correct answer beats a long one, a long wrong answer beats a short one.
- ``soft_overlong`` (:class:`SoftOverlongReward`; DAPO's soft overlong punishment):
  ``acc_i + factor * R_len(L_i)`` with ``acc = 1`` correct / ``overlong_wrong_reward`` (DAPO: -1)
  and ``R_len = 0`` for ``L <= L_max - L_cache``, ``((L_max - L_cache) - L) / L_cache`` inside the
  buffer, ``-1`` beyond ``L_max``.
- ``linear_pass_rate`` (:class:`LinearPassRateReward`): correct ``1 - alpha * p_g * L_i / L_ref``,
  wrong ``0``, with ``p_g`` the share of correct completions in the prompt's group: the easier
  the prompt, the harder its correct completions are pushed to be short.
- ``grpo_lead`` (:class:`GRPOLeadReward`; Zhang & Zuo 2025, GRPO-LEAD): correct
  ``exp(-alpha * z_i)``, ``z_i = (L_i - mu_g) / (sigma_g + eps)`` over the *correct* completions
  of the group (population std); wrong ``lead_wrong_reward`` (the explicit penalty, -1).
- ``dler_truncation`` (:class:`DLERTruncationReward`; DLER's length penalty): ``1`` when correct
  and within the length budget (``L <= dler_length_cap`` and not truncated), else ``0``.

Group-relative rewards (``linear_pass_rate``, ``grpo_lead``) group completions by the prompt's
dataset index (``meta["prompt_index"]``), else ``meta["group_index"]``, else the prompt itself, so
that a prompt rolled out twice in one step (GFPO's larger group) forms one group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from rewards.length.base import BudgetedLengthReward, group_keys, group_rows
from rewards.registry import register_reward
from rewards.settings import MethodSettings, setting

__all__ = [
    "CosineLengthReward",
    "CosineSettings",
    "SoftOverlongReward",
    "SoftOverlongSettings",
    "LinearPassRateReward",
    "LinearPassRateSettings",
    "GRPOLeadReward",
    "GRPOLeadSettings",
    "DLERTruncationReward",
    "DLERTruncationSettings",
    "cosine_interp",
    "soft_overlong_penalty",
    "group_keys",
]


def cosine_interp(length: float, max_len: float, at_zero: float, at_max: float) -> float:
    """``at_max + (at_zero - at_max) * (1 + cos(pi * min(L, L_max) / L_max)) / 2``."""
    t = min(max(float(length), 0.0), float(max_len)) / float(max_len)
    return at_max + (at_zero - at_max) * 0.5 * (1.0 + math.cos(math.pi * t))


def soft_overlong_penalty(length: int, max_len: int, buffer: int) -> float:
    """DAPO's ``R_length``: 0 up to ``max_len - buffer``, then linear down to -1 at ``max_len``, -1 beyond."""
    start = max_len - buffer
    if length <= start:
        return 0.0
    if length <= max_len:
        return (start - length) / buffer
    return -1.0


@dataclass(frozen=True)
class CosineSettings(MethodSettings):
    max_len: int | None = setting("cosine_max_len", None, "L_max (null: max_completion_length, else the call's "
                                  "longest completion)", minimum=1)
    correct_short: float = setting("cosine_correct_short", 2.0, "r0c: a correct answer's reward at length 0")
    correct_long: float = setting("cosine_correct_long", 1.0, "rLc: a correct answer's reward at L_max")
    wrong_short: float = setting("cosine_wrong_short", -10.0, "r0w: a wrong answer's reward at length 0")
    wrong_long: float = setting("cosine_wrong_long", 0.0, "rLw: a wrong answer's reward at L_max")
    exceed: float = setting("cosine_exceed", -10.0, "the reward of a truncated (or longer than L_max) completion")


@register_reward("cosine")
class CosineLengthReward(BudgetedLengthReward):
    """``cosine``: cosine-scaled length reward by correctness (Demystifying Long CoT)."""

    name = "cosine"
    method_settings = CosineSettings

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        s = self.settings
        max_len = self._limit(s["cosine_max_len"], lengths)
        out: list[float | None] = []
        for i in range(n):
            if correct[i] is None:
                out.append(None)
            elif self._truncated(completion_ids[i]) or lengths[i] > max_len:
                self._count("cosine/exceeded")
                out.append(s["cosine_exceed"])
            elif correct[i]:
                out.append(cosine_interp(lengths[i], max_len, s["cosine_correct_short"], s["cosine_correct_long"]))
            else:
                out.append(cosine_interp(lengths[i], max_len, s["cosine_wrong_short"], s["cosine_wrong_long"]))
        return out


@dataclass(frozen=True)
class SoftOverlongSettings(MethodSettings):
    max_len: int | None = setting("overlong_max_len", None, "L_max (null: max_completion_length, else the call's "
                                  "longest completion)", minimum=1)
    buffer: int | None = setting("overlong_buffer", None, "L_cache, the buffer before L_max where the penalty grows "
                                 "(null: 20% of L_max)", minimum=1)
    penalty_factor: float = setting("overlong_penalty_factor", 1.0, "weight of the overlong penalty", minimum=0.0)
    wrong_reward: float = setting("overlong_wrong_reward", -1.0, "a wrong answer's correctness term (DAPO: -1)")

    def check(self) -> None:
        if self.max_len is not None and self.buffer is not None and self.buffer > self.max_len:
            raise self.bad("overlong_buffer", f"must be <= overlong_max_len ({self.max_len}), got {self.buffer}")


@register_reward("soft_overlong")
class SoftOverlongReward(BudgetedLengthReward):
    """``soft_overlong``: correctness (+1 / -1) plus DAPO's soft overlong punishment."""

    name = "soft_overlong"
    method_settings = SoftOverlongSettings

    def budget(self, lengths: Sequence[int]) -> tuple[int, int]:
        """``(L_max, L_cache)``; the buffer defaults to 20% of ``L_max`` (DAPO: 4096 of 20480)."""
        max_len = self._limit(self.settings["overlong_max_len"], lengths)
        buf = self.settings["overlong_buffer"]
        buf = max(1, max_len // 5) if buf is None else min(buf, max_len)
        return max_len, buf

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        max_len, buf = self.budget(lengths)
        factor, wrong = self.settings["overlong_penalty_factor"], self.settings["overlong_wrong_reward"]
        out: list[float | None] = []
        for c, L in zip(correct, lengths):
            if c is None:
                out.append(None)
                continue
            pen = soft_overlong_penalty(L, max_len, buf)
            if pen < 0:
                self._count("soft_overlong/in_buffer")
            out.append((1.0 if c else wrong) + factor * pen)
        return out


@dataclass(frozen=True)
class LinearPassRateSettings(MethodSettings):
    alpha: float = setting("pass_rate_alpha", 0.5, "weight of the length term", minimum=0.0)
    length_ref: str | int = setting(
        "pass_rate_length_ref", "max_completion_length", "L_ref: 'max_completion_length', 'group' (the group's longest "
        "completion) or a token count", choices=("max_completion_length", "group"), minimum=1)


@register_reward("linear_pass_rate")
class LinearPassRateReward(BudgetedLengthReward):
    """``linear_pass_rate``: correct ``1 - alpha * pass_rate_g * L / L_ref``, wrong 0."""

    name = "linear_pass_rate"
    method_settings = LinearPassRateSettings

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        keys = group_keys(n, prompts, columns)
        alpha, ref = self.settings["pass_rate_alpha"], self.settings["pass_rate_length_ref"]
        out: list[float | None] = [None] * n
        for rows in group_rows(keys, [i for i in range(n) if correct[i] is not None]).values():
            p = sum(bool(correct[i]) for i in rows) / len(rows)
            if ref == "group":
                L_ref = max(1, max(lengths[i] for i in rows))
            else:
                L_ref = self._limit(ref if isinstance(ref, int) else None, lengths)
            for i in rows:
                out[i] = 1.0 - alpha * p * min(lengths[i], L_ref) / L_ref if correct[i] else 0.0
        return out


@dataclass(frozen=True)
class GRPOLeadSettings(MethodSettings):
    alpha: float = setting("lead_alpha", 0.1, "weight of the length z-score in exp(-alpha z)", minimum=0.0)
    wrong_reward: float = setting("lead_wrong_reward", -1.0, "a wrong answer's reward (the explicit penalty)")
    eps: float = setting("lead_eps", 1e-6, "eps of the z-score's std", exclusive_minimum=0.0)


@register_reward("grpo_lead")
class GRPOLeadReward(BudgetedLengthReward):
    """``grpo_lead``: correct ``exp(-alpha * z)`` (length z-score among the group's correct), wrong -1."""

    name = "grpo_lead"
    method_settings = GRPOLeadSettings

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        keys = group_keys(n, prompts, columns)
        s = self.settings
        out: list[float | None] = [None if c is None else (None if c else s["lead_wrong_reward"]) for c in correct]
        for rows in group_rows(keys, [i for i in range(n) if correct[i]]).values():
            mu = sum(lengths[i] for i in rows) / len(rows)
            sigma = math.sqrt(sum((lengths[i] - mu) ** 2 for i in rows) / len(rows))
            for i in rows:
                out[i] = math.exp(-s["lead_alpha"] * (lengths[i] - mu) / (sigma + s["lead_eps"]))
        return out


@dataclass(frozen=True)
class DLERTruncationSettings(MethodSettings):
    length_cap: int | None = setting("dler_length_cap", None, "the length budget in tokens (null: only truncation "
                                     "counts)", minimum=1)


@register_reward("dler_truncation")
class DLERTruncationReward(BudgetedLengthReward):
    """``dler_truncation``: 1 when correct within the length budget, else 0 (DLER's truncation penalty)."""

    name = "dler_truncation"
    method_settings = DLERTruncationSettings

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        cap = self.settings["dler_length_cap"]
        out: list[float | None] = []
        for i in range(n):
            if correct[i] is None:
                out.append(None)
            elif self._truncated(completion_ids[i]) or (cap is not None and lengths[i] > cap):
                self._count("dler/over_budget")
                out.append(0.0)
            else:
                out.append(1.0 if correct[i] else 0.0)
        return out
