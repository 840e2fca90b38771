"""``task:planner``: compound arithmetic for a planner that delegates to an executor (M-GRPO).

Each problem is a sum of products, ``Compute: a1*b1+a2*b2(+a3*b3)`` with ``a`` in 2..9 and ``b`` in
11..29: products and sums of two- and three-digit numbers, beyond what the tiny model computes by
itself (``../shared/NOTES.md``) but exact with the calculator. The sub-problems are the products and
the final sum; each has its own ground truth (``extra_info.sub_tasks`` / ``sub_answers``), so an
executor's result has a verifiable local score ``r_local``.

The teacher's traces, one conversation per role (``messages`` with the role's system prompt and, with
``tool_schemas=True``, ``tools`` = the role's JSON schemas; rendered as the episodes of
:data:`ENVIRONMENT` render them):

- **planner**: one ``executor`` call per product (``{"task": "7*23"}``), then one for the sum of the
  results (``{"task": "161+70"}``), then ``\\boxed{sum}``. With probability ``planner_slip`` it skips
  one product (the sum then misses a term: a wrong answer);
- **executor**: a calculator call on its task, then ``<result>value</result>``. With probability
  ``executor_slip`` it answers at once, off by 1 or 2 (a wrong result);
- **single** (the single-agent baseline): one model does everything with the calculator: a call
  per product, one for the sum, then the box; it skips a product at the planner's slip rate. With
  ``single_guesses`` it also guesses where the executor's teacher does (same draws): a product written
  inline off by 1-2 instead of a call, or a guessed sum boxed without one.

The slips are the RL headroom (:mod:`curriculum.tasks.slips`): the SFT policy has both behaviours
(delegate every term, or skip one; call the calculator, or guess), and which one pays is what the
rewards teach: the planner's ``R_M`` and the executor's ``R_S`` (its parent's outcome, or ``r_local``).

``role`` chooses the rows: ``planner`` (the RL rows: ``prompt``, ``reward_model``, ``messages``),
``executor`` (one row per sub-task of the same problems: ``prompt`` is the task, ``messages`` the
executor's trace), ``sft`` (each planner row followed by its executor rows: the shared model's SFT
set) or ``single``. Problems are split train/test by a hash of the problem (``test_fraction``).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

__all__ = ["ENVIRONMENT", "SINGLE_ENVIRONMENT", "generate_examples", "make_planner_dataset"]

ROLES = ("planner", "executor", "sft", "single")
# the rollout environment of the multi-agent runs (GRPOConfig fields): 3 products + the sum + the answer.
# No tools block in the prompts (tool_schemas False, as the rows' ``tool_schemas`` default): the JSON
# schemas take ~300 tokens of the tiny model's 512 positions; without them a planner episode is ~460
# tokens at most (prompt ~130 + 4 calls and the box ~330), an executor's ~200, a single agent's ~420.
ENVIRONMENT: dict[str, Any] = {
    "environment": "planner",
    "environment_kwargs": {"executor_tools": ["calculator"], "executor_max_turns": 3, "max_calls": 6,
                           "tool_schemas": False, "executor_tool_schemas": False},
    "max_turns": 6,
}
SINGLE_ENVIRONMENT: dict[str, Any] = {"environment": "tools", "environment_kwargs": {"tools": ["calculator"], "tool_schemas": False},
                                      "max_turns": 6}


def tool_call_text(name: str, **arguments: Any) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def _schemas() -> dict[str, Any]:
    from rollout.mgrpo.agents import executor
    from rollout.tools import calculator, tool_schema

    return {k: json.loads(json.dumps(tool_schema(f))) for k, f in (("executor", executor), ("calculator", calculator))}


def check_options(split: str, role: str, planner_slip: float, executor_slip: float, test_fraction: float,
                  terms: tuple[int, ...]) -> tuple[int, ...]:
    """The planner/executor tasks' shared options, checked (a ValueError naming the option); returns ``terms``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")
    for name, v in (("planner_slip", planner_slip), ("executor_slip", executor_slip)):
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    terms = tuple(int(t) for t in terms)
    if not terms or min(terms) < 2:
        raise ValueError(f"terms must be counts >= 2, got {terms!r}")
    return terms


def _in_test(problem: str, test_fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(f"planner:{problem}".encode()).digest()[:8], "big")
    return (h / 2**64) < test_fraction


def _executor_messages(task: str, value: int, slip: bool, off: int, system: str | None) -> list[dict[str, Any]]:
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": task}]
    if slip:
        return msgs + [{"role": "assistant", "content": f"<result>{value + off}</result>"}]
    return msgs + [
        {"role": "assistant", "content": tool_call_text("calculator", expression=task)},
        {"role": "tool", "content": str(value)},
        {"role": "assistant", "content": f"<result>{value}</result>"},
    ]


def generate_examples(
    num_examples: int,
    seed: int = 0,
    split: str = "train",
    *,
    role: str = "planner",
    terms: tuple[int, ...] = (2, 3),
    planner_slip: float = 0.2,
    executor_slip: float = 0.2,
    test_fraction: float = 0.2,
    tool_schemas: bool = False,
    single_guesses: bool = False,
) -> list[dict[str, Any]]:
    """``num_examples`` problems' rows for ``role`` (see the module docstring); deterministic in
    ``(seed, split)``: the same problems and slips whatever the role. ``tool_schemas``: the rows carry
    ``tools`` (the role's JSON schemas, rendered as a tools block); False (the default, as in
    :data:`ENVIRONMENT`) renders none, to fit the tiny model's 512 positions. ``single_guesses`` (``single``
    rows): the single agent's teacher also guesses, on the same draws as the executor's teacher: a guessed
    product is written inline (``7*23=163``) before its next turn instead of a calculator call, a guessed sum
    is boxed off by 1-2 without a call; False (the default): it calls the calculator every time."""
    from rollout.mgrpo.agents import EXECUTOR_SYSTEM_PROMPT, PLANNER_SYSTEM_PROMPT

    terms = check_options(split, role, planner_slip, executor_slip, test_fraction, terms)
    rng = random.Random(f"planner:{seed}:{split}")
    schemas = _schemas()
    tools = (lambda name: {"tools": [schemas[name]]}) if tool_schemas else (lambda name: {})
    rows: list[dict[str, Any]] = []
    for index in range(num_examples):
        k = rng.choice(terms)
        while True:
            pairs = [(rng.randint(2, 9), rng.randint(11, 29)) for _ in range(k)]
            problem = "+".join(f"{a}*{b}" for a, b in pairs)
            if _in_test(problem, test_fraction) == (split == "test"):
                break
        products = [a * b for a, b in pairs]
        total = sum(products)
        skip = rng.randrange(k) if rng.random() < planner_slip else None
        used = [i for i in range(k) if i != skip]
        slips = [rng.random() < executor_slip for _ in range(len(used) + 1)]
        offs = [rng.choice((-2, -1, 1, 2)) for _ in range(len(used) + 1)]
        single = role == "single"  # one model with the calculator
        if single and not single_guesses:  # it calls the calculator every time: no executor slips
            slips = [False] * len(slips)
        # each call's task and exact value, and what it returns in the trace (a slipped executor's result)
        calls = [(f"{pairs[i][0]}*{pairs[i][1]}", products[i]) for i in used]
        got = [v + offs[j] if slips[j] else v for j, (_, v) in enumerate(calls)]
        if len(used) >= 2:  # the sum of the results the planner got (one used term: it is the answer)
            sum_task = "+".join(map(str, got))
            calls.append((sum_task, sum(got)))
            got.append(sum(got) + offs[-1] if slips[-1] else sum(got))
        answer = got[-1]
        prompt = [{"role": "user", "content": f"Compute: {problem}"}]
        info = {"problem": problem, "terms": k, "sub_tasks": [f"{a}*{b}" for a, b in pairs] + ["+".join(map(str, products))],
                "sub_answers": [str(v) for v in products + [total]], "teacher_skipped_term": skip is not None,
                "teacher_executor_slips": sum(slips[: len(calls)]), "teacher_answer": str(answer),
                "split": split, "index": index}
        base = {"reward_model": {"ground_truth": str(total), "style": "rule"}, "data_source": "parsimony/planner",
                "extra_info": info}
        plan_turns: list[dict[str, Any]] = []
        inline = ""  # the single agent's guesses, written before its next turn
        for j, ((task, _), result) in enumerate(zip(calls, got)):
            if single and slips[j]:
                inline += f"{task}={result}\n"
                continue
            call = tool_call_text("calculator", expression=task) if single else tool_call_text("executor", task=task)
            plan_turns += [{"role": "assistant", "content": inline + call}, {"role": "tool", "content": str(result)}]
            inline = ""
        plan_turns.append({"role": "assistant", "content": f"{inline}\\boxed{{{answer}}}"})
        if role == "single":
            rows.append({"prompt": prompt, "messages": prompt + plan_turns, **tools("calculator"), **base})
            continue
        planner_row = {"prompt": prompt, **tools("executor"), **base,
                       "messages": [{"role": "system", "content": PLANNER_SYSTEM_PROMPT}] + prompt + plan_turns}
        executor_rows = [
            {"prompt": [{"role": "user", "content": task}], **tools("calculator"),
             "messages": _executor_messages(task, value, slips[j], offs[j], EXECUTOR_SYSTEM_PROMPT),
             "reward_model": {"ground_truth": str(value), "style": "rule"}, "data_source": "parsimony/planner_executor",
             "extra_info": {**info, "task": task, "executor_slip": slips[j]}}
            for j, (task, value) in enumerate(calls)
        ]
        if role in ("planner", "sft"):
            rows.append(planner_row)
        if role in ("executor", "sft"):
            rows.extend(executor_rows)
    return rows


def make_planner_dataset(num_examples: int, seed: int = 0, split: str = "train", **kwargs: Any):
    """Seeded ``datasets.Dataset`` of :func:`generate_examples` rows (``role``, ``terms``,
    ``planner_slip``, ``executor_slip``, ``test_fraction``, ``tool_schemas``)."""
    import datasets

    return datasets.Dataset.from_list(generate_examples(num_examples, seed, split, **kwargs))
