"""Planner/executor agents (M-GRPO, arXiv 2511.13288): the planner calls ``executor`` as a tool.

``environment: planner`` runs the planner's episodes with the loop of :mod:`rollout.episodes`. Its
one tool is ``executor(task)``; the planner calls it like any tool::

    <tool_call>{"name": "executor", "arguments": {"task": "6*7"}}</tool_call>

Each call runs one **executor episode**: its own prompt (``executor_system_prompt`` and the task as
the user turn), its own multi-turn loop and tools (default: the calculator), its own limits
(``executor_max_turns``, ``executor_max_episode_tokens``). The executor ends its episode with a turn
that holds no tool call and ``<result>...</result>``; the result's text goes back to the planner as
the ``tool`` turn (masked: ``completion_mask = 0`` in the planner's trajectory). An executor that
gives no result (no tag, an empty one, two of them, or a cut episode) has an invalid format: the
planner sees ``Error: the executor gave no <result>``.

Each executor episode is a training sample of its own (``rollout.episodes``' child trajectories):
``role = 1``, ``group_index`` = the planner's prompt group, ``sub_group`` = the parent planner
rollout's position in the group, and in ``meta``: ``parent_rollout`` (that position), ``call_index``
(which call of the parent), ``task``, ``executor_result``, ``executor_format_ok``, and, when the task
has a known exact result (plain arithmetic by default; ``executor_truth`` names a task's own function),
``executor_local_truth`` and ``executor_r_local`` (1.0 when the result equals the exact value: the
verifiable local score of M-GRPO's executor reward). The planner's ``meta`` gets
``executor_calls``, ``executor_errors`` (calls that returned no result or were malformed) and the tool
counts of :class:`rollout.tools.ToolEnvironment`.

All of a turn's executor calls across the planner episodes run as one batched executor run
(``PlannerEnvironment.step_many``, called by the episode loop).

Models: by default (``shared``) the executor episodes generate with the loop's own engine
(``bind_rollout``), so one model plays both roles through the two system prompts; with
``executor_engine_url`` they generate on the executor's own server (its own model: decoupled
training, ``rl/methods/mgrpo_two_process.py``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from rollout.episodes import Messages, StepResult, Turn, register_environment, row_messages, run_episodes
from rollout.tools import TOOL_CALL_CLOSE, ToolEnvironment, calculator, import_function, parse_tool_call, tool_schema
from rollout.types import RolloutEngine, SamplingConfig, Trajectory

RESULT_OPEN, RESULT_CLOSE = "<result>", "</result>"
EXECUTOR_ROLE = 1
PLANNER_SYSTEM_PROMPT = (
    "You are the planner. Split the problem into sub-problems, delegate each one to the executor tool, "
    "combine the executor's results and give the final answer in \\boxed{}."
)
EXECUTOR_SYSTEM_PROMPT = (
    "You are the executor. Solve the task you are given; you may use the calculator. "
    "End with the answer as <result>answer</result>."
)
NO_RESULT = "Error: the executor gave no <result>"


def executor(task: str) -> str:
    """Delegate a sub-task to the executor agent and get its result.

    Args:
        task: The sub-problem to solve, e.g. 6*7
    """
    raise RuntimeError("the executor tool is run by the planner environment (rollout/mgrpo/agents.py)")


def parse_result(text: str) -> str | None:
    """The text of the one ``<result>...</result>`` in ``text`` (stripped); None when there is none,
    more than one, or it is empty."""
    if text.count(RESULT_OPEN) != 1 or text.count(RESULT_CLOSE) != 1:
        return None
    start = text.index(RESULT_OPEN) + len(RESULT_OPEN)
    end = text.find(RESULT_CLOSE, start)
    if end < 0:
        return None
    inner = text[start:end].strip()
    return inner or None


def same_number(a: str | None, b: str | None) -> bool:
    """``a`` and ``b`` as the same number (``"42" == "42.0"``), else as the same stripped text."""
    if a is None or b is None:
        return False
    a, b = a.strip(), b.strip()
    try:
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
    except ValueError:
        return a == b
    return math.isfinite(x) and math.isfinite(y) and abs(x - y) <= 1e-9 * max(1.0, abs(y))


def arithmetic_truth(task: str) -> str | None:
    """The exact value of ``task`` when it is a plain arithmetic expression (the calculator's
    evaluator), else None: the ground truth of a delegated sub-task."""
    try:
        return calculator(task)
    except Exception:
        return None


def resolve_truth(spec: str | Callable[[str], str | None] | None) -> Callable[[str], str | None]:
    """The function that gives a delegated task's exact result (None: no local truth): a callable,
    ``module:function``, or None for :func:`arithmetic_truth` (plain arithmetic only)."""
    if spec is None:
        return arithmetic_truth
    if callable(spec):
        return spec
    return import_function(spec, "executor_truth")


class ExecutorEnvironment(ToolEnvironment):
    """One executor episode: the task as the user turn, tools as :class:`ToolEnvironment`; the turn
    without a tool call ends the episode, and its ``<result>`` is the episode's result."""

    def __init__(self, tools: Sequence[str | Callable[..., Any]] = ("calculator",), **kwargs: Any) -> None:
        super().__init__(tools=tools, prompt_key="task", **kwargs)  # tool_schemas=False: no tools block
        self.final_text: str | None = None

    def reset(self, row: Mapping[str, Any]) -> Messages:
        return [{"role": "user", "content": str(row["task"])}]

    def step(self, turn: Turn) -> StepResult:
        res = super().step(turn)
        if res.done:
            self.final_text = turn.text
        return res

    def episode_meta(self) -> dict[str, Any]:
        return {**super().episode_meta(), "executor_final_text": self.final_text}


class ExecutorRunner:
    """Runs executor episodes for the planner's calls (``run(tasks)``, one trajectory per task)."""

    def __init__(
        self,
        engine: RolloutEngine | None = None,
        tokenizer: Any = None,
        sampling: SamplingConfig | None = None,
        *,
        tools: Sequence[str | Callable[..., Any]] = ("calculator",),
        max_turns: int = 3,
        max_episode_tokens: int | None = None,
        system_prompt: str | None = EXECUTOR_SYSTEM_PROMPT,
        max_prompt_length: int | None = None,
        role: int = EXECUTOR_ROLE,
        engine_url: str | None = None,
        tool_schemas: bool = True,
        truth: str | Callable[[str], str | None] | None = None,
    ) -> None:
        self.engine, self.tokenizer, self.sampling = engine, tokenizer, sampling
        self.truth = resolve_truth(truth)
        self.engine_url = engine_url
        self.tools = tuple(tools)
        self.max_turns = int(max_turns)
        self.max_episode_tokens = max_episode_tokens
        self.system_prompt = system_prompt
        self.max_prompt_length = max_prompt_length
        self.role = int(role)
        self.tool_schemas = bool(tool_schemas)

    def bind(self, engine: RolloutEngine, tokenizer: Any, sampling: SamplingConfig) -> None:
        """Fill in what was not given: the planner loop's engine, tokenizer and sampling (shared mode; an
        engine with ``for_role(role)`` gives the executor's own, e.g. its LoRA adapter), or the client of
        the executor's own server at ``engine_url`` (separate models, decoupled training)."""
        self.tokenizer = self.tokenizer or tokenizer
        if self.engine is None and self.engine_url:
            from rollout.mgrpo.agent_server import server_engine

            self.engine = server_engine(self.engine_url, self.tokenizer)
        if self.engine is None and callable(getattr(engine, "for_role", None)):
            engine = engine.for_role(self.role)  # one base, an adapter per role (rl/role_adapters.py)
        self.engine = self.engine or engine
        self.sampling = self.sampling or sampling

    def signature(self) -> tuple:
        """Runners with equal signatures run their tasks in one batch."""
        return (id(self.engine), id(self.tokenizer), self.tools, self.max_turns, self.max_episode_tokens,
                self.system_prompt, self.max_prompt_length, self.role, self.tool_schemas, self.truth)

    def run(self, tasks: Sequence[str]) -> list[Trajectory]:
        if self.engine is None or self.tokenizer is None or self.sampling is None:
            raise RuntimeError("the executor runner has no engine: bind() it or give engine, tokenizer, sampling")
        groups = run_episodes(
            self.engine, self.tokenizer, [{"task": t} for t in tasks], lambda: ExecutorEnvironment(tools=self.tools, tool_schemas=self.tool_schemas),
            1, self.sampling, max_turns=self.max_turns, max_episode_tokens=self.max_episode_tokens,
            max_prompt_length=self.max_prompt_length, system_prompt=self.system_prompt,
        )
        out = []
        for task, (t,) in zip(tasks, groups):
            final = t.meta.pop("executor_final_text", None)
            result = parse_result(final) if (final is not None and t.meta.get("episode_end") == "done") else None
            truth = self.truth(task)
            t.role = self.role
            t.meta.update(
                task=task, executor_result=result, executor_format_ok=result is not None,
                executor_local_truth=truth,
                executor_r_local=None if truth is None else float(same_number(result, truth)),
            )
            out.append(t)
        return out


class PlannerEnvironment:
    """The planner's episode: the row's prompt; its tool ``executor`` runs an executor episode per
    call; a turn without a tool call ends the episode. Other tool names and malformed calls are
    error observations (counted), as in :class:`ToolEnvironment`."""

    stop = (TOOL_CALL_CLOSE,)

    def __init__(self, runner: ExecutorRunner, prompt_key: str = "prompt", max_calls: int = 8,
                 tool_schemas: bool = True) -> None:
        self.runner = runner
        self.prompt_key = prompt_key
        self.max_calls = int(max_calls)
        self.tools = [tool_schema(executor)] if tool_schemas else []  # False: no tools block in the prompt
        self.children: list[Trajectory] = []
        self.tool_calls = 0
        self.errors = 0

    def bind_rollout(self, engine: RolloutEngine, tokenizer: Any, sampling: SamplingConfig) -> None:
        self.runner.bind(engine, tokenizer, sampling)

    def reset(self, row: Mapping[str, Any]) -> Messages:
        return row_messages(row, self.prompt_key)

    def step(self, turn: Turn) -> StepResult:
        return type(self).step_many([self], [turn])[0]

    @classmethod
    def step_many(cls, envs: Sequence["PlannerEnvironment"], turns: Sequence[Turn]) -> list[StepResult]:
        """Step a turn of many planner episodes at once: every valid ``executor`` call of the turn runs
        in one batched executor run per runner setting (same engine, tools, limits, prompt)."""
        results: list[StepResult | None] = [None] * len(envs)
        batches: dict[tuple, list[tuple[int, str]]] = {}
        for k, (env, turn) in enumerate(zip(envs, turns)):
            call = parse_tool_call(turn.text)
            if call is None:
                results[k] = StepResult(done=True)
                continue
            env.tool_calls += 1
            task, error = env._task(call)
            if task is None:
                results[k] = env._observation(error)
            else:
                batches.setdefault(env.runner.signature(), []).append((k, task))
        for batch in batches.values():
            runner = envs[batch[0][0]].runner
            for (k, _), traj in zip(batch, runner.run([t for _, t in batch])):
                results[k] = envs[k]._observation(envs[k]._deliver(traj))
        return results  # type: ignore[return-value]

    def _observation(self, content: str) -> StepResult:
        return StepResult(observation=[{"role": "tool", "name": "executor", "content": content}])

    def _task(self, call: tuple[str, dict[str, Any]] | str) -> tuple[str | None, str | None]:
        """(the task, None) for a valid executor call; (None, the error observation) otherwise (counted)."""
        if isinstance(call, str):
            self.errors += 1
            return None, f"Error: {call}"
        name, args = call
        if name != "executor":
            self.errors += 1
            return None, f"Error: unknown tool {name!r}; available: ['executor']"
        task = args.get("task")
        if not isinstance(task, str) or not task.strip():
            self.errors += 1
            return None, 'Error: executor needs {"task": "<sub-problem>"}'
        if len(self.children) >= self.max_calls:
            self.errors += 1
            return None, f"Error: at most {self.max_calls} executor calls per episode"
        return task.strip(), None

    def _deliver(self, traj: Trajectory) -> str:
        """Keep the executor trajectory as a child sample; the planner's observation is its result."""
        traj.meta["call_index"] = len(self.children)
        self.children.append(traj)
        result = traj.meta["executor_result"]
        if result is None:
            self.errors += 1
            return NO_RESULT
        return result

    def child_trajectories(self) -> list[Trajectory]:
        return list(self.children)

    def episode_meta(self) -> dict[str, Any]:
        return {"executor_calls": len(self.children), "executor_errors": self.errors, "tool_calls": self.tool_calls}


@register_environment("planner")
def make_planner_environment(
    executor_tools: Sequence[str] = ("calculator",),
    executor_max_turns: int = 3,
    executor_max_episode_tokens: int | None = None,
    executor_system_prompt: str | None = EXECUTOR_SYSTEM_PROMPT,
    max_calls: int = 8,
    prompt_key: str = "prompt",
    executor_engine_url: str | None = None,
    tool_schemas: bool = True,
    executor_tool_schemas: bool = True,
    executor_truth: str | None = None,
) -> PlannerEnvironment:
    """``environment: planner`` with ``environment_kwargs: {executor_tools: [calculator], executor_max_turns: 3,
    executor_max_episode_tokens: ..., executor_system_prompt: ..., max_calls: 8, executor_engine_url: ...}``:
    without a URL the executor generates with the planner's engine (shared model); with one, with the
    executor process's server (``rollout/mgrpo/agent_server.py`` or ``vllm serve``: its own model).
    ``tool_schemas`` / ``executor_tool_schemas`` False: the planner's / executor's prompt renders no tools
    block (JSON schemas cost ~300 of the embedded tiny model's 512 positions; ``task:planner`` sets both).
    ``executor_truth``: ``module:function`` giving a task's exact result, the executor's local score
    ``r_local`` (default: plain arithmetic only; ``task:long_context`` gives its ledger lookups)."""
    runner = ExecutorRunner(tools=executor_tools, max_turns=executor_max_turns, engine_url=executor_engine_url,
                            max_episode_tokens=executor_max_episode_tokens, system_prompt=executor_system_prompt,
                            tool_schemas=executor_tool_schemas, truth=executor_truth)
    return PlannerEnvironment(runner, prompt_key=prompt_key, max_calls=max_calls, tool_schemas=tool_schemas)


__all__ = [
    "EXECUTOR_ROLE",
    "EXECUTOR_SYSTEM_PROMPT",
    "ExecutorEnvironment",
    "ExecutorRunner",
    "PLANNER_SYSTEM_PROMPT",
    "PlannerEnvironment",
    "arithmetic_truth",
    "executor",
    "make_planner_environment",
    "parse_result",
    "resolve_truth",
    "same_number",
]
