"""Length-control baselines: each returns the *full* reward (correctness included).

Use one of them **instead of** ``accuracy`` in ``reward_funcs`` (e.g. ``reward_funcs:
[length_penalty]``), with the plain ``grpo`` estimator. Correctness comes from the math grader
(:func:`rewards.math.get_default_grader`, or the ``grader`` given to the constructor) against the
ground truth in ``reward_model.ground_truth`` / ``ground_truth`` / ``answer``; rows without one
get ``None``. ``L_i`` is the completion's token count, ``len(completion_ids[i])``.

- ``length_penalty`` (:class:`LengthPenaltyReward`), ``length_penalty_mode``:
  ``"linear"`` (default): correct ``1 - alpha * L_i / L_ref``, incorrect ``0``;
  ``"kimi"`` (Kimi k1.5, group-relative): over the responses to the same prompt,
  ``lam_i = 0.5 - (L_i - L_min) / (L_max - L_min)`` (0 when all lengths are equal),
  reward ``acc_i + alpha * (lam_i if correct else min(0, lam_i))``.
- ``l1_target_length`` (:class:`L1TargetLengthReward`, L1 / LCPO-exact, normalised):
  ``acc_i - alpha * |L_target - L_i| / L_target``; the target comes from the ``target_length``
  column of the row, else the ``length_target`` setting.
- ``thinkprune`` (:class:`ThinkPruneReward`): accuracy, but ``0`` when the response is longer
  than the cap, was truncated (hit ``max_completion_length`` without ending in eos), or lacks
  ``</think>``; the cap may follow a schedule over training steps.

Settings come from ``args.method_kwargs`` through ``setup(tokenizer=..., args=...)`` (the
trainer calls it once). Keyword arguments given to a constructor win over ``method_kwargs``;
without either, the defaults apply, so the objects also work without ``setup``. Each reward's
settings class (:class:`LengthPenaltySettings`, :class:`L1Settings`, :class:`ThinkPruneSettings`)
states its keys, defaults and accepted values; ``parsimony methods`` lists them.

ThinkPrune's step: a reward function is not told the training step, so :class:`ThinkPruneReward`
counts its calls. The trainer scores each generation round in one call, so with the ``plain``
sampler one call is one step; with ``dynamic`` / ``decs_kappa`` sampling a step may take several
rounds and the schedule advances faster (set ``thinkprune_calls_per_step`` to the typical count,
or call ``set_step(step)`` from a callback). On resume the count restarts at
``thinkprune_start_step``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rewards.math import completion_text
from rewards.length.base import GradedLengthReward
from rewards.registry import register_reward
from rewards.settings import MethodSettings, setting

__all__ = [
    "LengthPenaltyReward",
    "LengthPenaltySettings",
    "L1Settings",
    "L1TargetLengthReward",
    "ThinkPruneReward",
    "ThinkPruneSettings",
]

PENALTY_MODES = ("linear", "kimi")


@dataclass(frozen=True)
class LengthPenaltySettings(MethodSettings):
    alpha: float = setting("length_alpha", 0.5, "weight of the length term", minimum=0.0)
    ref: str | int = setting(
        "length_ref", "max_completion_length", "L_ref of the linear mode: 'max_completion_length' (the batch's longest "
        "completion without setup), 'batch' (the longest completion of the call) or a token count",
        choices=("max_completion_length", "batch"), minimum=1)
    mode: str = setting("length_penalty_mode", "linear", "'linear' (1 - alpha L / L_ref) or 'kimi' (Kimi k1.5, "
                        "group-relative)", choices=PENALTY_MODES)


@register_reward("length_penalty")
class LengthPenaltyReward(GradedLengthReward):
    """``length_penalty``: correctness with a length penalty (linear or Kimi-k1.5 group-relative)."""

    name = "length_penalty"
    method_settings = LengthPenaltySettings

    def __init__(self, grader: Any = None, name: str | None = None, *, alpha: float | None = None,
                 ref: Any = None, mode: str | None = None) -> None:
        super().__init__(grader, name, length_alpha=alpha, length_ref=ref, length_penalty_mode=mode)

    def reference_length(self, lengths: Sequence[int]) -> int:
        ref = self.settings["length_ref"]
        if isinstance(ref, int):
            return ref
        if ref == "max_completion_length" and self.max_completion_length:
            return self.max_completion_length
        return max(1, max(lengths, default=1))  # "batch", or no setup yet

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        alpha = self.settings["length_alpha"]
        if self.settings["length_penalty_mode"] == "linear":
            ref = self.reference_length(lengths)
            return [None if c is None else (1.0 - alpha * L / ref if c else 0.0) for c, L in zip(correct, lengths)]
        # kimi: group the responses by prompt
        groups: dict[str, list[int]] = {}
        prompts = list(prompts) if prompts is not None else [None] * n
        for i in range(n):
            if correct[i] is not None:
                groups.setdefault(repr(prompts[i]), []).append(i)
        out: list[float | None] = [None] * n
        for rows in groups.values():
            lo = min(lengths[i] for i in rows)
            hi = max(lengths[i] for i in rows)
            for i in rows:
                lam = 0.0 if hi == lo else 0.5 - (lengths[i] - lo) / (hi - lo)
                out[i] = (1.0 + alpha * lam) if correct[i] else alpha * min(0.0, lam)
        return out


@dataclass(frozen=True)
class L1Settings(MethodSettings):
    alpha: float = setting("length_l1_alpha", 0.5, "weight of the deviation term", minimum=0.0)
    target: int | None = setting("length_target", None, "the target length of rows without a target column value",
                                 minimum=1)
    target_column: str = setting("length_target_column", "target_length", "the column holding per-row targets")


@register_reward("l1_target_length")
class L1TargetLengthReward(GradedLengthReward):
    """``l1_target_length``: ``acc - alpha * |L_target - L| / L_target`` (L1, normalised)."""

    name = "l1_target_length"
    method_settings = L1Settings

    def __init__(self, grader: Any = None, name: str | None = None, *, alpha: float | None = None,
                 target: int | None = None, target_column: str | None = None) -> None:
        super().__init__(grader, name, length_l1_alpha=alpha, length_target=target, length_target_column=target_column)

    def _targets(self, n: int, columns: Mapping[str, Any]) -> list[int]:
        col_name = self.settings["length_target_column"]
        col = columns.get(col_name)
        fixed = self.settings["length_target"]
        out = []
        for i in range(n):
            v = None if col is None else col[i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                v = fixed
            if v is None:
                raise ValueError(
                    f"reward {self.__name__!r}: row {i} has no {col_name!r} column value and "
                    "method_kwargs.length_target is not set"
                )
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) or v <= 0:
                raise ValueError(f"reward {self.__name__!r}: target length must be a positive number, got {v!r} (row {i})")
            out.append(float(v))
        return out

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        targets = self._targets(n, columns)
        correct = self._correct(completions, columns)
        alpha = self.settings["length_l1_alpha"]
        return [
            None if c is None else float(c) - alpha * abs(t - L) / t
            for c, L, t in zip(correct, lengths, targets)
        ]


def _schedule(sched: Any) -> list[tuple[int, int]] | None:
    """``[[step, cap], ...]`` with strictly increasing steps >= 0 and caps >= 1, as a list of pairs."""
    if sched is None:
        return None
    if not isinstance(sched, (list, tuple)) or not sched:
        raise ValueError(f"must be a non-empty list of [step, cap] pairs, got {sched!r}")
    pairs = []
    for item in sched:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"entries must be [step, cap] pairs, got {item!r}")
        step, cap = item
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"cap must be a positive integer, got {cap!r}")
        pairs.append((step, cap))
    steps = [p[0] for p in pairs]
    if steps != sorted(set(steps)):
        raise ValueError(f"steps must be strictly increasing, got {steps}")
    return pairs


@dataclass(frozen=True)
class ThinkPruneSettings(MethodSettings):
    cap: int | None = setting("thinkprune_cap", None, "token cap (null: no cap, only truncation and </think> count)",
                              minimum=1)
    schedule: Any = setting("thinkprune_schedule", None, "[[step, cap], ...]: from training step `step` on, the cap is "
                            "`cap` (steps strictly increasing)", parse=_schedule)
    calls_per_step: int = setting("thinkprune_calls_per_step", 1, "reward calls (generation rounds) per optimizer step",
                                  minimum=1)
    start_step: int = setting("thinkprune_start_step", 0, "the step of the first call (set it when resuming)", minimum=0)
    require_think_close: bool = setting("thinkprune_require_think_close", True, "a response without the closing "
                                        "marker scores 0")
    think_close: str = setting("thinkprune_think_close", "</think>", "the closing marker")


@register_reward("thinkprune")
class ThinkPruneReward(GradedLengthReward):
    """``thinkprune``: accuracy, 0 past the (scheduled) cap, when truncated or without ``</think>``."""

    name = "thinkprune"
    method_settings = ThinkPruneSettings

    def __init__(self, grader: Any = None, name: str | None = None, *, cap: int | None = None,
                 schedule: Sequence[Sequence[int]] | None = None, calls_per_step: int | None = None,
                 start_step: int | None = None, require_think_close: bool | None = None,
                 think_close: str | None = None) -> None:
        self.calls = 0
        super().__init__(
            grader, name, thinkprune_cap=cap, thinkprune_schedule=schedule, thinkprune_calls_per_step=calls_per_step,
            thinkprune_start_step=start_step, thinkprune_require_think_close=require_think_close,
            thinkprune_think_close=think_close,
        )

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        super().setup(tokenizer=tokenizer, args=args)
        self.calls = 0

    # --- the step and the cap ----------------------------------------------------------------------
    @property
    def step(self) -> int:
        """The training step of the next call."""
        return self.settings["thinkprune_start_step"] + self.calls // self.settings["thinkprune_calls_per_step"]

    def set_step(self, step: int) -> None:
        """Make the next call count as training step ``step``."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        self.settings["thinkprune_start_step"] = step
        self.calls = 0

    def cap_at(self, step: int) -> int | None:
        """The cap in force at training step ``step`` (schedule, else ``thinkprune_cap``)."""
        cap = self.settings["thinkprune_cap"]
        for start, c in self.settings["thinkprune_schedule"] or []:
            if step >= start:
                cap = c
        return cap

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        cap = self.cap_at(self.step)
        self.calls += 1
        correct = self._correct(completions, columns)
        close = self.settings["thinkprune_think_close"]
        need_close = self.settings["thinkprune_require_think_close"]
        limit = self.max_completion_length
        out: list[float | None] = []
        for i in range(n):
            if correct[i] is None:
                out.append(None)
                continue
            L = lengths[i]
            ids = completion_ids[i]
            ended = bool(self.eos_token_ids) and L > 0 and ids[-1] in self.eos_token_ids
            if limit is not None and L >= limit and not ended:
                self._count("thinkprune/truncated")
                out.append(0.0)
            elif cap is not None and L > cap:
                self._count("thinkprune/over_cap")
                out.append(0.0)
            elif need_close and close not in completion_text(completions[i]):
                self._count("thinkprune/no_think_close")
                out.append(0.0)
            else:
                out.append(1.0 if correct[i] else 0.0)
        return out

