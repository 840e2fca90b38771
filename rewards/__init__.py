"""Reward functions and the math grader.

Importing this package is cheap: sympy / math_verify load lazily (in grader workers).
``get_reward_func(name)`` resolves a registered name or a ``"module.path:function"`` string.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from rewards.decs import DECSRedundancyReward, decs_redundancy
from rewards.format import format_reward, think_format_reward
from rewards.length import l1_target_length, length_penalty, thinkprune
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

REWARD_FUNCS: dict[str, Callable[..., list]] = {
    "accuracy": accuracy_reward,
    "choice_accuracy": choice_accuracy_reward,
    "decs_redundancy": decs_redundancy,
    "format": format_reward,
    "l1_target_length": l1_target_length,
    "length_penalty": length_penalty,
    "think_format": think_format_reward,
    "thinkprune": thinkprune,
}


def get_reward_func(name: str) -> Callable[..., Any]:
    """A registered reward function (see ``REWARD_FUNCS``) or ``"module.path:attr"``."""
    if not isinstance(name, str):
        raise ValueError(f"reward function name must be a string, got {type(name).__name__}")
    if name in REWARD_FUNCS:
        return REWARD_FUNCS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"cannot import module {module_name!r} for reward function {name!r}: {e}") from e
        for part in attr.split("."):
            if not part or not hasattr(obj, part):
                raise ValueError(f"module {module_name!r} has no attribute {attr!r} (reward function {name!r})")
            obj = getattr(obj, part)
        if not callable(obj):
            raise ValueError(f"reward function {name!r} is not callable")
        return obj
    known = ", ".join(sorted(REWARD_FUNCS))
    raise ValueError(f"unknown reward function {name!r}; known: {known}; or use 'module.path:function'")


__all__ = [
    "REWARD_FUNCS",
    "get_reward_func",
    "AccuracyReward",
    "ChoiceAccuracyReward",
    "DECSRedundancyReward",
    "GradeResult",
    "MathGrader",
    "accuracy_reward",
    "choice_accuracy_reward",
    "decs_redundancy",
    "extract_answer",
    "extract_boxed",
    "extract_choice_letter",
    "format_reward",
    "get_default_grader",
    "think_format_reward",
    "verify_answer",
]
