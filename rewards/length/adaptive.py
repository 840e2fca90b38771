"""Length rewards whose shaping adapts to training as it goes, with their state in the checkpoint.

Each returns the *full* reward (correctness included) and replaces ``accuracy`` in ``reward_funcs``;
grading, lengths and groups as in :mod:`rewards.length.group_shaped`. What they learn from earlier
calls is kept through the checkpoint hooks of :class:`rewards.hooks.RewardHooks`
(``checkpoint_state`` / ``load_checkpoint_state``, per process), so a resumed run scores its next
completions exactly as the uninterrupted run would. docs/efficiency-methods.md has the sources.

- ``laser_d`` (:class:`LaserDReward`; LASER-D, arXiv 2505.15612): ``c_i + alpha * [correct and
  L_i <= L_T(bucket)]`` with ``c = 1`` correct / ``laser_wrong_reward`` wrong. A group's bucket
  comes from its solve rate ``p`` (easy ``p >= 2/3``, medium ``p >= 1/3``, else hard). Each bucket's
  target ``L_T`` is re-estimated every ``laser_update_every`` steps from the rollouts scored since
  the last estimate (the first call estimates from its own rollouts): the smallest candidate length
  ``L`` whose *expected correct responses* ``floor(coverage_b(L) * n_b)`` reach
  ``laser_expected_correct``, with ``coverage_b(L)`` the share of the bucket's completions no longer
  than ``L`` and ``n_b`` the fewest correct rollouts a group of the bucket has (``floor(2G/3)``,
  ``floor(G/3)``, 1); no candidate qualifies -> the budget.
- ``short_rl`` (:class:`ShortRLReward`; Short-RL, arXiv 2505.12284): ``c_i + w * lam_i`` for correct
  completions, only while the call's accuracy is at least the best accuracy seen so far minus
  ``short_rl_acc_tolerance``; ``lam_i = 0.5`` within ``short_rl_length_tolerance`` tokens of the
  group's shortest correct length, else Kimi's ``0.5 - (L_i - L_min) / (L_max - L_min)`` over the
  group's correct lengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from rewards.length.base import BudgetedLengthReward
from rewards.length.group_shaped import kimi_lambda
from rewards.registry import register_reward
from rewards.settings import MethodSettings, setting

__all__ = ["BUCKETS", "LaserDReward", "LaserDSettings", "ShortRLReward", "ShortRLSettings", "laser_target"]

BUCKETS = ("easy", "medium", "hard")
STATE_VERSION = 1


def _thresholds(value: Any) -> list[int] | None:
    """``null`` or a non-empty list of strictly increasing positive token counts."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"must be null or a non-empty list of token counts, got {value!r}")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise ValueError(f"must hold positive integers, got {value!r}")
    if list(value) != sorted(set(value)):
        raise ValueError(f"must be strictly increasing, got {list(value)}")
    return list(value)


def laser_target(covered: list[int], total: int, thresholds: list[int], least_correct: int, expected: int,
                 budget: int) -> int:
    """The smallest threshold ``L`` with ``floor(covered(L) / total * least_correct) >= expected``, else the budget."""
    for count, length in zip(covered, thresholds):
        if total > 0 and (count * least_correct) // total >= expected:
            return length
    return budget


class _Adaptive(BudgetedLengthReward):
    """Shared: metrics that are set (not counted) and the state version check."""

    def _set(self, key: str, value: float) -> None:
        with self._mlock:
            self._metrics[key] = float(value)

    @staticmethod
    def _check_version(state: Mapping[str, Any], what: str) -> None:
        if state.get("version", STATE_VERSION) != STATE_VERSION:
            raise ValueError(f"{what} state version {state.get('version')!r} is not {STATE_VERSION}")


# --- LASER-D ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaserDSettings(MethodSettings):
    alpha: float = setting("laser_alpha", 0.5, "bonus of a correct completion within its bucket's target length",
                           minimum=0.0)
    wrong_reward: float = setting("laser_wrong_reward", -0.5, "a wrong answer's correctness term (the authors' code)")
    update_every: int = setting("laser_update_every", 20, "optimizer steps between two estimates of the targets",
                                minimum=1)
    thresholds: Any = setting("laser_thresholds", None, "candidate target lengths, increasing (null: 16 equal "
                              "steps up to the budget, the paper's 1024..16384 grid scaled)", parse=_thresholds)
    expected_correct: int = setting("laser_expected_correct", 1, "expected correct responses a target must keep",
                                    minimum=1)


@register_reward("laser_d")
class LaserDReward(_Adaptive):
    """``laser_d``: correctness plus a bonus within a per-difficulty target length, re-estimated in training."""

    name = "laser_d"
    method_settings = LaserDSettings

    def __init__(self, grader: Any = None, name: str | None = None, *, alpha: float | None = None,
                 wrong_reward: float | None = None, update_every: int | None = None, thresholds: Any = None,
                 expected_correct: int | None = None) -> None:
        super().__init__(grader, name, laser_alpha=alpha, laser_wrong_reward=wrong_reward,
                         laser_update_every=update_every, laser_thresholds=thresholds,
                         laser_expected_correct=expected_correct)
        self.group_size: int | None = None
        self.step = 0
        self._reset()

    def _reset(self) -> None:
        self.thresholds: list[int] | None = None  # resolved at the first call (they need the budget)
        self.budget: int | None = None
        self.targets: dict[str, int] | None = None
        self.estimated_at: int | None = None
        self.window = self._empty_window(0)

    @staticmethod
    def _empty_window(k: int) -> dict[str, Any]:
        return {"largest_group": 0, **{b: {"total": 0, "covered": [0] * k} for b in BUCKETS}}

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        super().setup(tokenizer=tokenizer, args=args)
        g = getattr(args, "num_generations", None)
        self.group_size = g if isinstance(g, int) and not isinstance(g, bool) and g > 0 else None
        self._reset()

    def set_step(self, step: int) -> None:
        self.step = int(step)

    # --- buckets and targets -------------------------------------------------------------------------------
    @staticmethod
    def bucket(k: int, g: int, estimating: bool = False) -> str:
        """A group with ``k`` of ``g`` correct: easy ``k/g >= 2/3``, medium ``>= 1/3``, else hard. When
        ``estimating`` the bounds are strict (the authors' monitor puts 1/3 and 2/3 in the lower bucket)."""
        above = (lambda a, b: a > b) if estimating else (lambda a, b: a >= b)
        return "easy" if above(3 * k, 2 * g) else "medium" if above(3 * k, g) else "hard"

    def _resolve_thresholds(self, lengths: list[int]) -> None:
        if self.thresholds is not None:
            return
        self.budget = self._limit(None, lengths)
        given = self.settings["laser_thresholds"]
        grid = {max(1, math.ceil(self.budget * j / 16)) for j in range(1, 17)}  # 16 steps up to the budget
        self.thresholds = list(given) if given else sorted(grid)
        self.window = self._empty_window(len(self.thresholds))

    def _estimate(self) -> None:
        w, thresholds = self.window, self.thresholds or []
        g = self.group_size or w["largest_group"]
        least = {"easy": (2 * g) // 3, "medium": g // 3, "hard": 1}
        self.targets = {b: laser_target(w[b]["covered"], w[b]["total"], thresholds, least[b],
                                        self.settings["laser_expected_correct"], int(self.budget or thresholds[-1]))
                        for b in BUCKETS}
        self.estimated_at = self.step
        self.window = self._empty_window(len(thresholds))

    def _observe(self, groups: dict, lengths: list[int], correct: list) -> None:
        w = self.window
        for rows in groups.values():
            b = self.bucket(sum(bool(correct[i]) for i in rows), len(rows), estimating=True)
            w["largest_group"] = max(w["largest_group"], len(rows))
            w[b]["total"] += len(rows)
            for j, t in enumerate(self.thresholds or []):
                w[b]["covered"][j] += sum(lengths[i] <= t for i in rows)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        n, lengths, correct, groups = self._graded(prompts, completions, completion_ids, columns)
        if not groups:
            return [None] * n
        self._resolve_thresholds(lengths)
        self._observe(groups, lengths, correct)
        if self.targets is None or self.step >= (self.estimated_at or 0) + self.settings["laser_update_every"]:
            self._estimate()
        targets = self.targets or {}
        s = self.settings
        out: list[float | None] = [None] * n
        for rows in groups.values():
            target = targets[self.bucket(sum(bool(correct[i]) for i in rows), len(rows))]
            for i in rows:
                within = bool(correct[i]) and lengths[i] <= target
                out[i] = (1.0 if correct[i] else s["laser_wrong_reward"]) + (s["laser_alpha"] if within else 0.0)
                self._count("laser_d/bonus", int(within))
        for b in BUCKETS:
            self._set(f"laser_d/target_{b}", targets[b])
        return out

    # --- resume ---------------------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        if self.thresholds is None:
            return {}
        return {"version": STATE_VERSION, "thresholds": list(self.thresholds), "budget": self.budget,
                "targets": dict(self.targets) if self.targets else None, "estimated_at": self.estimated_at,
                "window": {"largest_group": self.window["largest_group"],
                           **{b: {"total": self.window[b]["total"], "covered": list(self.window[b]["covered"])}
                              for b in BUCKETS}}}

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        self._check_version(state, "laser_d")
        self.thresholds = [int(t) for t in state["thresholds"]]
        self.budget = None if state["budget"] is None else int(state["budget"])
        self.targets = None if state["targets"] is None else {b: int(state["targets"][b]) for b in BUCKETS}
        self.estimated_at = None if state["estimated_at"] is None else int(state["estimated_at"])
        w = state["window"]
        self.window = {"largest_group": int(w["largest_group"]),
                       **{b: {"total": int(w[b]["total"]), "covered": [int(c) for c in w[b]["covered"]]}
                          for b in BUCKETS}}


# --- Short-RL ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShortRLSettings(MethodSettings):
    length_tolerance: int = setting("short_rl_length_tolerance", 100, "tokens above the group's shortest correct "
                                    "length that keep the full length reward (the paper's math runs: 100)", minimum=0)
    acc_tolerance: float = setting("short_rl_acc_tolerance", 0.05, "the length reward is on while the call's accuracy "
                                   "is at least the best seen minus this", minimum=0.0)
    weight: float = setting("short_rl_weight", 1.0, "weight of the length reward (the authors' code adds it "
                            "unweighted)", minimum=0.0)


@register_reward("short_rl")
class ShortRLReward(_Adaptive):
    """``short_rl``: correctness plus a Kimi-style length reward on correct completions, on while accuracy holds."""

    name = "short_rl"
    method_settings = ShortRLSettings

    def __init__(self, grader: Any = None, name: str | None = None, *, length_tolerance: int | None = None,
                 acc_tolerance: float | None = None, weight: float | None = None) -> None:
        super().__init__(grader, name, short_rl_length_tolerance=length_tolerance,
                         short_rl_acc_tolerance=acc_tolerance, short_rl_weight=weight)
        self.max_accuracy: float | None = None

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        super().setup(tokenizer=tokenizer, args=args)
        self.max_accuracy = None

    def length_reward(self, length: int, shortest: int, longest: int) -> float:
        """``0.5`` within the tolerance of the shortest correct length, else Kimi's lambda."""
        if length <= shortest + self.settings["short_rl_length_tolerance"]:
            return 0.5
        return kimi_lambda(length, shortest, longest)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        n, lengths, correct, groups = self._graded(prompts, completions, completion_ids, columns)
        graded = [bool(c) for c in correct if c is not None]
        if not graded:
            return [None] * n
        acc = sum(graded) / len(graded)
        self.max_accuracy = acc if self.max_accuracy is None else max(self.max_accuracy, acc)
        on = acc >= self.max_accuracy - self.settings["short_rl_acc_tolerance"]
        self._set("short_rl/on", float(on))
        self._set("short_rl/max_accuracy", self.max_accuracy)
        w = self.settings["short_rl_weight"] if on else 0.0
        out: list[float | None] = [None] * n
        for rows in groups.values():
            good = [lengths[i] for i in rows if correct[i]]
            for i in rows:
                if correct[i]:
                    out[i] = 1.0 + w * self.length_reward(lengths[i], min(good), max(good))
                else:
                    out[i] = 0.0
        return out

    # --- resume ---------------------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {} if self.max_accuracy is None else {"version": STATE_VERSION, "max_accuracy": self.max_accuracy}

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        self._check_version(state, "short_rl")
        self.max_accuracy = float(state["max_accuracy"])
