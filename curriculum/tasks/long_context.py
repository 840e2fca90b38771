"""``task:long_context``: work that does not fit one context, for M-GRPO's planner and its executors.

Each problem asks for the sum of K values (K = 2..4), each one stored in a different **ledger**: a
table of 14-26 ``key value`` rows (two-letter keys, two-digit values) that only the ``read_ledger``
tool shows, whole (~85-160 tokens of the embedded tokenizer per ledger)::

    Sum the values: qx in L481, mb in L093, zz in L123.

A ledger is a pure function of its name (:func:`ledger_rows`), so the tool needs no state. The
context limit is the embedded model's 512 positions, the same for every context of every arm
(:data:`CONTEXT_TOKENS`): a prompt plus everything its episode generates and reads.

- **planner** (M-GRPO): one ``executor`` call per value (``{"task": "qx in L481"}``), one for the sum of
  the results (``{"task": "47+35+82"}``), then ``\\boxed{sum}``; it never sees a ledger. With probability
  ``planner_slip`` it skips one value (a wrong answer).
- **executor**: a lookup task is a ``read_ledger`` call and ``<result>value</result>``; a sum is a calculator
  call and its result. With probability ``executor_slip`` the teacher reads the neighbouring row's value
  (a wrong result; a sum never slips: the calculator is exact).
- **single** (the single-agent baseline): one model with both tools reads every ledger itself; after each
  read it writes a short note (``qx=47``) before its next call, then calls the calculator on the sum and
  boxes it. Same problems, same skips, same misreads (the same draws) as the two-role teacher, so both
  systems' SFT starts hold the same behaviours and the same teacher accuracy. Every ledger it reads stays
  in its context: two short ledgers fit, four never do (:func:`trace_tokens` measures it).

``extra_info``: ``keys``, ``ledgers``, ``values``, ``sub_tasks`` / ``sub_answers`` (each lookup and the sum,
with its exact value: the executor's verifiable local score), ``teacher_*`` (the slips).
:func:`local_truth` is the exact result of an executor task (a lookup or plain arithmetic): the planner
environment's ``executor_truth`` for this task.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from curriculum.tasks.planner import ROLES, check_options, tool_call_text

__all__ = ["CONTEXT_TOKENS", "ENVIRONMENT", "SINGLE_ENVIRONMENT", "generate_examples", "ledger_rows", "local_truth",
           "make_long_context_dataset", "read_ledger"]

CONTEXT_TOKENS = 512  # the embedded model's max_position_embeddings: every context of every arm
LEDGERS = 1000  # L000..L999
ROWS = (12, 24)  # rows per ledger (inclusive)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_LOOKUP_RE = re.compile(r"^\s*([a-z]{2}) in (L\d{3})\s*$")
READ_TOOL = "curriculum.tasks.long_context:read_ledger"
# the rollout environments (GRPOConfig fields), without tools blocks in the prompts (tool_schemas False: the
# schemas would take ~300 of the 512 positions). A planner makes K + 1 <= 5 calls; an executor one call.
ENVIRONMENT: dict[str, Any] = {
    "environment": "planner",
    "environment_kwargs": {"executor_tools": [READ_TOOL, "calculator"], "executor_max_turns": 3, "max_calls": 6,
                           "tool_schemas": False, "executor_tool_schemas": False,
                           "executor_truth": "curriculum.tasks.long_context:local_truth"},
    "max_turns": 7,
}
SINGLE_ENVIRONMENT: dict[str, Any] = {
    "environment": "tools",
    "environment_kwargs": {"tools": [READ_TOOL, "calculator"], "tool_schemas": False},
    "max_turns": 7,
}


def ledger_rows(ledger: str) -> list[tuple[str, int]]:
    """The ``(key, value)`` rows of ``ledger`` (``L000``..``L999``): 14-26 distinct two-letter keys with
    values 10..99, a pure function of the name."""
    if not re.fullmatch(r"L\d{3}", ledger or ""):
        raise ValueError(f"no ledger named {ledger!r} (ledgers are L000..L999)")
    rng = random.Random(f"ledger:{ledger}")
    n = rng.randint(*ROWS)
    keys: list[str] = []
    while len(keys) < n:
        k = rng.choice(_LETTERS) + rng.choice(_LETTERS)
        if k not in keys:
            keys.append(k)
    return [(k, rng.randint(10, 99)) for k in keys]


def read_ledger(ledger: str) -> str:
    """Read a ledger: all of its rows, one 'key value' per line.

    Args:
        ledger: The ledger's name, e.g. L481
    """
    return "\n".join(f"{k} {v}" for k, v in ledger_rows(ledger.strip()))


def local_truth(task: str) -> str | None:
    """The exact result of an executor task: a lookup (``qx in L481``: the row's value; None if the ledger
    has no such key) or plain arithmetic (the calculator's value); None for anything else."""
    m = _LOOKUP_RE.match(task)
    if m:
        try:
            return next((str(v) for k, v in ledger_rows(m.group(2)) if k == m.group(1)), None)
        except ValueError:
            return None
    from rollout.mgrpo.agents import arithmetic_truth

    return arithmetic_truth(task)


def _in_test(problem: str, test_fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(f"long_context:{problem}".encode()).digest()[:8], "big")
    return (h / 2**64) < test_fraction


def _misread(rows: list[tuple[str, int]], index: int, rng: random.Random) -> int:
    """The value of a row next to ``index`` that differs from the right one (the teacher's misread)."""
    right = rows[index][1]
    near = [rows[j][1] for j in (index - 1, index + 1) if 0 <= j < len(rows) and rows[j][1] != right]
    return rng.choice(near) if near else right + 1


def _executor_rows(calls, got, slips, info, system):
    rows = []
    for j, ((task, value, tool, arguments), result) in enumerate(zip(calls, got)):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": task}]
        observation = read_ledger(**arguments) if tool == "read_ledger" else str(value)
        msgs += [{"role": "assistant", "content": tool_call_text(tool, **arguments)}, {"role": "tool", "content": observation},
                 {"role": "assistant", "content": f"<result>{result}</result>"}]
        rows.append({"prompt": [{"role": "user", "content": task}], "messages": msgs,
                     "reward_model": {"ground_truth": str(value), "style": "rule"},
                     "data_source": "parsimony/long_context_executor",
                     "extra_info": {**info, "task": task, "executor_slip": bool(slips[j])}})
    return rows


def generate_examples(
    num_examples: int,
    seed: int = 0,
    split: str = "train",
    *,
    role: str = "planner",
    terms: tuple[int, ...] = (2, 3),
    planner_slip: float = 0.15,
    executor_slip: float = 0.15,
    test_fraction: float = 0.2,
) -> list[dict[str, Any]]:
    """``num_examples`` problems' rows for ``role`` (see the module docstring); deterministic in
    ``(seed, split)``: the same problems and slips whatever the role."""
    from rollout.mgrpo.agents import EXECUTOR_SYSTEM_PROMPT, PLANNER_SYSTEM_PROMPT

    terms = check_options(split, role, planner_slip, executor_slip, test_fraction, terms)
    rng = random.Random(f"long_context:{seed}:{split}")
    out: list[dict[str, Any]] = []
    for index in range(num_examples):
        k = rng.choice(terms)
        while True:
            ledgers = [f"L{n:03d}" for n in rng.sample(range(LEDGERS), k)]
            tables = [ledger_rows(name) for name in ledgers]
            picks = [rng.randrange(len(t)) for t in tables]
            keys = [t[i][0] for t, i in zip(tables, picks)]
            problem = ", ".join(f"{key} in {name}" for key, name in zip(keys, ledgers))
            if _in_test(problem, test_fraction) == (split == "test"):
                break
        values = [t[i][1] for t, i in zip(tables, picks)]
        total = sum(values)
        skip = rng.randrange(k) if rng.random() < planner_slip else None
        used = [i for i in range(k) if i != skip]
        slips = [rng.random() < executor_slip for _ in used]
        read = [(_misread(tables[i], picks[i], rng) if s else values[i]) for i, s in zip(used, slips)]
        # each call: (task, exact value, tool, tool arguments); the sum is a calculator call, never a slip
        calls = [(f"{keys[i]} in {ledgers[i]}", values[i], "read_ledger", {"ledger": ledgers[i]}) for i in used]
        got = list(read)
        if len(used) >= 2:
            sum_task = "+".join(map(str, read))
            calls.append((sum_task, sum(read), "calculator", {"expression": sum_task}))
            got.append(sum(read))
            slips.append(False)
        answer = got[-1]
        prompt = [{"role": "user", "content": f"Sum the values: {problem}."}]
        info = {"problem": problem, "terms": k, "keys": keys, "ledgers": ledgers, "values": [str(v) for v in values],
                "sub_tasks": [f"{key} in {name}" for key, name in zip(keys, ledgers)] + ["+".join(map(str, values))],
                "sub_answers": [str(v) for v in values + [total]], "teacher_skipped_term": skip is not None,
                "teacher_misreads": sum(slips), "teacher_answer": str(answer), "split": split, "index": index}
        base = {"reward_model": {"ground_truth": str(total), "style": "rule"}, "data_source": "parsimony/long_context",
                "extra_info": info}
        if role == "single":
            turns: list[dict[str, Any]] = []
            note = ""  # what it writes down after a read, before its next call
            for (task, _, tool, arguments), result in zip(calls, got):
                turns += [{"role": "assistant", "content": note + tool_call_text(tool, **arguments)},
                          {"role": "tool", "content": read_ledger(**arguments) if tool == "read_ledger" else str(result)}]
                note = f"{task.split(' in ')[0]}={result}\n" if tool == "read_ledger" else ""
            turns.append({"role": "assistant", "content": f"{note}\\boxed{{{answer}}}"})
            out.append({"prompt": prompt, "messages": prompt + turns, **base})
            continue
        plan_turns: list[dict[str, Any]] = []
        for (task, _, _, _), result in zip(calls, got):
            plan_turns += [{"role": "assistant", "content": tool_call_text("executor", task=task)},
                           {"role": "tool", "content": str(result)}]
        plan_turns.append({"role": "assistant", "content": f"\\boxed{{{answer}}}"})
        if role in ("planner", "sft"):
            out.append({"prompt": prompt, **base,
                        "messages": [{"role": "system", "content": PLANNER_SYSTEM_PROMPT}] + prompt + plan_turns})
        if role in ("executor", "sft"):
            out.extend(_executor_rows(calls, got, slips, info, EXECUTOR_SYSTEM_PROMPT))
    return out


def trace_tokens(tokenizer, row: dict[str, Any]) -> int:
    """Tokens of a row's whole teacher conversation as its agent's context holds it (the chat template)."""
    text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def make_long_context_dataset(num_examples: int, seed: int = 0, split: str = "train", **kwargs: Any):
    """Seeded ``datasets.Dataset`` of :func:`generate_examples` rows (``role``, ``terms``, ``planner_slip``,
    ``executor_slip``, ``test_fraction``)."""
    import datasets

    return datasets.Dataset.from_list(generate_examples(num_examples, seed, split, **kwargs))
