"""What every DECS NRP judge speaks: the question (:class:`JudgeItem`) and the batch protocol
(:class:`Judge`). Both judges (:mod:`rewards.decs.rule_judge`, :mod:`rewards.decs.judges`) and the
reward (:mod:`rewards.decs.reward`) import them from here; :mod:`rewards.decs.judges` re-exports them.

A judge may also carry ``preferred_chunking`` (``"lines"`` or ``"paper"``): the chunking its verdicts are
meant for, which ``decs_chunking: auto`` follows (:func:`rewards.decs.nrp.resolve_chunking`); without it,
``lines``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Judge", "JudgeItem"]


@dataclass(frozen=True)
class JudgeItem:
    """One question to a judge: does ``segment`` present the correct final answer to ``problem``?"""

    problem: str
    segment: str
    ground_truth: str | list[str]  # a list: accepted answers, any of them (rewards.answers.normalize_ground_truth)


@runtime_checkable
class Judge(Protocol):
    def judge(self, items: list[JudgeItem]) -> list[bool | None]: ...

    def pop_stats(self) -> dict[str, float]: ...
