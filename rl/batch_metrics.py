"""Scalar metrics of a finished :class:`rl.batch.RolloutBatch` (what a GRPO step logs about its
rollouts): pure functions of the batch, so every trainer and test computes them the same way."""

from __future__ import annotations

from typing import Any

import torch

from rl.batch import RolloutBatch


def batch_metrics(batch: RolloutBatch, reward_metrics: dict[str, float] | None = None) -> dict[str, float]:
    """A finished batch's scalar metrics: rewards (mean/std per function), accuracy, lengths,
    the share of groups (by ``group_index``, any sizes) with no reward variance, the reward
    functions' own counters, episode counts, rollout-mask shares and advantage magnitudes."""
    m: dict[str, float] = {}
    for name, r in batch.rewards.items():
        valid = r[~torch.isnan(r)] if r.dim() == 1 else r.flatten()
        if valid.numel():
            m[f"rewards/{name}/mean"] = float(valid.mean())
            m[f"rewards/{name}/std"] = float(valid.std()) if valid.numel() > 1 else 0.0
    if "accuracy" in batch.rewards:
        m["accuracy"] = m.get("rewards/accuracy/mean", float("nan"))
    m["reward"] = float(batch.total_reward.mean())
    lengths = batch.completion_lengths.float()
    m["completion/mean_length"] = float(lengths.mean())
    m["completion/min_length"] = float(lengths.min())
    m["completion/max_length"] = float(lengths.max())
    m["completion/truncated_frac"] = float(batch.truncated.float().mean())
    done = lengths[~batch.truncated]  # the completions that ended (TRL's "terminated" lengths)
    m["completion/mean_terminated_length"] = float(done.mean()) if done.numel() else 0.0
    m["completion/min_terminated_length"] = float(done.min()) if done.numel() else 0.0
    m["completion/max_terminated_length"] = float(done.max()) if done.numel() else 0.0
    m["reward_std"] = float(batch.total_reward.std()) if batch.total_reward.numel() > 1 else 0.0
    _, inv = torch.unique(batch.group_index, return_inverse=True)  # groups by group_index, any sizes
    k = int(inv.max()) + 1
    r = batch.total_reward.double()
    lo = torch.full((k,), float("inf"), dtype=torch.float64).scatter_reduce(0, inv, r, "amin")
    hi = torch.full((k,), float("-inf"), dtype=torch.float64).scatter_reduce(0, inv, r, "amax")
    m["zero_std_frac"] = float(((hi - lo) < 1e-12).double().mean())
    m.update(reward_metrics or {})
    m.update(episode_metrics(batch.meta, batch.rewards.get("accuracy")))
    for name, rm in batch.rollout_masks.items():  # e.g. HDPO's share of rollouts with a tool signal
        m[f"rollout_masks/{name}/frac"] = float(rm.float().mean()) if rm.numel() else 0.0
    for ch, a in batch.advantages.items():
        mask = batch.completion_mask > 0
        m[f"advantages/{ch}/abs_mean"] = float(a[mask].abs().mean()) if mask.any() else 0.0
    m.update(text_metric_stats(batch))
    return m


def text_metric_fns(dataset: str | None) -> dict[str, Any]:
    """The per-completion text metrics of an embedded task (``dataset: task:<name>``; e.g. the re-checks of
    ``word_problems_think``), ``{}`` for other data (:func:`curriculum.tasks.task_text_metrics`)."""
    if not isinstance(dataset, str) or not dataset.startswith("task:"):
        return {}
    from curriculum.tasks import task_text_metrics

    return task_text_metrics(dataset[len("task:"):])


def text_metric_stats(batch: RolloutBatch) -> dict[str, float]:
    """``text/<name>/mean`` of each text metric the rollouts carry (``meta["text_metrics"]``) and
    ``text/<name>/adv_corr``: the pooled within-group correlation of the metric with the rollout's
    advantage (the mean over its trained tokens, summed over channels). Both are centred within each
    group first, so the number says whether, among the completions of one prompt, more of the behaviour
    got a higher (> 0) or lower (< 0) advantage: what the update pushes it towards. Left out when no
    group has variance in both."""
    names = sorted({k for meta in batch.meta for k in (meta.get("text_metrics") or {})})
    if not names:
        return {}
    mask = batch.completion_mask  # [N, T]
    tokens = mask.sum(dim=1).clamp(min=1.0)
    adv = sum((a * mask).sum(dim=1) / tokens for a in batch.advantages.values()) if batch.advantages else None
    _, inv = torch.unique(batch.group_index, return_inverse=True)
    k = int(inv.max()) + 1

    def centred(x: torch.Tensor) -> torch.Tensor:  # [N] minus its group's mean
        sums = torch.zeros(k, dtype=torch.float64).index_add(0, inv, x)
        counts = torch.zeros(k, dtype=torch.float64).index_add(0, inv, torch.ones_like(x))
        return x - (sums / counts)[inv]

    out: dict[str, float] = {}
    for name in names:
        vals = [(meta.get("text_metrics") or {}).get(name) for meta in batch.meta]
        keep = torch.tensor([v is not None for v in vals])
        x = torch.tensor([float(v) if v is not None else 0.0 for v in vals], dtype=torch.float64)
        out[f"text/{name}/mean"] = float(x[keep].mean()) if keep.any() else float("nan")
        if adv is None or not keep.all():
            continue
        cx, ca = centred(x), centred(adv.double())
        denom = float(cx.norm() * ca.norm())
        if denom > 0:  # left out when undefined (no variance within any group)
            out[f"text/{name}/adv_corr"] = float((cx * ca).sum()) / denom
    return out


# TRL's name for one of ours (so that a W&B workspace built for TRL's GRPOTrainer finds its plots); both are logged
TRL_METRIC_NAMES = {
    "completion/mean_length": "completions/mean_length",
    "completion/min_length": "completions/min_length",
    "completion/max_length": "completions/max_length",
    "completion/truncated_frac": "completions/clipped_ratio",
    "completion/mean_terminated_length": "completions/mean_terminated_length",
    "completion/min_terminated_length": "completions/min_terminated_length",
    "completion/max_terminated_length": "completions/max_terminated_length",
    "zero_std_frac": "frac_reward_zero_std",
    "lr": "learning_rate",
    "clip_frac_low": "clip_ratio/low_mean",
    "clip_frac_high": "clip_ratio/high_mean",
    "clip_frac": "clip_ratio/region_mean",
    "tools/calls_mean": "tools/call_frequency",
}


def with_trl_names(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` plus TRL's name of each metric that TRL logs under another one
    (:data:`TRL_METRIC_NAMES`); ``reward``, ``reward_std``, ``rewards/<f>/mean|std``, ``kl``, ``entropy``
    and ``grad_norm`` are already TRL's names."""
    extra = {TRL_METRIC_NAMES[k]: v for k, v in metrics.items() if k in TRL_METRIC_NAMES and TRL_METRIC_NAMES[k] not in metrics}
    return {**metrics, **extra} if extra else metrics


def episode_metrics(meta: list[dict[str, Any]], accuracy: torch.Tensor | None = None) -> dict[str, float]:
    """Counts that multi-turn episodes record in the meta (turns, tool calls), when present, and the
    accuracy per tool-call bucket (0, 1, 2, 3+) when there is an ``accuracy`` reward."""
    m: dict[str, float] = {}
    calls = [x.get("tool_calls") for x in meta]
    if accuracy is not None and accuracy.dim() == 1 and calls and all(isinstance(c, (int, float)) for c in calls):
        for bucket in ("0", "1", "2", "3+"):
            rows = [i for i, c in enumerate(calls) if (str(int(c)) == bucket or (bucket == "3+" and c >= 3))]
            vals = [float(accuracy[i]) for i in rows if not torch.isnan(accuracy[i])]
            if vals:
                m[f"tools/accuracy_at_{bucket}_calls"] = sum(vals) / len(vals)
    for key, name in (("turns", "episode/turns"), ("observation_tokens", "episode/observation_tokens"),
                      ("tool_calls", "tools/calls"), ("tool_errors", "tools/errors")):
        vals = [float(x[key]) for x in meta if isinstance(x.get(key), (int, float))]
        if vals:
            m[f"{name}_mean"] = sum(vals) / len(vals)
            if key == "tool_calls":
                m["tools/zero_calls_frac"] = sum(v == 0 for v in vals) / len(vals)
    return m
