"""Reward functions and the math grader.

Importing this package is cheap: sympy / math_verify load lazily (in grader workers).
``get_reward_func(name)`` resolves a registered name (a fresh object per call: see
:mod:`rewards.registry`) or a ``"module.path:function"`` string. ``register_reward`` adds one.

This package registers the method-independent rewards (accuracy, format). Method rewards
(``rewards.decs.reward``: ``decs_redundancy``; ``rewards.length.penalties``: ``length_penalty``,
``l1_target_length``, ``thinkprune``) register themselves when imported;
``rl.presets.load_methods()`` imports them (the registry never imports a method).
"""

from __future__ import annotations

from rewards.format import format_reward, think_format_reward
from rewards.math import (
    AccuracyReward,
    ChoiceAccuracyReward,
    GradeResult,
    MathGrader,
    accuracy_reward,
    choice_accuracy_reward,
    extract_answer,
    extract_boxed,
    extract_choice_letter,
    get_default_grader,
    verify_answer,
)
from rewards.registry import REWARDS, RewardEntry, get_reward_entry, get_reward_func, register_reward

register_reward("accuracy", factory=AccuracyReward)
register_reward("choice_accuracy", factory=ChoiceAccuracyReward)
register_reward("format")(format_reward)
register_reward("think_format")(think_format_reward)


__all__ = [
    "REWARDS",
    "RewardEntry",
    "get_reward_entry",
    "get_reward_func",
    "register_reward",
    "AccuracyReward",
    "ChoiceAccuracyReward",
    "GradeResult",
    "MathGrader",
    "accuracy_reward",
    "choice_accuracy_reward",
    "extract_answer",
    "extract_boxed",
    "extract_choice_letter",
    "format_reward",
    "get_default_grader",
    "think_format_reward",
    "verify_answer",
]
