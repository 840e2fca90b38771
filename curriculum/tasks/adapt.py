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

:func:`mix_nothink` does the same to any task whose traces are ``<think>`` ... ``</think>`` then the answer: it is
the ``nothink_rate`` option of :func:`curriculum.tasks.get_task_dataset` (``task:explore`` with
``dataset_kwargs: {"nothink_rate": 0.25}``), the start ``parsimony compare`` trains for AdaptThink on any task.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from curriculum.tasks.overthink import generate_examples

__all__ = ["NOTHINK_RATE", "THINK_END", "make_overthink_adapt_dataset", "mix_nothink", "nothink_trace"]

THINK_START = "<think>"
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
    return mix_nothink(rows, lambda info: _rate(nothink_rate, info["num_ops"]), f"overthink_adapt/{seed}/{split}")


def mix_nothink(rows: list[dict[str, Any]], nothink_rate: float | Callable[[dict], float], stream: str,
                task: str = "this task") -> list[dict[str, Any]]:
    """Replace a ``nothink_rate`` share of ``rows``' Thinking traces by :func:`nothink_trace` (in place; returned):
    each row draws from the seeded stream ``stream`` in order, and ``extra_info.nothink`` records its mode.
    ``nothink_rate`` may be a function of the row's ``extra_info``. A trace that does not open with ``<think>``
    is an error naming ``task``: the mix is for the Thinking format only."""
    if isinstance(nothink_rate, Mapping):
        raise ValueError(f"nothink_rate: a rate per number of operations is overthink_adapt's option; {task} takes one "
                         f"share in [0, 1], got {nothink_rate!r}")
    rate_of = nothink_rate if callable(nothink_rate) else (lambda info, r=_rate(nothink_rate, 0): r)
    rng = random.Random(stream)
    for row in rows:
        completion = row.get("completion") or ""
        text = completion if isinstance(completion, str) else completion[-1]["content"]
        if not text.lstrip().startswith(THINK_START):
            raise ValueError(f"nothink_rate: {task}'s traces must open with {THINK_START} (row {row['extra_info'].get('index')}"
                             f" opens with {text[:30]!r}); the NoThinking mix is for reasoning-format tasks")
        info = row["extra_info"]
        nothink = rng.random() < rate_of(info)
        if nothink:
            trace = nothink_trace(row["reward_model"]["ground_truth"])
            row["completion"] = trace if isinstance(completion, str) else [{"role": "assistant", "content": trace}]
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
