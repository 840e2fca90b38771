"""M-GRPO's rewards (arXiv 2511.13288): the planner's (main agent's) and the executor's.

- **Main reward** ``R_M = 0.1 * format_ok + 0.9 * correct``: ``format_ok`` = the planner's completion
  has a non-empty ``\\boxed{...}``; ``correct`` = that boxed answer equals the ground truth (as a
  number, else as text), so correct implies format_ok and ``R_M`` is 0, 0.1 or 1.
- **Executor reward** ``R_S = 0`` when the executor's own format is invalid (no single non-empty
  ``<result>``, or a cut episode: ``meta["executor_format_ok"]``), else
  ``R_S = w_main * R_M(parent) + w_local * r_local``, the parent term being 0.1 instead of 0 when the
  planner scored ``R_M = 0`` (MrlX's value; ``mgrpo_parent_zero_reward``), with ``r_local = meta["executor_r_local"]`` the
  verifiable score of its own result (1.0 when it equals the sub-task's exact value; a missing one
  counts 0). Defaults ``w_main = 1, w_local = 0``: the paper's executor inherits its planner's
  outcome (its credit is the whole system's success, which is what the planner's sub-task is for);
  ``r_local`` is a denser option where a task gives one, e.g. ``task:planner``.

The registered reward ``mgrpo_reward`` returns ``R_M`` for planner rows (``role == 0``) and ``R_S``
for executor rows, in one call over a round's completions: an executor row's parent is the planner
row with the same ``group_index`` and ``sub_group``; where that row is not in the call (decoupled
training: the executor process scores what it pulled from the store) ``meta["parent_main_reward"]``
is used. Settings (``method_kwargs``): :class:`MGRPORewardSettings` (``mgrpo_w_main``, ``mgrpo_w_local``).
``pop_meta()`` records ``mgrpo_format_ok`` / ``mgrpo_correct`` (planners) and
``parent_main_reward`` (executors) in each rollout's meta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rewards.answers import completion_text, extract_boxed
from rewards.hooks import RewardHooks
from rewards.math import ground_truths_from_columns
from rewards.registry import register_reward
from rewards.settings import MethodSettings, setting

MAIN_FORMAT_WEIGHT, MAIN_CORRECT_WEIGHT = 0.1, 0.9


@dataclass(frozen=True)
class MGRPORewardSettings(MethodSettings):
    """The executor reward's weights: ``R_S = w_main * R_M(parent) + w_local * r_local``."""

    w_main: float = setting("mgrpo_w_main", 1.0, "weight of the parent planner's R_M in R_S", minimum=0.0)
    w_local: float = setting("mgrpo_w_local", 0.0, "weight of the executor's own verifiable score in R_S", minimum=0.0)
    parent_zero: float = setting(
        "mgrpo_parent_zero_reward", 0.1,
        "R_S's parent term for a well-formatted executor whose planner scored R_M = 0 (no valid answer): MrlX's "
        "0.1 (0: the executor inherits the 0)", minimum=0.0)

    def check(self) -> None:
        if self.w_main == 0 and self.w_local == 0:
            raise self.bad("mgrpo_w_local", "mgrpo_w_main and mgrpo_w_local are both 0: executors get no reward")


def main_reward(format_ok: bool, correct: bool) -> float:
    """``R_M = 0.1 * format_ok + 0.9 * correct``; correct implies format_ok."""
    if correct and not format_ok:
        raise ValueError("a correct answer has a valid format (correct implies format_ok)")
    return MAIN_FORMAT_WEIGHT * float(format_ok) + MAIN_CORRECT_WEIGHT * float(correct)


def executor_reward(format_ok: bool, parent_main: float, r_local: float | None,
                    w_main: float = MGRPORewardSettings.w_main, w_local: float = MGRPORewardSettings.w_local,
                    parent_zero: float = MGRPORewardSettings.parent_zero) -> float:
    """``R_S = 0`` if the executor's format is invalid, else ``w_main * R_M(parent) + w_local * r_local``
    (``r_local`` None = no local score = 0), where a parent with ``R_M = 0`` (the planner gave no valid
    answer) counts ``parent_zero`` instead of ``w_main * 0``: MrlX gives such a well-formatted executor 0.1."""
    if not format_ok:
        return 0.0
    parent_term = parent_zero if float(parent_main) == 0.0 else w_main * float(parent_main)
    return parent_term + w_local * (0.0 if r_local is None else float(r_local))


def _same_answer(a: str, b: str) -> bool:
    a, b = a.strip(), b.strip()
    try:
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
    except ValueError:
        return a == b
    return math.isfinite(x) and abs(x - y) <= 1e-9 * max(1.0, abs(y))


def planner_outcome(text: str, ground_truth: Any) -> tuple[bool, bool]:
    """(format_ok, correct) of a planner completion: a non-empty ``\\boxed{}``, equal to the truth."""
    boxed = extract_boxed(text)
    ok = bool(boxed and boxed.strip())
    if not ok or ground_truth is None:
        return ok, False
    truths = ground_truth if isinstance(ground_truth, (list, tuple)) else [ground_truth]
    return ok, any(_same_answer(boxed, str(t)) for t in truths)


@register_reward("mgrpo_reward", settings=MGRPORewardSettings)
class MGRPOReward(RewardHooks):
    """``R_M`` for planner rows, ``R_S`` for executor rows (see the module docstring)."""

    def __init__(self, w_main: float = MGRPORewardSettings.w_main, w_local: float = MGRPORewardSettings.w_local,
                 parent_zero: float = MGRPORewardSettings.parent_zero) -> None:
        self.__name__ = "mgrpo_reward"
        self.w_main, self.w_local, self.parent_zero = float(w_main), float(w_local), float(parent_zero)
        self._meta: list[dict[str, Any]] = []

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        s = MGRPORewardSettings.from_kwargs(getattr(args, "method_kwargs", None) or {})
        self.w_main, self.w_local, self.parent_zero = s.w_main, s.w_local, s.parent_zero

    def __call__(self, prompts=None, completions=None, completion_ids=None, meta=None, **columns: Any) -> list[float]:
        completions = list(completions or [])
        n = len(completions)
        metas = list(meta) if meta is not None else [{} for _ in range(n)]
        gts = ground_truths_from_columns(n, columns)
        out: list[float] = [0.0] * n
        self._meta = [{} for _ in range(n)]
        parents: dict[tuple[Any, Any], float] = {}
        for i, m in enumerate(metas):
            if int(m.get("role", 0) or 0) != 0:
                continue
            ok, correct = planner_outcome(completion_text(completions[i]), gts[i])
            out[i] = main_reward(ok, correct)
            parents[(m.get("group_index"), m.get("sub_group"))] = out[i]
            self._meta[i] = {"mgrpo_format_ok": ok, "mgrpo_correct": correct}
        for i, m in enumerate(metas):
            if int(m.get("role", 0) or 0) == 0:
                continue
            key = (m.get("group_index"), m.get("sub_group"))
            parent = parents.get(key, m.get("parent_main_reward"))
            if parent is None:
                raise ValueError(f"executor completion {i}: no parent planner rollout {key} in the call and no "
                                 "meta['parent_main_reward']")
            out[i] = executor_reward(bool(m.get("executor_format_ok")), parent, m.get("executor_r_local"),
                                     self.w_main, self.w_local, self.parent_zero)
            self._meta[i] = {"parent_main_reward": float(parent)}
        return out

    def pop_meta(self) -> list[dict[str, Any]]:
        meta, self._meta = self._meta, []
        return meta


__all__ = ["MGRPOReward", "MGRPORewardSettings", "executor_reward", "main_reward", "planner_outcome"]
