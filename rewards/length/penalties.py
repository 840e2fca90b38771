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
without either, the defaults below apply, so the objects also work without ``setup``.

| key | default | reward |
|---|---|---|
| ``length_alpha`` | 0.5 | ``length_penalty``: weight of the length term |
| ``length_ref`` | ``"max_completion_length"`` | ``length_penalty`` linear: ``L_ref``; ``"max_completion_length"`` (the batch's longest completion without ``setup``), ``"batch"`` (longest completion of the call) or an int |
| ``length_penalty_mode`` | ``"linear"`` | ``"linear"`` or ``"kimi"`` |
| ``length_l1_alpha`` | 0.5 | ``l1_target_length``: weight of the deviation term |
| ``length_target`` | None | ``l1_target_length``: target for rows without a ``target_length`` column |
| ``length_target_column`` | ``"target_length"`` | column holding per-row targets |
| ``thinkprune_cap`` | None | token cap (None: no cap, only truncation and ``</think>`` count) |
| ``thinkprune_schedule`` | None | ``[[step, cap], ...]``: from training step ``step`` on, the cap is ``cap`` |
| ``thinkprune_calls_per_step`` | 1 | reward calls (generation rounds) per optimizer step |
| ``thinkprune_start_step`` | 0 | step of the first call (set it when resuming) |
| ``thinkprune_require_think_close`` | True | a response without ``</think>`` scores 0 |
| ``thinkprune_think_close`` | ``"</think>"`` | the closing marker |

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
from typing import Any, Mapping, Sequence

from rewards.math import completion_text
from rewards.length.base import GradedLengthReward, bad_setting, bool_setting, number_setting, positive_int_setting
from rewards.registry import register_reward

__all__ = [
    "LengthPenaltyReward",
    "L1TargetLengthReward",
    "ThinkPruneReward",
]

PENALTY_MODES = ("linear", "kimi")


@register_reward("length_penalty")
class LengthPenaltyReward(GradedLengthReward):
    """``length_penalty``: correctness with a length penalty (linear or Kimi-k1.5 group-relative)."""

    name = "length_penalty"
    defaults = {"length_alpha": 0.5, "length_ref": "max_completion_length", "length_penalty_mode": "linear"}
    method_settings = defaults

    def __init__(self, grader: Any = None, name: str | None = None, *, alpha: float | None = None,
                 ref: Any = None, mode: str | None = None) -> None:
        super().__init__(grader, name, length_alpha=alpha, length_ref=ref, length_penalty_mode=mode)

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:
        s["length_alpha"] = number_setting("length_alpha", s["length_alpha"], minimum=0.0)
        ref = s["length_ref"]
        if not (ref in ("max_completion_length", "batch") or (isinstance(ref, int) and not isinstance(ref, bool) and ref >= 1)):
            raise bad_setting("length_ref", f"must be 'max_completion_length', 'batch' or a positive integer, got {ref!r}")
        if s["length_penalty_mode"] not in PENALTY_MODES:
            raise bad_setting("length_penalty_mode", f"must be one of {list(PENALTY_MODES)}, got {s['length_penalty_mode']!r}")
        return s

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


@register_reward("l1_target_length")
class L1TargetLengthReward(GradedLengthReward):
    """``l1_target_length``: ``acc - alpha * |L_target - L| / L_target`` (L1, normalised)."""

    name = "l1_target_length"
    defaults = {"length_l1_alpha": 0.5, "length_target": None, "length_target_column": "target_length"}
    method_settings = defaults

    def __init__(self, grader: Any = None, name: str | None = None, *, alpha: float | None = None,
                 target: int | None = None, target_column: str | None = None) -> None:
        super().__init__(grader, name, length_l1_alpha=alpha, length_target=target, length_target_column=target_column)

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:
        s["length_l1_alpha"] = number_setting("length_l1_alpha", s["length_l1_alpha"], minimum=0.0)
        if s["length_target"] is not None:
            s["length_target"] = positive_int_setting("length_target", s["length_target"])
        col = s["length_target_column"]
        if not isinstance(col, str) or not col:
            raise bad_setting("length_target_column", f"must be a column name, got {col!r}")
        return s

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


@register_reward("thinkprune")
class ThinkPruneReward(GradedLengthReward):
    """``thinkprune``: accuracy, 0 past the (scheduled) cap, when truncated or without ``</think>``."""

    name = "thinkprune"
    defaults = {
        "thinkprune_cap": None,
        "thinkprune_schedule": None,
        "thinkprune_calls_per_step": 1,
        "thinkprune_start_step": 0,
        "thinkprune_require_think_close": True,
        "thinkprune_think_close": "</think>",
    }
    method_settings = defaults

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

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:
        if s["thinkprune_cap"] is not None:
            s["thinkprune_cap"] = positive_int_setting("thinkprune_cap", s["thinkprune_cap"])
        sched = s["thinkprune_schedule"]
        if sched is not None:
            if not isinstance(sched, (list, tuple)) or not sched:
                raise bad_setting("thinkprune_schedule", f"must be a non-empty list of [step, cap] pairs, got {sched!r}")
            pairs = []
            for item in sched:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise bad_setting("thinkprune_schedule", f"entries must be [step, cap] pairs, got {item!r}")
                step, cap = item
                if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                    raise bad_setting("thinkprune_schedule", f"step must be an integer >= 0, got {step!r}")
                pairs.append((step, positive_int_setting("thinkprune_schedule", cap)))
            steps = [p[0] for p in pairs]
            if steps != sorted(set(steps)):
                raise bad_setting("thinkprune_schedule", f"steps must be strictly increasing, got {steps}")
            s["thinkprune_schedule"] = pairs
        s["thinkprune_calls_per_step"] = positive_int_setting("thinkprune_calls_per_step", s["thinkprune_calls_per_step"])
        start = s["thinkprune_start_step"]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise bad_setting("thinkprune_start_step", f"must be an integer >= 0, got {start!r}")
        bool_setting("thinkprune_require_think_close", s["thinkprune_require_think_close"])
        if not isinstance(s["thinkprune_think_close"], str) or not s["thinkprune_think_close"]:
            raise bad_setting("thinkprune_think_close", f"must be a non-empty string, got {s['thinkprune_think_close']!r}")
        return s

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

