"""The ``overthink_adapt`` task: overthinking arithmetic whose teacher sometimes answers without thinking.

AdaptThink (arXiv 2505.13417) needs a start model that can answer in both modes: *Thinking*
(``<think>`` ... ``</think>`` then the answer) and *NoThinking* (the completion opens with ``</think>`` and answers
at once). The rows are :mod:`curriculum.tasks.overthink`'s, with one to three operations by default (a one-step
problem can be answered at a glance, a three-step one hardly), and a share ``nothink_rate`` of the traces
replaced by the NoThinking trace::

    </think>
    \\boxed{9}

The teacher picks the mode at random, whatever the difficulty (a rate per number of operations is accepted
too), so the SFT start is not adaptive yet: choosing the mode by difficulty is what RL has to learn. The mode
of each row is in ``extra_info.nothink``. The other tasks' rows are untouched: the rows are drawn by
:func:`curriculum.tasks.overthink.generate_examples` with the same seeds, and the modes by a random stream of
their own.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from curriculum.tasks.overthink import generate_examples

__all__ = ["NOTHINK_RATE", "THINK_END", "make_overthink_adapt_dataset", "nothink_trace"]

THINK_END = "</think>"
NOTHINK_RATE = 0.25


def nothink_trace(answer: int | str) -> str:
    """The NoThinking SFT completion: the thinking block closed at once, then the boxed answer."""
    return f"{THINK_END}\n\\boxed{{{answer}}}"


def _rate(nothink_rate: float | Mapping[Any, float], num_ops: int) -> float:
    if isinstance(nothink_rate, Mapping):
        rate = nothink_rate.get(num_ops, nothink_rate.get(str(num_ops), 0.0))
    else:
        rate = nothink_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"nothink_rate must be in [0, 1] (or a {{num_ops: rate}} mapping), got {nothink_rate!r}")
    return float(rate)


def generate_adapt_examples(num_examples: int, seed: int = 0, split: str = "train",
                            nothink_rate: float | Mapping[Any, float] = NOTHINK_RATE, min_ops: int = 1, max_ops: int = 3,
                            **overthink_kwargs: Any) -> list[dict[str, Any]]:
    """The rows of :func:`make_overthink_adapt_dataset` as plain dicts."""
    rows = generate_examples(num_examples, seed, split, min_ops=min_ops, max_ops=max_ops, **overthink_kwargs)
    rng = random.Random(f"overthink_adapt/{seed}/{split}")
    for row in rows:
        info = row["extra_info"]
        nothink = rng.random() < _rate(nothink_rate, info["num_ops"])
        if nothink:
            row["completion"] = [{"role": "assistant", "content": nothink_trace(row["reward_model"]["ground_truth"])}]
        info["nothink"] = nothink
    return rows


def make_overthink_adapt_dataset(num_examples: int, seed: int = 0, split: str = "train",
                                 nothink_rate: float | Mapping[Any, float] = NOTHINK_RATE, min_ops: int = 1,
                                 max_ops: int = 3, **overthink_kwargs: Any):
    """Seeded ``datasets.Dataset``: overthink's rows (1-3 operations by default; its other options pass through,
    e.g. ``redundancy``) with a ``nothink_rate`` share of NoThinking traces and ``extra_info.nothink``."""
    import datasets

    return datasets.Dataset.from_list(generate_adapt_examples(num_examples, seed, split, nothink_rate, min_ops, max_ops,
                                                              **overthink_kwargs))
