"""RolloutBatch: the tensors every stage after generation works on.

    N = rollouts (prompts x group size G for single-turn rollouts; the number of rows per prompt
        may vary once tools or agents add executor episodes), P = padded prompt length,
        T = padded completion length

``group_index`` [N] says which prompt group a row belongs to (advantage estimators normalise
within it), ``sub_group`` [N] is an optional finer grouping (-1 = none; e.g. the executor calls of
one planner rollout), and ``role`` [N] routes a row to a policy (0 = main). All three come from the
trajectories unchanged.

Prompts are left-padded (so generation continues from the right edge); completions are
right-padded. ``completion_mask`` is 1 on tokens the policy generated and is trained on,
0 on padding and environment-inserted tokens (tool observations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from rollout.types import Trajectory


@dataclass
class RolloutBatch:
    prompt_ids: Tensor  # [N, P] long, left-padded
    prompt_mask: Tensor  # [N, P] long, 1 = real prompt token
    completion_ids: Tensor  # [N, T] long, right-padded
    completion_mask: Tensor  # [N, T] float, 1 = trained-on generated token
    attention_mask_completion: Tensor  # [N, T] long, 1 = any real token (incl. tool observations)
    group_index: Tensor  # [N] long, which prompt the rollout belongs to
    role: Tensor  # [N] long, 0 = main/planner, 1.. = executors
    truncated: Tensor  # [N] bool, hit max_new_tokens without eos
    meta: list[dict[str, Any]] = field(default_factory=list)
    sub_group: Tensor | None = None  # [N] long, -1 = none; None when no trajectory has one
    sampling_logprobs: Tensor | None = None  # [N, T] engine log-probs (None if not returned)
    old_logprobs: Tensor | None = None  # [N, T] policy log-probs before the update
    ref_logprobs: Tensor | None = None  # [N, T] reference-model log-probs (beta > 0)
    # [N, T] the rollout's log-prob of each token it forced (a completion prefix, rollout/prefixes.py), NaN at the
    # tokens the engine sampled; None when no token was forced. The update takes it as their old log-prob.
    forced_logprobs: Tensor | None = None
    rewards: dict[str, Tensor] = field(default_factory=dict)  # name -> [N] or [N, T]
    total_reward: Tensor | None = None  # [N] weighted sum of sequence-level rewards
    # [M] total rewards of the whole step across processes (set under DDP; batch-level statistics
    # such as scale_rewards="batch" use it instead of the local rows). Not per-row: select() drops it.
    global_total_reward: Tensor | None = None
    advantages: dict[str, Tensor] = field(default_factory=dict)  # channel -> [N, T]
    # per-rollout boolean masks that loss terms can select (e.g. "has_tool_signal")
    rollout_masks: dict[str, Tensor] = field(default_factory=dict)  # name -> [N] bool

    @property
    def num_rollouts(self) -> int:
        return self.completion_ids.shape[0]

    @property
    def completion_lengths(self) -> Tensor:  # [N] number of real completion tokens
        return self.attention_mask_completion.sum(dim=1)

    @property
    def input_ids(self) -> Tensor:  # [N, P + T]
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:  # [N, P + T]
        return torch.cat([self.prompt_mask, self.attention_mask_completion], dim=1)

    def select(self, index: Tensor) -> "RolloutBatch":
        """Rows ``index`` of every per-rollout field (for micro-batching)."""
        idx = index.tolist()

        def pick(x):
            return None if x is None else x[index]

        return RolloutBatch(
            prompt_ids=self.prompt_ids[index],
            prompt_mask=self.prompt_mask[index],
            completion_ids=self.completion_ids[index],
            completion_mask=self.completion_mask[index],
            attention_mask_completion=self.attention_mask_completion[index],
            group_index=self.group_index[index],
            role=self.role[index],
            truncated=self.truncated[index],
            meta=[self.meta[i] for i in idx],
            sub_group=pick(self.sub_group),
            sampling_logprobs=pick(self.sampling_logprobs),
            old_logprobs=pick(self.old_logprobs),
            ref_logprobs=pick(self.ref_logprobs),
            forced_logprobs=pick(self.forced_logprobs),
            rewards={k: v[index] for k, v in self.rewards.items()},
            total_reward=pick(self.total_reward),
            advantages={k: v[index] for k, v in self.advantages.items()},
            rollout_masks={k: v[index] for k, v in self.rollout_masks.items()},
        )


def collate(trajectories: Sequence[Trajectory], pad_token_id: int) -> RolloutBatch:
    """Stack trajectories into a RolloutBatch (prompts left-padded, completions right-padded)."""
    if not trajectories:
        raise ValueError("cannot collate an empty list of trajectories")
    n = len(trajectories)
    p_len = max(len(t.prompt_ids) for t in trajectories)
    t_len = max(1, max(len(t.completion_ids) for t in trajectories))
    prompt_ids = torch.full((n, p_len), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((n, p_len), dtype=torch.long)
    completion_ids = torch.full((n, t_len), pad_token_id, dtype=torch.long)
    completion_mask = torch.zeros((n, t_len), dtype=torch.float32)
    attn_c = torch.zeros((n, t_len), dtype=torch.long)
    has_lp = all(t.logprobs is not None for t in trajectories)
    sampling_lp = torch.zeros((n, t_len), dtype=torch.float32) if has_lp else None
    forced = None
    if any(t.forced_logprobs is not None for t in trajectories):
        forced = torch.full((n, t_len), float("nan"), dtype=torch.float32)
    sub_group = None
    if any(getattr(t, "sub_group", None) is not None for t in trajectories):
        sub_group = torch.tensor([-1 if t.sub_group is None else t.sub_group for t in trajectories], dtype=torch.long)
    for i, t in enumerate(trajectories):
        pl, cl = len(t.prompt_ids), len(t.completion_ids)
        if pl:
            prompt_ids[i, p_len - pl :] = torch.tensor(t.prompt_ids, dtype=torch.long)
            prompt_mask[i, p_len - pl :] = 1
        if cl:
            completion_ids[i, :cl] = torch.tensor(t.completion_ids, dtype=torch.long)
            completion_mask[i, :cl] = torch.tensor(t.completion_mask, dtype=torch.float32)
            attn_c[i, :cl] = 1
            if sampling_lp is not None:
                sampling_lp[i, :cl] = torch.tensor(t.logprobs, dtype=torch.float32)
            if forced is not None and t.forced_logprobs is not None:
                forced[i, :cl] = torch.tensor(t.forced_logprobs, dtype=torch.float32)
    return RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        attention_mask_completion=attn_c,
        group_index=torch.tensor([t.group_index for t in trajectories], dtype=torch.long),
        role=torch.tensor([t.role for t in trajectories], dtype=torch.long),
        truncated=torch.tensor([t.truncated for t in trajectories], dtype=torch.bool),
        meta=[dict(t.meta) for t in trajectories],
        sub_group=sub_group,
        sampling_logprobs=sampling_lp,
        forced_logprobs=forced,
    )


def reward_tensor(values: list, width: int) -> torch.Tensor:
    """Sequence-level values -> [N]; token-level lists -> [N, width] (zero-padded)."""
    if not any(isinstance(v, (list, tuple)) for v in values):
        return torch.tensor(values, dtype=torch.float32)  # [N]
    out = torch.zeros((len(values), width), dtype=torch.float32)  # [N, T]
    for i, v in enumerate(values):
        if isinstance(v, (list, tuple)):
            n = min(len(v), width)
            out[i, :n] = torch.tensor(list(v)[:n], dtype=torch.float32)
    return out
