"""Built-in synthetic tasks: ``get_task_dataset(name, num_examples, seed, split, **kwargs)``.

Each registry entry maps a task name to a builder
``builder(num_examples, seed=..., split=..., **kwargs) -> datasets.Dataset`` producing rows in
the shared-benchmark layout (``prompt``, ``reward_model``, ``data_source``, ``extra_info``,
plus ``completion`` where the task has SFT traces). Adding a task is one entry in ``TASKS``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from curriculum.tasks.adapt import make_overthink_adapt_dataset
from curriculum.tasks.calc_tool import ENVIRONMENT as CALC_TOOL_ENVIRONMENT
from curriculum.tasks.calc_tool import make_calc_tool_dataset
from curriculum.tasks.explore import make_explore_dataset
from curriculum.tasks.long_context import ENVIRONMENT as LONG_CONTEXT_ENVIRONMENT
from curriculum.tasks.long_context import make_long_context_dataset
from curriculum.tasks.mixed import make_mixed_dataset
from curriculum.tasks.overthink import SLIP_PRESET, make_overthink_dataset
from curriculum.tasks.planner import ENVIRONMENT as PLANNER_ENVIRONMENT
from curriculum.tasks.planner import make_planner_dataset
from curriculum.tasks.word_problems import make_word_problems_dataset

TaskBuilder = Callable[..., Any]

TASKS: dict[str, TaskBuilder] = {
    # overthinking arithmetic, redundant re-verification chunks k ~ U{0..3}
    "overthink": make_overthink_dataset,
    # the same problems with heavier redundancy (k mostly 1-4)
    "overthink_heavy": partial(make_overthink_dataset, redundancy="heavy"),
    # RL headroom: a noisy teacher whose traces sometimes open "Let me compute quickly." and skip the
    # last step; 15% of 2-op and 60% of 3-op traces (modal on long problems, so greedy slips too)
    "overthink_slip": partial(make_overthink_dataset, slip_rate=SLIP_PRESET, slip_kind="quick"),
    # AdaptThink's start: overthink with 1-3 operations whose teacher answers without thinking (`</think>` then
    # the boxed answer) on 25% of the traces, whatever the difficulty (curriculum/tasks/adapt.py)
    "overthink_adapt": make_overthink_adapt_dataset,
    # necessary trial and error (x tries of a*x+b=c), then 0-4 redundant re-checks (mostly 1-4)
    "explore": make_explore_dataset,
    # the same (explore's default redundancy is already heavy): the name `parsimony compare` builds
    "explore_heavy": partial(make_explore_dataset, redundancy="heavy"),
    # explore with a guessing teacher: 15% of traces guess a wrong x at once ("Let me guess x."), the
    # shortcut a sequence-level length penalty can pay for, and headroom for accuracy-only RL
    "explore_guess": partial(make_explore_dataset, slip_rate=0.15, slip_kind="guess"),
    # arithmetic with a calculator the teacher calls on ~85% of problems; only the two-digit quarter
    # needs it (multi-turn tool episodes: see TASK_ROLLOUTS)
    "calc_tool": make_calc_tool_dataset,
    # DeReason: many one-step problems (difficulty 1-2) and fewer 3-step ones (difficulty 4) whose
    # noisy teacher skips the last step on 60% of traces (RL headroom on the hard ones only)
    "mixed": make_mixed_dataset,
    # M-GRPO: sums of products for a planner that delegates each product and the sum to an executor with
    # the calculator; noisy teachers skip a term (planner) or guess a result (executor). role=
    # planner | executor | sft (both roles' traces) | single (one model with the calculator)
    "planner": make_planner_dataset,
    # M-GRPO where the work does not fit one context: the sum of 2-3 values, each in its own ledger of 12-24
    # rows that only a tool shows whole; executors read the ledgers, the planner sees only their results, a
    # single agent holds every ledger it reads in its 512 positions. role= as planner's
    "long_context": make_long_context_dataset,
    # a real pretrained model's task: natural-language arithmetic word problems, 1-3 steps (GSM8K-like),
    # integer answers in \boxed{}; SFT traces write one equation per step
    "word_problems": make_word_problems_dataset,
    # the same problems with a reasoning model's trace: equations in <think>, then 0-3 redundant re-checks
    # (U{0..3}) before </think> and the boxed answer: the real model's length-efficiency task
    "word_problems_think": partial(make_word_problems_dataset, style="think"),
}

# Tasks whose rollouts are multi-turn episodes: the GRPOConfig fields (environment, its kwargs,
# max_turns) that train and evaluate them. Tasks not listed are single-turn.
TASK_ROLLOUTS: dict[str, dict[str, Any]] = {
    "calc_tool": CALC_TOOL_ENVIRONMENT,
    "planner": PLANNER_ENVIRONMENT,
    "long_context": LONG_CONTEXT_ENVIRONMENT,
}
# Tasks whose rollouts need a completion cap other than the default 256 tokens (calc_tool: its traces
# are ~90 tokens with the observation; a shorter cap keeps a babbling start cheap).
TASK_COMPLETION_LENGTH: dict[str, int] = {"calc_tool": 160}


def task_text_metrics(name: str) -> dict[str, Callable[[str], float]]:
    """Per-completion text metrics that show a task's behaviours, for evaluation reports
    (``rl.eval.evaluate.evaluate_dataset(text_metrics=...)`` averages them over samples):
    ``tries`` (explore: candidates tried before the first answer statement; a guess makes 0),
    ``guess`` (explore: the guessing slip), ``slip`` (overthink: the "Let me compute quickly."
    slip), ``steps`` (overthink: step lines before the answer statement), ``rechecks`` (word_problems_think: re-checks
    after the first answer statement); and on every task with ``<think>`` traces ``nothink``, the share of answers
    that skip thinking (opening with ``</think>``: AdaptThink's NoThinking mode)."""
    def nothink(t: str) -> float:
        return float(t.lstrip().startswith("</think>"))

    if name.startswith("explore"):
        from curriculum.tasks.explore import GUESS_OPENING_LINE, count_tries

        return {"tries": lambda t: float(count_tries(t)), "guess": lambda t: float(GUESS_OPENING_LINE in t),
                "nothink": nothink}
    if name == "word_problems_think":
        from curriculum.tasks.overthink import count_redundant_chunks

        return {"rechecks": lambda t: float(count_redundant_chunks(t)), "nothink": nothink}
    if name.startswith(("overthink", "mixed")):
        from curriculum.tasks.overthink import count_steps, is_quick

        return {"slip": lambda t: float(is_quick(t)), "steps": lambda t: float(count_steps(t)), "nothink": nothink}
    return {}


def task_row_metrics(name: str) -> dict[str, Callable[[dict, dict], float | None]]:
    """Per-sample metrics that need the row as well as the sample record (``fn(row, sample)``, None
    = the sample does not count): calc_tool's ``tool_calls_needed`` / ``tool_calls_unneeded``, the
    calls on problems that need the calculator and on those that do not, and ``easy_direct_accuracy`` /
    ``easy_call_accuracy``, the accuracy on problems that do not need it of the samples that answered without
    a call and of those that called (the headroom check: a call can be dropped at no cost only where the
    first is as high as the second)."""
    if name.startswith("calc_tool"):
        def calls_if(needed: bool):
            return lambda row, s: float(s.get("tool_calls", 0)) if bool(row["extra_info"]["needs_tool"]) == needed else None

        def easy_accuracy_if(called: bool):
            def fn(row, s):
                if bool(row["extra_info"]["needs_tool"]) or (int(s.get("tool_calls", 0)) > 0) != called:
                    return None
                return float(bool(s.get("correct")))
            return fn

        return {"tool_calls_needed": calls_if(True), "tool_calls_unneeded": calls_if(False),
                "easy_direct_accuracy": easy_accuracy_if(False), "easy_call_accuracy": easy_accuracy_if(True)}
    return {}


def get_task_dataset(name: str, num_examples: int, seed: int = 0, split: str = "train", **kwargs: Any):
    """Build ``num_examples`` rows of the task ``name`` (seeded, deterministic).

    ``nothink_rate`` (any task with ``<think>`` traces; overthink_adapt's own option there): that share of the SFT
    traces answers without thinking (:func:`curriculum.tasks.adapt.mix_nothink`), the prompts and ground truths
    unchanged: an AdaptThink start for the task."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    nothink_rate = kwargs.pop("nothink_rate", None) if name != "overthink_adapt" else None
    ds = TASKS[name](num_examples, seed=seed, split=split, **kwargs)
    if nothink_rate is None:
        return ds
    import datasets

    from curriculum.tasks.adapt import mix_nothink

    return datasets.Dataset.from_list(mix_nothink(ds.to_list(), nothink_rate, f"{name}/nothink/{seed}/{split}", name))


__all__ = ["TASKS", "TASK_COMPLETION_LENGTH", "TASK_ROLLOUTS", "get_task_dataset", "task_row_metrics", "task_text_metrics"]
