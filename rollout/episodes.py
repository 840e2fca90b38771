"""Multi-turn episodes: an ``Environment`` protocol, a registry of environments, and one batched
loop that runs any environment over any :class:`rollout.types.RolloutEngine`.

    trajs = run_episodes(engine, tokenizer, rows, make_env, n=8, sampling=SamplingConfig(...),
                         max_turns=4, max_episode_tokens=512)   # -> list (per row) of n Trajectory

An episode: ``env.reset(row)`` gives the first messages (rendered with the chat template, with
``tools=env.tools`` when the environment has tools); then, turn by turn, the model generates from
the whole context so far and ``env.step(turn)`` turns the model's turn into an observation (a list
of chat messages, e.g. one ``{"role": "tool", ...}``) or ends the episode. All episodes of a call
advance together: each turn is one ``engine.generate`` call over the episodes still running;
finished ones leave.

**Ids are never re-tokenised.** The trajectory's completion is the concatenation of the model's
own sampled ids and the observation tokens. Each turn's prompt is ``prompt_ids + completion ids so
far``, so the model conditions on exactly the ids that are trained on. Observation tokens are the
tokenisation of the template's text between the model's turn and the next generation prompt
(e.g. ``<|im_end|>\\n<|im_start|>tool\\n...<|im_end|>\\n<|im_start|>assistant\\n``); they carry
``completion_mask = 0`` and sampling log-prob 0, so they are never trained on.

**Limits.** ``max_turns`` model turns; ``max_episode_tokens`` completion tokens in all (model turns
*and* observations). Each turn may generate ``min(sampling.max_new_tokens, budget left)`` tokens.
The episode ends when:

- ``done``: the environment says so (e.g. the model answered without a tool call);
- ``max_turns``: the model's last allowed turn was generated; the environment does **not** step on
  it, so a tool call in that turn is neither executed nor counted;
- ``length``: a turn hit its token cap, or an observation did not fit the budget (the observation
  is cut to the budget and the episode ends); the trajectory is then ``truncated``.

``meta`` gets ``turns`` (model turns), ``episode_end`` (the reason above), ``observation_tokens``,
and whatever ``env.episode_meta()`` returns (the tool environment: ``tool_calls``, per-tool counts).

Environments are registered by name (``register_environment``) or given as ``module:factory``.
A factory ``f(**environment_kwargs)`` returns one fresh environment per call, and the loop calls
it once per episode (like TRL's ``environment_factory``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from rollout.types import RolloutEngine, SamplingConfig, Trajectory

Messages = list[dict[str, Any]]


@dataclass
class Turn:
    """One model turn, as the environment sees it."""

    text: str  # the turn's ids decoded (special tokens skipped)
    ids: list[int]  # the model's own sampled ids of this turn
    index: int  # 0-based turn number within the episode
    finish_reason: str  # "stop" (eos / a stop string) | "length"


@dataclass
class StepResult:
    """What ``env.step`` returns: observation messages to append, or the end of the episode."""

    observation: Messages | None = None
    done: bool = False


@runtime_checkable
class Environment(Protocol):
    """One episode's environment (a fresh instance per episode).

    Optional attributes: ``tools`` (JSON schemas, passed to the chat template's ``tools=``),
    ``stop`` (extra stop strings for generation, e.g. ``("</tool_call>",)``), and
    ``episode_meta() -> dict`` (counts merged into the trajectory's meta at the end).

    Environments that run sub-episodes (an M-GRPO planner whose ``executor`` tool runs an executor
    episode, ``rollout/mgrpo/agents.py``) may also have ``bind_rollout(engine=, tokenizer=, sampling=)``,
    called once before ``reset`` with the loop's engine, and ``child_trajectories() -> list``: the
    sub-episodes' trajectories, added to the episode's group after the group's own ``n`` rollouts,
    each with the group's ``group_index`` and ``sub_group`` = its parent's position ``k`` in the
    group (the parent gets ``sub_group = k`` too, and ``meta["parent_rollout"] = k`` marks a child).
    A class method ``step_many(envs, turns)`` steps all of a turn's episodes of that class in one call."""

    def reset(self, row: Mapping[str, Any]) -> Messages:
        ...

    def step(self, turn: Turn) -> StepResult:
        ...


EnvFactory = Callable[..., Environment]
ENVIRONMENTS: dict[str, EnvFactory] = {}
# modules that register the built-in environments (imported on the first lookup that misses)
BUILTIN_ENVIRONMENT_MODULES = ("rollout.tools", "rollout.mgrpo.agents")


def register_environment(name: str) -> Callable[[EnvFactory], EnvFactory]:
    """Decorator: register ``factory(**environment_kwargs) -> Environment`` (one call per episode)."""

    def deco(fn: EnvFactory) -> EnvFactory:
        if name in ENVIRONMENTS:
            raise ValueError(f"environment {name!r} is already registered")
        ENVIRONMENTS[name] = fn
        return fn

    return deco


def get_environment(name: str) -> EnvFactory:
    """A registered environment factory, or ``"module:attr"`` imported."""
    if name not in ENVIRONMENTS:
        for mod in BUILTIN_ENVIRONMENT_MODULES:
            importlib.import_module(mod)
    if name in ENVIRONMENTS:
        return ENVIRONMENTS[name]
    if ":" in name:
        mod, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"environment {name!r}: cannot import it ({e})") from None
    raise ValueError(f"unknown environment {name!r}; registered: {sorted(ENVIRONMENTS)} (or give 'module:factory')")


def episode_factory(name: str, kwargs: Mapping[str, Any] | None = None) -> Callable[[], Environment]:
    """A zero-argument callable that builds one fresh environment per episode."""
    factory = get_environment(name)
    kw = dict(kwargs or {})
    return lambda: factory(**kw)


def row_messages(row: Mapping[str, Any], key: str = "prompt") -> Messages:
    """A row's prompt field as a fresh list of chat messages (a string becomes one user turn): the
    ``reset`` of the built-in environments."""
    prompt = row[key]
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(m) for m in prompt]


# --- rendering ----------------------------------------------------------------------------------

_SENTINEL = "\u2063PARSIMONY_TURN\u2063"


def render_messages(tokenizer: Any, messages: Messages, tools: list | None, add_generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("multi-turn episodes need a tokenizer with a chat template")
    kw: dict[str, Any] = {}
    if tools:
        kw["tools"] = tools
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kw)


def observation_text(
    tokenizer: Any, history: Messages, observation: Messages, tools: list | None, turn_ended_with: str = ""
) -> str:
    """The template text that follows a model turn when ``observation`` is appended: the end of the
    assistant turn, the observation turn(s) and the next generation prompt.

    ``history`` ends with the model's turn (an assistant message). The text is computed from the
    template itself: the assistant turn is rendered with a sentinel content, and what follows the
    sentinel is the turn's closing; ``turn_ended_with`` (the decoded eos when the model's turn
    ended with it) is removed from that closing, since those ids are already in the completion."""
    probe = [*history[:-1], {"role": "assistant", "content": _SENTINEL}]
    closed = render_messages(tokenizer, probe, tools, add_generation_prompt=False)
    full = render_messages(tokenizer, probe + list(observation), tools, add_generation_prompt=True)
    if not full.startswith(closed):
        raise ValueError("the chat template does not render the observation as a suffix of the conversation")
    closing = closed[closed.rindex(_SENTINEL) + len(_SENTINEL):]
    if turn_ended_with and closing.startswith(turn_ended_with):
        closing = closing[len(turn_ended_with):]
    return closing + full[len(closed):]


# --- the loop -----------------------------------------------------------------------------------


@dataclass
class _Episode:
    env: Environment
    group: int
    prompt_ids: list[int]
    messages: Messages
    tools: list | None
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = field(default_factory=list)
    turns: int = 0
    observation_tokens: int = 0
    end: str = ""

    def add(self, ids: Sequence[int], trained: bool, logprobs: Sequence[float] | None) -> None:
        self.ids.extend(ids)
        self.mask.extend([1 if trained else 0] * len(ids))
        if self.logprobs is not None:
            if logprobs is None:
                self.logprobs = None
            else:
                self.logprobs.extend(logprobs)


def _eos_ids(engine: Any, tokenizer: Any) -> set[int]:
    eos = getattr(engine, "eos_token_ids", None)
    if eos:
        return set(eos)
    return {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()


def _step_all(stepping: Sequence[tuple[_Episode, Turn]]) -> list[StepResult]:
    """``env.step(turn)`` for each episode, except that environments whose class has
    ``step_many(envs, turns) -> list[StepResult]`` are stepped in one call per class (e.g. the M-GRPO
    planner runs every executor call of the turn as one batch)."""
    results: list[StepResult | None] = [None] * len(stepping)
    batched: dict[type, list[int]] = {}
    for i, (ep, turn) in enumerate(stepping):
        if callable(getattr(type(ep.env), "step_many", None)):
            batched.setdefault(type(ep.env), []).append(i)
        else:
            results[i] = ep.env.step(turn)
    for cls, idx in batched.items():
        outs = cls.step_many([stepping[i][0].env for i in idx], [stepping[i][1] for i in idx])
        if len(outs) != len(idx):
            raise RuntimeError(f"{cls.__name__}.step_many returned {len(outs)} results for {len(idx)} episodes")
        for i, r in zip(idx, outs):
            results[i] = r
    return results  # type: ignore[return-value]


def run_episodes(
    engine: RolloutEngine,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    make_env: Callable[[], Environment],
    n: int,
    sampling: SamplingConfig,
    *,
    max_turns: int = 4,
    max_episode_tokens: int | None = None,
    max_prompt_length: int | None = None,
    system_prompt: str | None = None,
) -> list[list[Trajectory]]:
    """Run ``n`` episodes per row, batched turn by turn; returns, per row, ``n`` trajectories
    (``group_index`` = the row's position). See the module docstring for the rules."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    budget = int(max_episode_tokens or sampling.max_new_tokens)
    if budget < 1:
        raise ValueError(f"max_episode_tokens must be >= 1, got {budget}")
    episodes: list[_Episode] = []
    for g, row in enumerate(rows):
        for _ in range(n):
            env = make_env()
            bind = getattr(env, "bind_rollout", None)
            if callable(bind):  # sub-episodes (an executor tool) generate with the loop's engine
                bind(engine=engine, tokenizer=tokenizer, sampling=sampling)
            messages = [dict(m) for m in env.reset(row)]
            if system_prompt and (not messages or messages[0].get("role") != "system"):
                messages = [{"role": "system", "content": system_prompt}] + messages
            tools = getattr(env, "tools", None) or None
            text = render_messages(tokenizer, messages, tools, add_generation_prompt=True)
            pids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if max_prompt_length:
                pids = pids[-max_prompt_length:]
            episodes.append(_Episode(env, g, list(pids), messages, tools))
    eos = _eos_ids(engine, tokenizer)
    active = list(episodes)
    while active:
        caps = [min(sampling.max_new_tokens, budget - len(ep.ids)) for ep in active]
        stops = tuple(dict.fromkeys([*sampling.stop, *(s for ep in active for s in getattr(ep.env, "stop", ()) or ())]))
        turn_sampling = replace(sampling, max_new_tokens=max(caps), stop=stops)
        outs = engine.generate([ep.prompt_ids + ep.ids for ep in active], 1, turn_sampling)
        still: list[_Episode] = []
        stepping: list[tuple[_Episode, Turn]] = []
        for ep, cap, group in zip(active, caps, outs):
            t = group[0]
            ids = list(t.completion_ids[:cap])
            finish = t.finish_reason if len(ids) == len(t.completion_ids) else "length"
            lps = None if t.logprobs is None else list(t.logprobs[:cap])
            ep.add(ids, True, lps)
            index = ep.turns
            ep.turns += 1
            text = tokenizer.decode(ids, skip_special_tokens=True)
            ep.messages.append({"role": "assistant", "content": text})
            if finish == "length" or len(ep.ids) >= budget:
                ep.end = "length"
                continue
            if ep.turns >= max_turns:  # the last allowed turn: the environment does not act on it
                ep.end = "max_turns"
                continue
            stepping.append((ep, Turn(text=text, ids=ids, index=index, finish_reason=finish)))
        for (ep, turn), res in zip(stepping, _step_all(stepping)):
            ids = turn.ids
            if res.done or not res.observation:
                ep.end = "done"
                continue
            ended_with = tokenizer.decode([ids[-1]], skip_special_tokens=False) if ids and ids[-1] in eos else ""
            obs = observation_text(tokenizer, ep.messages, res.observation, ep.tools, ended_with)
            obs_ids = tokenizer(obs, add_special_tokens=False)["input_ids"]
            room = budget - len(ep.ids)
            ep.messages.extend(dict(m) for m in res.observation)
            ep.add(obs_ids[:room], False, [0.0] * min(room, len(obs_ids)))
            ep.observation_tokens += min(room, len(obs_ids))
            if len(obs_ids) >= room:  # no room left for another model turn
                ep.end = "length"
                continue
            still.append(ep)
        active = still
    out: list[list[Trajectory]] = [[] for _ in rows]
    children: list[list[Trajectory]] = [[] for _ in rows]
    for ep in episodes:
        meta: dict[str, Any] = {"turns": ep.turns, "episode_end": ep.end, "observation_tokens": ep.observation_tokens}
        em = getattr(ep.env, "episode_meta", None)
        if callable(em):
            meta.update(em())
        traj = Trajectory(
            prompt_ids=ep.prompt_ids,
            completion_ids=ep.ids,
            logprobs=ep.logprobs,
            completion_mask=ep.mask,
            finish_reason="length" if ep.end == "length" else "stop",
            text=tokenizer.decode(ep.ids, skip_special_tokens=True),
            group_index=ep.group,
            meta=meta,
        )
        kids = getattr(ep.env, "child_trajectories", None)
        if callable(kids):  # sub-episodes: samples of their own, in the parent's group
            k = len(out[ep.group])
            traj.sub_group = k
            for c in kids():
                c.group_index, c.sub_group = ep.group, k
                c.meta["parent_rollout"] = k
                children[ep.group].append(c)
        out[ep.group].append(traj)
    for group, kids_of_group in zip(out, children):
        group.extend(kids_of_group)
    return out


__all__ = [
    "ENVIRONMENTS",
    "Environment",
    "StepResult",
    "Turn",
    "episode_factory",
    "get_environment",
    "observation_text",
    "register_environment",
    "render_messages",
    "row_messages",
    "run_episodes",
]
