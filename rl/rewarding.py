"""Calling reward functions: the TRL contract, error policy, NaN policy, weighting.

A reward function is ``f(prompts, completions, completion_ids, **columns) -> list[float | None]``
(``None`` = not applicable to that completion), as in TRL: the completion of a chat prompt (a list of
messages) arrives as ``[{"role": "assistant", "content": text}]``, of a text prompt as the text, and
``trainer_state`` (``global_step``, ``max_steps``) comes with them, so a reward written for TRL runs
unchanged; the built-in rewards read either form (``rewards.answers.completion_text``). Dataset
columns are passed by name, one entry per completion, and so is ``meta``: each completion's
trajectory record (tool calls, turns, ``role``, parent rollout, ``prompt_index``, ...), so
efficiency rewards read counts, not text. A function without ``**kwargs`` receives only the
keywords it names.

A *token-level* reward returns one list of floats per completion (one value per completion
token). It does not enter the scalar total; it is collated into a ``[N, T]`` tensor in
``batch.rewards[name]`` for token-level advantage estimators (e.g. DECS).

A reward object may offer lifecycle hooks (``setup``, ``set_step``, ``pop_metrics``, ``pop_meta``), declared
by :class:`rewards.hooks.RewardHooks` / :class:`rewards.hooks.LifecycleReward`; they are called through
:func:`rewards.hooks.hooks_of`, and the trainer never names a reward.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rewards.hooks import check_hooks, hooks_of

RewardFunc = Callable[..., list]


class RewardError(RuntimeError):
    """A reward function raised or returned something unusable; names the function."""


class SkipBatch(Exception):
    """The batch is dropped (configured policy) and the step is retried with new prompts."""


@dataclass(frozen=True)
class RewardState:
    """What a reward function gets as ``trainer_state`` (TRL passes its ``TrainerState``): the optimizer
    steps done so far and the run's length, e.g. for a reward with a schedule."""

    global_step: int = 0
    max_steps: int = 0


def chat_completions(prompts: Sequence[Any], completions: Sequence[Any]) -> list[Any]:
    """TRL's form of the completions: for a chat prompt (a list of messages) the completion text as
    ``[{"role": "assistant", "content": text}]``; for a text prompt the text. A completion that is not
    text is kept as it is."""
    out = []
    for p, c in zip(prompts, completions):
        chat = isinstance(p, (list, tuple)) or type(p).__name__ == "ndarray"
        out.append([{"role": "assistant", "content": c}] if chat and isinstance(c, str) else c)
    return out if len(out) == len(completions) else list(completions)


BUILT_IN_PACKAGES = ("rewards", "rl", "curriculum", "rollout")


def needs_answers(given: Any, funcs: Sequence[Any], dataset: Any = None) -> bool:
    """Whether every training row must carry a ground truth: yes when a reward is named
    (``reward_funcs: [...]``) or is one of the library's own, or when the dataset has an answer column
    (then a row without one is a mistake); a caller's own functions on a dataset without answers may
    not read one (TRL's contract: e.g. a length reward on ``trl-lib/tldr``)."""
    columns = set(getattr(dataset, "column_names", None) or [])
    if columns & {"reward_model", "ground_truth", "answer"}:
        return True
    items = given if isinstance(given, (list, tuple)) else [given]
    if any(isinstance(f, str) for f in items):
        return True
    for f in funcs:
        module = getattr(f, "__module__", None) or type(f).__module__
        if str(module).split(".")[0] in BUILT_IN_PACKAGES:
            return True
    return False


def reward_name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def resolve_reward_funcs(funcs: Sequence[RewardFunc | str] | RewardFunc | str) -> tuple[list[RewardFunc], list[str]]:
    """Callables as given; registered names -> a *new* object per call (the registry holds
    factories), so two trainers never share a reward's state (its judge, settings, counters)."""
    if isinstance(funcs, (str,)) or callable(funcs):
        funcs = [funcs]
    resolved = []
    for f in funcs:
        if isinstance(f, str):
            from rewards import get_reward_func
            from rl.presets import load_methods

            load_methods()  # method rewards (DECS, length family, plugins) register on import
            f = get_reward_func(f)
        resolved.append(f)
    for f in resolved:
        if not callable(f):
            raise TypeError(f"reward function {f!r} is not callable")
    names = [reward_name(f) for f in resolved]
    for f, n in zip(resolved, names):
        check_hooks(f, n)
    seen: dict[str, int] = {}
    unique = []
    for n in names:  # two functions with the same name get distinct metric keys
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return resolved, unique


def score_completions(
    funcs: list[RewardFunc],
    names: list[str],
    weights: list[float],
    prompts: list[Any],
    completions: list[str],
    completion_ids: list[list[int]],
    rows: list[dict[str, Any]],
    error_policy: str = "raise",
    nonfinite_policy: str = "raise",
    pop_metrics: bool = True,
    meta: list[dict[str, Any]] | None = None,
    trainer_state: Any = None,
) -> tuple[dict[str, list[float]], list[float], dict[str, float], list[dict[str, Any]]]:
    """Returns (name -> per-completion values with NaN for None, weighted totals, metrics,
    per-completion meta records that reward objects exposed through ``pop_meta()``).

    With ``pop_metrics=False`` the reward objects keep accumulating their counters; the
    caller collects them once per step with :func:`collect_reward_metrics` (a step may
    score several generation rounds, and only the reward knows how to aggregate ratios).

    ``meta``: each completion's trajectory record (tool calls, turns, role, parent, ...), passed to
    the reward functions as ``meta=`` (a list aligned with ``completions``; empty dicts when not
    given). A dataset column named ``meta`` is shadowed by it. Functions with ``**kwargs`` get every
    keyword; a function without ``**kwargs`` gets only the keywords it names (see
    :func:`accepted_kwargs`).

    ``completions`` are given as text; the functions get them in TRL's form (:func:`chat_completions`),
    and ``trainer_state`` (:class:`RewardState`) when given."""
    n = len(completions)
    completions = chat_completions(prompts, completions)
    columns = {k: [r.get(k) for r in rows] for k in (rows[0].keys() if rows else []) if k != "prompt"}
    if meta is not None and len(meta) != n:
        raise ValueError(f"meta has {len(meta)} records for {n} completions")
    columns["meta"] = [dict(m) for m in meta] if meta is not None else [{} for _ in range(n)]
    out: dict[str, list[float]] = {}
    metrics: dict[str, float] = {}
    metas: list[dict[str, Any]] = [{} for _ in range(n)]
    for fn, name in zip(funcs, names):
        try:
            given = dict(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
            if trainer_state is not None:
                given["trainer_state"] = trainer_state
            kwargs = accepted_kwargs(fn, given)
            values = fn(**kwargs)
        except Exception as e:
            if error_policy == "skip_batch":
                raise SkipBatch(f"reward function {name!r} raised {type(e).__name__}: {e}") from e
            raise RewardError(f"reward function {name!r} raised {type(e).__name__}: {e}") from e
        if values is None or len(values) != n:
            got = "None" if values is None else f"{len(values)} values"
            raise RewardError(f"reward function {name!r} returned {got} for {n} completions")
        clean: list[float] = []
        nonfinite = 0
        for i, v in enumerate(values):
            if v is None:
                clean.append(float("nan"))  # not applicable: excluded from this reward's total
                continue
            if isinstance(v, (list, tuple)):  # token-level reward: kept as is, summed for the total
                clean.append(v)  # type: ignore[arg-type]
                continue
            x = float(v)
            if not math.isfinite(x):
                nonfinite += 1
                if nonfinite_policy == "raise":
                    raise RewardError(
                        f"reward function {name!r} returned {x} for completion {i}; set "
                        "nonfinite_reward_policy to 'zero' or 'skip_batch' to tolerate it"
                    )
                if nonfinite_policy == "skip_batch":
                    raise SkipBatch(f"reward function {name!r} returned {x} for completion {i}")
                x = 0.0
            clean.append(x)
        if nonfinite:
            metrics[f"rewards/{name}/nonfinite"] = float(nonfinite)
        out[name] = clean
        if pop_metrics:
            metrics.update(collect_reward_metrics([fn]))
        extra = hooks_of(fn).pop_meta()
        if extra:
            if len(extra) != n:
                raise RewardError(f"reward function {name!r} returned {len(extra)} meta records for {n} completions")
            for i, d in enumerate(extra):
                metas[i].update(d or {})
    totals = []
    for i in range(n):
        s = 0.0
        for name, w in zip(names, weights):
            v = out[name][i]
            if isinstance(v, (list, tuple)):
                continue  # token-level rewards are read by token-level advantage estimators
            if not math.isnan(v):
                s += w * v
        totals.append(s)
    return out, totals, metrics, metas


def accepted_kwargs(fn: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments ``fn`` can take: all of them when it has ``**kwargs`` (the TRL
    contract), else only those it names, so that a reward written as ``f(prompts, completions,
    answer)`` keeps working when new keywords (``meta``, new dataset columns) are added. A callable
    whose signature cannot be read gets everything."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return {k: v for k, v in kwargs.items() if k in names}


def collect_reward_metrics(funcs: list[RewardFunc]) -> dict[str, float]:
    """Drain ``pop_metrics()`` of every reward's hooks."""
    metrics: dict[str, float] = {}
    for fn in funcs:
        metrics.update({k: float(v) for k, v in hooks_of(fn).pop_metrics().items()})
    return metrics


def reward_meta(t: Any) -> dict[str, Any]:
    """What a reward function gets as a completion's ``meta``: the trajectory's record (tool calls,
    turns, parent, prompt_index, ground_truth, ...) plus its ``role``, ``group_index`` and ``sub_group``."""
    return {"role": t.role, "group_index": t.group_index, "sub_group": t.sub_group, **t.meta}
