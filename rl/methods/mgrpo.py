"""M-GRPO (arXiv 2511.13288): hierarchical group advantages over planner and executor rollouts,
with executor trajectories aligned to a fixed count per planner rollout.

    N = rows of the batch: K planner rollouts per prompt (role 0) and their executor samples (role 1);
    T = padded completion length; D = D_max, executor samples per planner rollout after alignment

**Trajectory alignment** (``prepare_groups``, run by the trainer on the scored groups before they are
collated). For a planner rollout with ``d`` executor calls (its children: same ``group_index`` and
``sub_group``, in call order):

- ``d == D``: kept as they are;
- ``d < D``: all ``d`` kept, plus ``D - d`` copies of children drawn uniformly *with replacement* from
  the same rollout's ``d`` (the copies carry ``meta["aligned_copy"] = True``);
- ``d > D``: a uniformly random ``D`` of them kept (in call order), ``d - D`` dropped;
- ``d == 0``: no executor sample (counted in ``mgrpo/zero_call_rollouts``).

So each prompt has exactly ``(K - zero-call rollouts) * D`` executor samples (``K * D`` when every
rollout delegates), and a step's batch size is fixed by ``K``, ``D`` and the zero-call count.
``D = mgrpo_d_max``: an int >= 1, or ``"auto"`` = the median (``median_low``, an actual count) of the
step's calls over the rollouts that made at least one, capped at ``mgrpo_d_max_cap`` (1 when no
rollout delegated). Under DDP ``auto`` is each process's own median. The draws come from a
``random.Random`` seeded by ``(seed, step, prompt_index, rollout position)``: the same run resumed
from a checkpoint aligns a step exactly as before, with no state to save. Logged:
``mgrpo/d_max``, ``mgrpo/executor_calls``, ``mgrpo/executor_samples``, ``mgrpo/executor_dropped``,
``mgrpo/executor_duplicated``, ``mgrpo/zero_call_rollouts``, and per role the mean reward, the
planner's accuracy and the executors' valid-format rate.

**Advantages** (estimator ``mgrpo``): GRPO of ``batch.total_reward`` (``R_M`` on planner rows and
``R_S`` on executor rows: ``rewards/mgrpo.py``) within each (prompt, role) group: the planner's over
its K rollouts of the prompt, the executor's over the prompt's aligned ``K * D`` samples.
``scale_rewards`` / ``advantage_eps`` apply as in ``grpo`` (``batch`` = the std over the batch's
rows of the same role).

**Roles and decoupling** (``mgrpo_train_roles``): ``all`` trains both roles' rows (the shared model);
``planner`` drops the executor rows after alignment, and first pushes the raw ones to the store when
``mgrpo_store`` is set (the planner's process of ``rl/methods/mgrpo_two_process.py``); ``executor`` is the executor's
process (``StoreExecutorTrainer``), whose groups hold executor rows only (their parents in
``group.meta["parent_rollouts"]``).

``method: mgrpo`` = ``reward_funcs: [mgrpo_reward]``, ``advantage_estimator: mgrpo``, the clipped
surrogate (``single``), ``environment: planner`` (``rollout/mgrpo/agents.py``, shared model mode) and the
planner's system prompt.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from typing import Any, Sequence

import torch
from torch import Tensor

from rewards.mgrpo import MGRPORewardSettings  # importing rewards.mgrpo registers the "mgrpo_reward" reward
from curriculum.samplers import ScoredGroup
from rl.advantages import advantage_eps, broadcast_to_tokens, group_mean_std, register_advantage
from rl.batch import RolloutBatch
from rl.methods.mgrpo_exchange import (PLANNER_END_CURSOR, ROLES, check_store, get_store, pop_role, push_executor_step,
                                      require_one_process)
from rl.methods.mgrpo_settings import MGRPOSettings
from rl.presets import register_method
from rl.role_flags import register_role_flag
from rollout.mgrpo.agents import PLANNER_SYSTEM_PROMPT


# --- alignment (pure) ----------------------------------------------------------------------------


def resolve_d_max(spec: int | str, calls: Sequence[int], cap: int) -> int:
    """``D``: ``spec`` itself, or for ``"auto"`` the median_low of the nonzero ``calls`` [rollouts],
    clipped to ``[1, cap]`` (1 when no rollout called)."""
    if spec != "auto":
        return int(spec)
    nonzero = [int(c) for c in calls if c > 0]
    if not nonzero:
        return 1
    return max(1, min(int(cap), int(statistics.median_low(nonzero))))


def alignment_rng(seed: int, step: int, prompt_index: int, rollout: int) -> random.Random:
    """The draws of one planner rollout's alignment: a function of its position only (resumable)."""
    return random.Random(f"mgrpo-align:{seed}:{step}:{prompt_index}:{rollout}")


def align_positions(d: int, d_max: int, rng: random.Random) -> list[int]:
    """Positions in ``0..d-1`` of one rollout's executor trajectories after alignment to ``d_max``
    (see the module docstring): length ``d_max``, or 0 when ``d == 0``."""
    if d_max < 1:
        raise ValueError(f"d_max must be >= 1, got {d_max}")
    if d == 0:
        return []
    if d >= d_max:
        return list(range(d)) if d == d_max else sorted(rng.sample(range(d), d_max))
    return list(range(d)) + [rng.randrange(d) for _ in range(d_max - d)]


def align_group(group: ScoredGroup, d_max: int, seed: int, step: int) -> tuple[ScoredGroup, dict[str, int]]:
    """One prompt group with its executor rows aligned: planner rows first (as they were), then each
    planner rollout's aligned executor rows in the planners' order. Rewards and totals follow the rows."""
    trajs = group.trajectories
    planners = [i for i, t in enumerate(trajs) if t.role == 0]
    parents = parent_rollouts(group)
    kids: dict[Any, list[int]] = {}
    for i, t in enumerate(trajs):
        if t.role != 0:
            kids.setdefault(t.sub_group, []).append(i)
    order: list[int] = list(planners)
    copies: set[int] = set()  # positions in ``order`` that are duplicates
    counts = {"calls": 0, "samples": 0, "dropped": 0, "duplicated": 0, "zero_call_rollouts": 0, "planners": len(parents)}
    for sub in parents:
        mine = sorted(kids.pop(sub, []), key=lambda j: trajs[j].meta.get("call_index", 0))
        d = len(mine)
        counts["calls"] += d
        if d == 0:
            counts["zero_call_rollouts"] += 1
            continue
        pos = align_positions(d, d_max, alignment_rng(seed, step, group.prompt_index, int(sub or 0)))
        for n, p in enumerate(pos):
            if n >= d:
                copies.add(len(order))
            order.append(mine[p])
        counts["samples"] += len(pos)
        counts["dropped"] += max(0, d - d_max)
        counts["duplicated"] += max(0, d_max - d)
    if kids:
        raise ValueError(f"prompt {group.prompt_index}: executor rows without a planner rollout (sub_group {sorted(kids)})")
    new_trajs = [
        dataclasses.replace(trajs[j], meta={**trajs[j].meta, "aligned_copy": True}) if n in copies else trajs[j]
        for n, j in enumerate(order)
    ]
    out = ScoredGroup(
        prompt_index=group.prompt_index,
        trajectories=new_trajs,
        rewards={k: [v[j] for j in order] for k, v in group.rewards.items()},
        total=[group.total[j] for j in order],
        meta=dict(group.meta),
    )
    return out, counts


def parent_rollouts(group: ScoredGroup) -> list[Any]:
    """The ``sub_group`` ids of a group's planner rollouts: its planner rows', or, in a group of executor
    rows only (pulled from the store), ``group.meta["parent_rollouts"]``."""
    planners = [t.sub_group for t in group.trajectories if t.role == 0]
    return planners if planners else list(group.meta.get("parent_rollouts", []))


def prepare_groups(groups: list[ScoredGroup], cfg: Any, step: int) -> tuple[list[ScoredGroup], dict[str, float]]:
    """The trainer's hook before collation: push the raw executor rows to the store (decoupled
    training), align every group's executor rows, drop them when only the planner trains; the counts."""
    s = MGRPOSettings.from_args(cfg)
    if s.store is not None and s.train_roles == "planner":
        require_one_process("the decoupled planner")
        push_executor_step(get_store(s.store), s.run, step, groups)
    calls = []
    for g in groups:
        per_parent = {k: 0 for k in parent_rollouts(g)}
        for t in g.trajectories:
            if t.role != 0:
                per_parent[t.sub_group] = per_parent.get(t.sub_group, 0) + 1
        calls.extend(per_parent.values())
    d_max = resolve_d_max(s.d_max, calls, s.d_max_cap)
    seed = int(getattr(cfg, "seed", 0) or 0)
    out, total = [], {}
    for g in groups:
        ag, c = align_group(g, d_max, seed, step)
        out.append(ag)
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    metrics = {
        "mgrpo/d_max": float(d_max),
        "mgrpo/executor_calls": float(total.get("calls", 0)),
        "mgrpo/executor_samples": float(total.get("samples", 0)),
        "mgrpo/executor_dropped": float(total.get("dropped", 0)),
        "mgrpo/executor_duplicated": float(total.get("duplicated", 0)),
        "mgrpo/zero_call_rollouts": float(total.get("zero_call_rollouts", 0)),
        "mgrpo/calls_per_rollout": float(total.get("calls", 0)) / max(1, total.get("planners", 0)),
    }
    metrics.update(_role_metrics(out))
    if s.train_roles == "planner":  # the executor trains elsewhere (the store) or not at all (frozen)
        out = [_only_planners(g) for g in out]
    return out, metrics


def _only_planners(g: ScoredGroup) -> ScoredGroup:
    keep = [i for i, t in enumerate(g.trajectories) if t.role == 0]
    return ScoredGroup(prompt_index=g.prompt_index, trajectories=[g.trajectories[i] for i in keep],
                       rewards={k: [v[i] for i in keep] for k, v in g.rewards.items()},
                       total=[g.total[i] for i in keep], meta=dict(g.meta))


def _role_metrics(groups: list[ScoredGroup]) -> dict[str, float]:
    plan = [(t, r) for g in groups for t, r in zip(g.trajectories, g.total) if t.role == 0]
    ex = [(t, r) for g in groups for t, r in zip(g.trajectories, g.total) if t.role != 0]
    out: dict[str, float] = {}
    if plan:
        out["mgrpo/planner_reward_mean"] = sum(r for _, r in plan) / len(plan)
        out["mgrpo/planner_accuracy"] = sum(bool(t.meta.get("mgrpo_correct")) for t, _ in plan) / len(plan)
    if ex:
        out["mgrpo/executor_reward_mean"] = sum(r for _, r in ex) / len(ex)
        out["mgrpo/executor_format_ok"] = sum(bool(t.meta.get("executor_format_ok")) for t, _ in ex) / len(ex)
        local = [t.meta.get("executor_r_local") for t, _ in ex if t.meta.get("executor_r_local") is not None]
        if local:
            out["mgrpo/executor_accuracy"] = sum(local) / len(local)
    return out


# --- advantages (pure) ---------------------------------------------------------------------------


def hierarchical_advantage(rewards: Tensor, group_index: Tensor, role: Tensor, eps: float = 1e-6,
                           mode: str = "group") -> Tensor:
    """GRPO within each (prompt, role) group. rewards [N] float, group_index [N], role [N] -> [N].

    ``mode``: ``group`` = ``(r - mean) / (std + eps)`` per (prompt, role); ``none`` = ``r - mean``;
    ``batch`` = ``(r - mean) / (std of the role's rows + eps)``. Unbiased std; a singleton group has
    mean 0, std 1 (``rl.advantages.group_mean_std``); a group whose rewards agree gets exactly 0."""
    r = rewards.to(torch.float64)
    roles = role.long()
    key = group_index.long() * (int(roles.max()) + 1 if roles.numel() else 1) + roles  # [N] (prompt, role) id
    mean, std = group_mean_std(r, key)  # [N], [N]
    centered = r - mean
    if mode == "group":
        return centered / (std + eps)
    if mode == "none":
        return centered
    if mode == "batch":
        out = torch.empty_like(centered)
        for k in torch.unique(roles).tolist():
            rows = roles == k
            s = r[rows].std() if int(rows.sum()) > 1 else torch.ones((), dtype=r.dtype)
            out[rows] = centered[rows] / (s + eps)
        return out
    raise ValueError(f"scale_rewards must be one of ['group', 'batch', 'none'], got {mode!r}")


def mark_planner_end(cfg: Any, summary: dict) -> None:
    """A planner that a budget of generated tokens stopped before ``max_steps`` marks its step count in the store
    (``PLANNER_END_CURSOR``): its executor's trainer trains up to that step, then ends instead of waiting."""
    s = MGRPOSettings.from_args(cfg)
    if s.store is not None and s.train_roles == "planner" and summary.get("budget_spent"):
        get_store(s.store).set_cursor(s.run, PLANNER_END_CURSOR, int(summary["global_step"]))


@register_advantage("mgrpo", settings=MGRPOSettings, prepare_groups=prepare_groups, preflight=check_store,
                    run_ended=mark_planner_end)
def mgrpo(batch: RolloutBatch, cfg: Any) -> dict[str, Tensor]:
    """M-GRPO: GRPO per (prompt, role) on the aligned batch (``prepare_groups`` ran before collation)."""
    if batch.total_reward is None:
        raise ValueError("batch.total_reward is None: compute rewards before advantages")
    mode = getattr(cfg, "scale_rewards", "group") or "group"
    mode = {True: "group", False: "none"}.get(mode, mode)
    adv = hierarchical_advantage(batch.total_reward.detach(), batch.group_index, batch.role, advantage_eps(cfg), mode)
    return {"main": broadcast_to_tokens(adv, batch.completion_mask)}



MGRPO_PRESET = register_method(
    "mgrpo",
    reward_funcs=["mgrpo_reward"],
    advantage_estimator="mgrpo",
    loss_composition="single",
    sampler="plain",
    method_kwargs={**MGRPOSettings.defaults("mgrpo_d_max", "mgrpo_d_max_cap"), **MGRPORewardSettings.defaults()},
    fields={"reward_weights": [1.0], "environment": "planner", "system_prompt": PLANNER_SYSTEM_PROMPT},
    description="M-GRPO (arXiv 2511.13288): planner/executor episodes, executor trajectories aligned to D_max per "
    "planner rollout, GRPO per (prompt, role); R_M = 0.1 format + 0.9 correct, R_S = w_main R_M(parent) + w_local r_local",
)


# `parsimony train --role planner|executor`: one process per role of decoupled training (docs/mgrpo.md)
register_role_flag(ROLES, pop_role, {"executor": "rl.methods.mgrpo_two_process:StoreExecutorTrainer"})
