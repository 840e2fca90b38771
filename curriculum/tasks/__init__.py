"""Built-in synthetic tasks: ``get_task_dataset(name, num_examples, seed, split, **kwargs)``.

Each registry entry maps a task name to a builder
``builder(num_examples, seed=..., split=..., **kwargs) -> datasets.Dataset`` producing rows in
the shared-benchmark layout (``prompt``, ``reward_model``, ``data_source``, ``extra_info``,
plus ``completion`` where the task has SFT traces). Adding a task is one entry in ``TASKS``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from curriculum.tasks.overthink import make_overthink_dataset

TaskBuilder = Callable[..., Any]

TASKS: dict[str, TaskBuilder] = {
    # overthinking arithmetic, redundant re-verification chunks k ~ U{0..3}
    "overthink": make_overthink_dataset,
    # the same problems with heavier redundancy (k mostly 1-4)
    "overthink_heavy": partial(make_overthink_dataset, redundancy="heavy"),
}


def get_task_dataset(name: str, num_examples: int, seed: int = 0, split: str = "train", **kwargs: Any):
    """Build ``num_examples`` rows of the task ``name`` (seeded, deterministic)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](num_examples, seed=seed, split=split, **kwargs)


__all__ = ["TASKS", "get_task_dataset"]
