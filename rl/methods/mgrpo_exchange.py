"""What crosses between M-GRPO's decoupled roles: the store records of a planner step (its planner
rollouts' ``R_M`` and the raw executor rows), the step commit, and the ``--role`` flag of
``parsimony train``. The planner side writes through :func:`push_executor_step` (from
``rl/methods/mgrpo.py``'s ``prepare_groups``); the executor side reads with :func:`group_from_record`
(``rl/methods/mgrpo_two_process.py``)."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from curriculum.samplers import ScoredGroup
from rewards.mgrpo import MGRPORewardSettings, executor_reward
from rl.errors import ConfigError
from rollout.mgrpo.store import InProcessStore, RedisStore, make_store
from rollout.types import Trajectory

EXECUTOR_CURSOR = "executor"
PLANNER_END_CURSOR = "planner_end"  # the planner's step count, written when a budget ended its run before max_steps
ROLES = ("planner", "executor")
_STORES: dict[str, Any] = {}


def pop_role(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """``parsimony train --role planner|executor``: take ``--role`` out of ``argv`` and merge
    ``mgrpo_train_roles: <role>`` into its ``--method_kwargs`` JSON (added when absent)."""
    out: list[str] = []
    role = None
    args = list(argv)
    i = 0
    while i < len(args):
        key, eq, val = args[i].partition("=")
        if key == "--role":
            if not eq:
                if i + 1 >= len(args):
                    raise ConfigError("--role: expects planner or executor")
                val, i = args[i + 1], i + 1
            if val not in ROLES:
                raise ConfigError(f"--role: expects one of {list(ROLES)}, got {val!r}")
            role = val
        else:
            out.append(args[i])
        i += 1
    if role is None:
        return out, None
    for j, tok in enumerate(out):
        key, eq, val = tok.partition("=")
        if key != "--method_kwargs":
            continue
        raw = val if eq else (out[j + 1] if j + 1 < len(out) else "{}")
        try:
            kw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--method_kwargs: not JSON ({e})") from None
        kw["mgrpo_train_roles"] = role
        if eq:
            out[j] = "--method_kwargs=" + json.dumps(kw)
        else:
            out[j + 1] = json.dumps(kw)
        return out, role
    return out + ["--method_kwargs", json.dumps({"mgrpo_train_roles": role})], role


def require_one_process(what: str) -> None:
    """Decoupled roles run one process each for now: under DDP every rank would commit (or read) the
    step with only its own prompts, and the first commit would hide the others' groups."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise NotImplementedError(f"{what} runs in one process (no DDP yet): a step is committed by one writer")


def check_store(cfg: Any) -> None:
    """A run with ``mgrpo_store`` checks its store when it starts, before the model loads: an unreachable
    server or refused credentials is one :class:`rollout.mgrpo.store.StoreError` line."""
    spec = (getattr(cfg, "method_kwargs", None) or {}).get("mgrpo_store")
    if spec:
        get_store(spec).check()


def get_store(spec: str) -> InProcessStore | RedisStore:
    """One store object per spec and process (so ``memory`` is shared by the trainers of a process)."""
    if spec not in _STORES:
        _STORES[spec] = make_store(spec)
    return _STORES[spec]


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def executor_record(group: ScoredGroup) -> dict[str, Any]:
    """What crosses the store for one prompt: its planner rollouts' ``R_M`` and its raw executor rows."""
    parents, executors = [], []
    calls: dict[Any, int] = {}
    for t in group.trajectories:
        if t.role != 0:
            calls[t.sub_group] = calls.get(t.sub_group, 0) + 1
    for t, r in zip(group.trajectories, group.total):
        if t.role == 0:
            parents.append({"sub_group": t.sub_group, "main_reward": float(r), "executor_calls": calls.get(t.sub_group, 0)})
    for t in group.trajectories:
        if t.role == 0:
            continue
        m = t.meta
        executors.append({
            "prompt_ids": list(t.prompt_ids), "completion_ids": list(t.completion_ids),
            "completion_mask": list(t.completion_mask), "logprobs": None if t.logprobs is None else list(t.logprobs),
            "finish_reason": t.finish_reason, "role": int(t.role), "sub_group": t.sub_group,
            "call_index": int(m.get("call_index", 0)), "format_ok": bool(m.get("executor_format_ok")),
            "r_local": _num(m.get("executor_r_local")), "task": str(m.get("task", "")),
        })
    return {"prompt_index": int(group.prompt_index), "parents": parents, "executors": executors}


def push_executor_step(store: Any, run: str, step: int, groups: list[ScoredGroup]) -> bool:
    """Write every prompt's record of planner step ``step`` and commit it; False when the step was
    already committed (a replay after a restart: the first commit is kept)."""
    if store.committed(run, step) is not None:
        return False
    prompts = []
    for g in groups:
        key = str(g.prompt_index)
        store.put_group(run, step, key, executor_record(g))
        prompts.append(key)
    return store.commit_step(run, step, prompts)


def group_from_record(record: Mapping[str, Any], w_main: float = MGRPORewardSettings.w_main,
                      w_local: float = MGRPORewardSettings.w_local,
                      parent_zero: float = MGRPORewardSettings.parent_zero) -> ScoredGroup:
    """An executor-only group from a store record; ``R_S`` from the stored parents' ``R_M``."""
    main = {p["sub_group"]: float(p["main_reward"]) for p in record["parents"]}
    trajs, rs = [], []
    for e in record["executors"]:
        parent = main[e["sub_group"]]
        t = Trajectory(prompt_ids=list(e["prompt_ids"]), completion_ids=list(e["completion_ids"]),
                       completion_mask=list(e["completion_mask"]), logprobs=e.get("logprobs"),
                       finish_reason=e.get("finish_reason", "stop"), group_index=int(record["prompt_index"]),
                       role=int(e.get("role", 1)), sub_group=e["sub_group"],
                       meta={"call_index": e["call_index"], "executor_format_ok": e["format_ok"],
                             "executor_r_local": e["r_local"], "task": e["task"], "parent_rollout": e["sub_group"],
                             "parent_main_reward": parent, "prompt_index": int(record["prompt_index"])})
        trajs.append(t)
        rs.append(executor_reward(e["format_ok"], parent, e["r_local"], w_main, w_local, parent_zero))
    return ScoredGroup(prompt_index=int(record["prompt_index"]), trajectories=trajs, rewards={"mgrpo_reward": list(rs)},
                       total=list(rs), meta={"parent_rollouts": [p["sub_group"] for p in record["parents"]]})
