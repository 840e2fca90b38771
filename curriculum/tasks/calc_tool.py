"""``task:calc_tool``: arithmetic with a calculator tool that the SFT teacher calls indiscriminately.

Each problem is ``Compute: a<op>b`` with ``op`` in ``+`` / ``*``:

* **easy** (``1 - hard_fraction`` of the rows): one-digit operands. There are 162 such facts; the
  tiny model learns them by heart in SFT, so the calculator is not needed (its remaining errors on
  them are mostly a misread operator, ``5+6`` stated as ``5*6=30``, which a checking call copies and
  does not fix: docs/hdpo.md);
* **hard**: two-digit operands (``10..99``). Two-digit sums and products written most-significant
  digit first are beyond what the tiny model learns in minutes (``../shared/NOTES.md``), so an
  answer without the calculator is almost always wrong.

The teacher calls the calculator on about every problem (``tool_rate``, default 0.85, the same on
easy and hard rows) and answers directly otherwise. Both behaviours are in the SFT policy, on both
kinds of problem, and which one pays depends on the problem: on easy rows the direct answer is as
right as the call and one round-trip cheaper; on hard rows it is wrong. That is the RL headroom a
conditional tool-efficiency method needs: choosing among behaviours the model already has, per
problem, without a new fact (the principle of :mod:`curriculum.tasks.slips`).

A tool trace is a conversation (``messages``, with the calculator's JSON schema in ``tools``, the
layout TRL's SFT uses for tool calling). On a hard problem the teacher calls to compute::

    assistant: <think>\\nLet me use the calculator.\\n</think>\\n<tool_call>{"name": "calculator", ...}</tool_call>
    tool:      1776
    assistant: \\boxed{1776}

On an easy one it states the fact and calls anyway, to check it (``<think>\\n7*8=56\\nLet me check
with the calculator.\\n</think>\\n<tool_call>...``): the redundant verification call that a
tool-efficiency method should remove. A direct trace is one assistant turn
``<think>\\n7*8=56\\n</think>\\n\\boxed{56}`` (on a hard problem the teacher writes the true product, which
the tiny model cannot reproduce). Every easy trace states its fact, so the model learns the 162
facts from three quarters of the data: with the fact in the direct traces only (11% of rows), 1,200
SFT steps left direct answers 2% right even on easy problems, and no method could drop a call
without losing the answer (docs/hdpo.md).

RL rollouts run the same conversation through ``environment: tools`` (:data:`ENVIRONMENT`), whose
rendering of the prompt equals the SFT rendering of it (tested).

Splits: easy problems come from the whole (small) fact space in both splits; hard problems are
split by a hash of the problem (``test_fraction``), so held-out hard problems were never seen.
``extra_info`` holds ``needs_tool`` (the hard rows), ``teacher_tool_calls``, ``a``, ``b``, ``op``,
``split``, ``index`` and ``problem``.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

__all__ = [
    "ENVIRONMENT",
    "CHECK_LINE",
    "TOOL_OPENING_LINE",
    "calc_tool_schema",
    "generate_examples",
    "make_calc_tool_dataset",
]

TOOL_OPENING_LINE = "Let me use the calculator."
CHECK_LINE = "Let me check with the calculator."
# the rollout environment of this task (GRPOConfig fields): the calculator, one call is enough,
# and a third turn leaves room for a model that calls twice
ENVIRONMENT: dict[str, Any] = {"environment": "tools", "environment_kwargs": {"tools": ["calculator"]}, "max_turns": 3}
_OPS = ("+", "*")


def calc_tool_schema() -> dict[str, Any]:
    """The calculator's JSON schema, exactly as the tool environment renders it."""
    from rollout.tools import calculator, tool_schema

    return json.loads(json.dumps(tool_schema(calculator)))


def _in_test(problem: str, test_fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(f"calc_tool:{problem}".encode()).digest()[:8], "big")
    return (h / 2**64) < test_fraction


def _value(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a * b


def _call_text(expression: str) -> str:
    return "<tool_call>" + json.dumps({"name": "calculator", "arguments": {"expression": expression}}) + "</tool_call>"


def generate_examples(
    num_examples: int,
    seed: int = 0,
    split: str = "train",
    *,
    hard_fraction: float = 0.25,
    tool_rate: float = 0.85,
    test_fraction: float = 0.2,
) -> list[dict[str, Any]]:
    """Rows of the task (see the module docstring); deterministic in ``(seed, split)``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    for name, v in (("hard_fraction", hard_fraction), ("tool_rate", tool_rate), ("test_fraction", test_fraction)):
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    rng = random.Random(f"calc_tool:{seed}:{split}")
    schema = calc_tool_schema()
    rows: list[dict[str, Any]] = []
    while len(rows) < num_examples:
        hard = rng.random() < hard_fraction
        uses_tool = rng.random() < tool_rate
        lo, hi = (10, 99) if hard else (1, 9)
        while True:  # a hard problem is redrawn until it falls in this split (the shares stay exact)
            a, b, op = rng.randint(lo, hi), rng.randint(lo, hi), rng.choice(_OPS)
            problem = f"{a}{op}{b}"
            if not hard or _in_test(problem, test_fraction) == (split == "test"):
                break
        value = _value(a, op, b)
        prompt = [{"role": "user", "content": f"Compute: {problem}"}]
        if uses_tool:
            # easy: the teacher knows the fact and calls anyway, to check it; hard: it calls to compute
            think = TOOL_OPENING_LINE if hard else f"{problem}={value}\n{CHECK_LINE}"
            turns = [
                {"role": "assistant", "content": f"<think>\n{think}\n</think>\n{_call_text(problem)}"},
                {"role": "tool", "content": str(value)},
                {"role": "assistant", "content": f"\\boxed{{{value}}}"},
            ]
        else:
            turns = [{"role": "assistant", "content": f"<think>\n{problem}={value}\n</think>\n\\boxed{{{value}}}"}]
        rows.append({
            "prompt": prompt,
            "messages": prompt + turns,
            "tools": [schema],
            "reward_model": {"ground_truth": str(value), "style": "rule"},
            "data_source": "parsimony/calc_tool",
            "extra_info": {
                "needs_tool": hard, "teacher_tool_calls": int(uses_tool), "a": a, "b": b, "op": op,
                "split": split, "index": len(rows), "problem": problem,
            },
        })
    return rows


def make_calc_tool_dataset(num_examples: int, seed: int = 0, split: str = "train", **kwargs: Any):
    """Seeded ``datasets.Dataset`` of :func:`generate_examples` rows (options: ``hard_fraction``,
    ``tool_rate``, ``test_fraction``)."""
    import datasets

    return datasets.Dataset.from_list(generate_examples(num_examples, seed, split, **kwargs))

