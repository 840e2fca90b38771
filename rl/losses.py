"""Policy losses, loss aggregation and loss compositions.

    N = rollouts in the (micro-)batch, T = padded completion length

- ``LOSSES``: registry of per-token policy losses
  ``fn(logp, old_logp, adv, mask, cfg, *, weights=None, **kwargs) -> (per_token [N, T], metrics)``.
  ``per_token`` is 0 outside ``mask``; ``metrics`` maps names to detached scalar tensors
  (masked means over the tokens of ``mask``).
- ``aggregate``: per-token loss -> scalar, by ``loss_agg_mode`` (``AGG_MODES``).
- ``COMPOSITIONS``: a composition is ``fn(cfg) -> list[LossTerm]``, saying which loss consumes
  which advantage channel, with which weight, on which rollouts. ``compute_policy_loss`` runs
  the terms. A method is registered rewards + an advantage estimator + a loss composition; the
  trainer never names a method.

Numerical guards: the log-ratio ``logp - old_logp`` and the k3 log-ratio are clamped to
``[-20, 20]`` before ``exp`` (as verl does), so a wild token cannot produce inf; outside that
range the clamped term has no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from rl.pieces import RegisteredPiece, registering

LossFn = Callable[..., "tuple[Tensor, dict[str, Tensor]]"]
CompositionFn = Callable[[Any], "list[LossTerm]"]

LOSSES: dict[str, RegisteredPiece] = {}
COMPOSITIONS: dict[str, RegisteredPiece] = {}

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")

LOG_RATIO_CLAMP = 20.0


# --- registries ----------------------------------------------------------------------------------


def register_loss(
    name: str, *, settings: Any = None, validate: "Callable[[Any], None] | None" = None
) -> Callable[[LossFn], LossFn]:
    """Decorator: register a per-token policy loss under ``name``. ``settings`` / ``validate``:
    the ``method_kwargs`` keys it reads (a ``rewards.settings.MethodSettings`` class, or a mapping
    key -> default) and their check, as for
    :func:`rl.advantages.register_advantage`. The registry keeps a :class:`rl.pieces.RegisteredPiece`."""
    return registering(LOSSES, "loss", name, lambda fn: RegisteredPiece(name, fn, settings if settings is not None else {}, validate))


def get_loss(name: str) -> RegisteredPiece:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; registered: {sorted(LOSSES)}") from None


def register_composition(
    name: str, *, settings: Any = None, validate: "Callable[[Any], None] | None" = None
) -> Callable[[CompositionFn], CompositionFn]:
    """Decorator: register a composition ``fn(cfg) -> list[LossTerm]`` under ``name``.
    ``settings`` / ``validate``: as for :func:`register_loss`."""
    return registering(COMPOSITIONS, "loss composition", name,
                       lambda fn: RegisteredPiece(name, fn, settings if settings is not None else {}, validate))


def get_composition(name: str) -> RegisteredPiece:
    try:
        return COMPOSITIONS[name]
    except KeyError:
        raise ValueError(f"unknown loss composition {name!r}; registered: {sorted(COMPOSITIONS)}") from None


# --- helpers -------------------------------------------------------------------------------------


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Detached mean of x [N, T] over mask [N, T] (0 when the mask is empty)."""
    x = x.detach().to(torch.float32)
    m = mask.detach().to(torch.float32)
    denom = m.sum()
    return torch.where(m > 0, x * m, torch.zeros_like(x)).sum() / torch.where(denom > 0, denom, torch.ones_like(denom))


def _apply_mask(per_token: Tensor, mask: Tensor) -> Tensor:
    """per_token * mask, with masked-out positions exactly 0 even if per_token is nan/inf there."""
    m = mask.to(per_token.dtype)
    return torch.where(mask > 0, per_token * m, torch.zeros_like(per_token))


def _ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """exp(logp - old_logp) [N, T], the log-ratio clamped to +-LOG_RATIO_CLAMP and set to 0 (ratio 1)
    outside ``mask``, so that garbage log-probs on padding cannot reach the loss or its gradient."""
    log_ratio = torch.where(mask > 0, logp - old_logp, torch.zeros_like(logp))
    return torch.exp(log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))


def _epsilons(cfg: Any) -> tuple[float, float]:
    eps_low = getattr(cfg, "epsilon", None)
    eps_low = 0.2 if eps_low is None else float(eps_low)
    eps_high = getattr(cfg, "epsilon_high", None)
    eps_high = eps_low if eps_high is None else float(eps_high)
    return eps_low, eps_high


def _weighted(per_token: Tensor, weights: Tensor | None) -> Tensor:
    """Multiply in importance weights [N, T] (treated as constants: no gradient through them)."""
    if weights is None:
        return per_token
    return per_token * weights.detach().to(per_token.dtype)


# --- losses --------------------------------------------------------------------------------------


IS_LEVELS = ("token", "sequence")


def sequence_log_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """GSPO's length-normalised log-ratio per sequence: ``mean_t (logp - old_logp)`` over the
    row's ``mask`` tokens. logp, old_logp, mask [N, T] -> [N] (0 for a row without tokens)."""
    m = mask.to(logp.dtype)
    log_ratio = torch.where(mask > 0, logp - old_logp, torch.zeros_like(logp))
    n = m.sum(dim=1)
    return (log_ratio * m).sum(dim=1) / torch.where(n > 0, n, torch.ones_like(n))


def _sequence_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """GSPO-token's ratio [N, T]: ``s_i,t = sg[s_i] * pi_t / sg[pi_t]``, ``s_i = exp(sequence_log_ratio)``.

    Its value is ``s_i`` on every token of row i (so clipping it clips the whole sequence), and its
    gradient is ``d s_i,t / d logp_t = s_i``: with one advantage per sequence and
    ``seq-mean-token-mean`` aggregation this is exactly GSPO's sequence-level gradient
    ``s_i A_i (1/|y_i|) sum_t grad logp_t``. The sequence log-ratio is clamped to +-LOG_RATIO_CLAMP."""
    seq = sequence_log_ratio(logp.detach(), old_logp.detach(), mask).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # [N]
    tok = torch.where(mask > 0, logp - logp.detach(), torch.zeros_like(logp))  # value 0, gradient 1
    return torch.exp(seq[:, None] + tok)


def _is_level(cfg: Any) -> str:
    level = getattr(cfg, "importance_sampling_level", None) or "token"
    if level not in IS_LEVELS:
        raise ValueError(f"importance_sampling_level must be one of {list(IS_LEVELS)}, got {level!r}")
    return level


def _clipped(
    logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg: Any, weights: Tensor | None, level: str
) -> tuple[Tensor, dict[str, Tensor]]:
    eps_low, eps_high = _epsilons(cfg)
    ratio = _sequence_ratio(logp, old_logp, mask) if level == "sequence" else _ratio(logp, old_logp, mask)  # [N, T]
    adv = adv.to(ratio.dtype)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)  # = -min(rho A, clip(rho) A)
    c = getattr(cfg, "dual_clip_c", None)
    neg = adv < 0
    if c is not None:
        cap = -adv * float(c)
        dual_active = neg & (loss > cap)
        loss = torch.where(neg, torch.minimum(loss, cap), loss)
    else:
        dual_active = torch.zeros_like(neg)
    loss = _apply_mask(_weighted(loss, weights), mask)
    low = (ratio < 1.0 - eps_low) & neg
    high = (ratio > 1.0 + eps_high) & (adv > 0)
    metrics = {
        "clip_frac_low": _masked_mean(low.float(), mask),
        "clip_frac_high": _masked_mean(high.float(), mask),
        "clip_frac": _masked_mean((low | high).float(), mask),
        "ratio_mean": _masked_mean(ratio, mask),
        "dual_clip_frac": _masked_mean(dual_active.float(), mask),
    }
    return loss, metrics


@register_loss("clipped")
def clipped_loss(
    logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg: Any, *, weights: Tensor | None = None, **kwargs
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO/GRPO clipped surrogate, per token (all inputs [N, T]).

    ``L = -min(rho A, clip(rho, 1 - epsilon, 1 + epsilon_high) A)``, ``rho = exp(logp - old_logp)``.
    With ``cfg.dual_clip_c = c`` (> 1), for ``A < 0`` the loss is further capped: ``min(L, -c A)``.
    ``weights`` [N, T] (e.g. truncated importance-sampling weights) multiply the per-token loss.
    With ``cfg.importance_sampling_level = "sequence"``, ``rho`` is GSPO's sequence ratio
    (see :func:`gspo_loss`).
    """
    return _clipped(logp, old_logp, adv, mask, cfg, weights, _is_level(cfg))


@register_loss("gspo")
def gspo_loss(
    logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg: Any, *, weights: Tensor | None = None, **kwargs
) -> tuple[Tensor, dict[str, Tensor]]:
    """GSPO (Group Sequence Policy Optimization, arXiv 2507.18071), in its token form (GSPO-token).

    ``s_i = exp((1/|y_i|) sum_t (logp_t - old_logp_t))`` over the row's mask tokens;
    ``s_i,t = sg[s_i] * pi_t / sg[pi_t]``; ``L_t = -min(s_i,t A_t, clip(s_i,t, 1 - epsilon, 1 + epsilon_high) A_t)``.
    The clip acts per sequence (``s_i,t`` equals ``s_i``). This is ``clipped`` with
    ``importance_sampling_level: sequence``, whatever that field says. The paper's clip ranges are
    far smaller than GRPO's (3e-4 / 4e-4), since a length-normalised ratio stays near 1.
    """
    return _clipped(logp, old_logp, adv, mask, cfg, weights, "sequence")


@register_loss("cispo")
def cispo_loss(
    logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg: Any, *, weights: Tensor | None = None, **kwargs
) -> tuple[Tensor, dict[str, Tensor]]:
    """CISPO (MiniMax-M1, arXiv 2506.13585): a clipped, stop-gradient importance weight on the log-prob.

    ``L_t = -sg(clip(r_t, 1 - cispo_epsilon_low, 1 + cispo_epsilon_high)) * A_t * logp_t``,
    ``r_t = exp(logp_t - old_logp_t)``, so ``dL/dlogp_t = -clip(r_t) A_t``: unlike the clipped surrogate,
    no token's gradient is dropped; a token far off-policy only has its weight capped.
    ``cispo_epsilon_low`` defaults to 1.0 (no lower bound, as in the paper); ``cispo_epsilon_high``
    defaults to ``epsilon_high``. The loss's value is not the surrogate's (it holds ``logp``); only
    its gradient matters.
    """
    eps_low = getattr(cfg, "cispo_epsilon_low", None)
    eps_low = 1.0 if eps_low is None else float(eps_low)
    eps_high = getattr(cfg, "cispo_epsilon_high", None)
    eps_high = _epsilons(cfg)[1] if eps_high is None else float(eps_high)
    ratio = _ratio(logp, old_logp, mask)  # [N, T]
    w = ratio.detach().clamp(1.0 - eps_low, 1.0 + eps_high)  # [N, T], no gradient
    safe_logp = torch.where(mask > 0, logp, torch.zeros_like(logp))
    loss = _apply_mask(_weighted(-w * adv.to(ratio.dtype) * safe_logp, weights), mask)
    metrics = {
        "clip_frac_low": _masked_mean((ratio < 1.0 - eps_low).float(), mask),
        "clip_frac_high": _masked_mean((ratio > 1.0 + eps_high).float(), mask),
        "clip_frac": _masked_mean(((ratio < 1.0 - eps_low) | (ratio > 1.0 + eps_high)).float(), mask),
        "ratio_mean": _masked_mean(ratio, mask),
        "is_weight_mean": _masked_mean(w, mask),
    }
    return loss, metrics


@register_loss("reinforce")
def reinforce_loss(
    logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg: Any, *, weights: Tensor | None = None, **kwargs
) -> tuple[Tensor, dict[str, Tensor]]:
    """Plain policy gradient ``L = -A * rho`` (no clipping); with old_logp = logp.detach() the
    gradient is ``-A * grad logp``."""
    ratio = _ratio(logp, old_logp, mask)
    loss = _apply_mask(_weighted(-adv.to(ratio.dtype) * ratio, weights), mask)
    return loss, {"ratio_mean": _masked_mean(ratio, mask)}


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(pi || ref), per token: ``exp(d) - d - 1``, ``d = ref - logp``.

    logp [N, T], ref_logp [N, T] -> [N, T], >= 0. ``d`` is clamped to +-20 before ``exp``.
    """
    d = (ref_logp - logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return torch.exp(d) - d - 1.0


# --- aggregation ---------------------------------------------------------------------------------


def importance_correct(
    advantages: dict[str, Tensor], train_logp: Tensor, engine_logp: Tensor, mask: Tensor, cap: float
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Rollout/training mismatch: measure it, and with ``cap > 0`` weight every channel's advantage
    by the truncated importance ratio ``w = min(exp(logp_train_old - logp_engine), cap)``.

    The engine (e.g. vLLM) sampled from its own kernels, so its log-probs differ from the trainer's;
    ``w`` re-weights each token toward the trainer's policy. ``w > 0`` commutes with the clipped
    surrogate's min/clip, so scaling the advantage is the same as scaling the per-token loss.
    train_logp, engine_logp, mask: [N, T]. Returns (advantages, metrics).
    """
    delta = (train_logp.detach() - engine_logp) * mask  # [N, T]
    denom = mask.sum().clamp(min=1)
    metrics = {
        "rollout/logp_mismatch_mean": float(delta.abs().sum() / denom),
        "rollout/logp_mismatch_max": float(delta.abs().max()) if delta.numel() else 0.0,
    }
    if cap <= 0:
        return advantages, metrics
    w = torch.exp(delta).clamp(max=cap) * mask  # [N, T]
    metrics["rollout/is_weight_mean"] = float(w.sum() / denom)
    metrics["rollout/is_capped_frac"] = float(((delta > torch.log(torch.tensor(cap))) & (mask > 0)).sum() / denom)
    return {k: a * w for k, a in advantages.items()}, metrics


def aggregate(
    per_token: Tensor, mask: Tensor, mode: str, max_len: int | None = None, denominator: float | None = None
) -> Tensor:
    """Reduce a per-token loss [N, T] over mask [N, T] to a scalar.

    - ``token-mean``: ``sum(L m) / sum(m)``
    - ``seq-mean-token-mean``: mean, over rows with at least one token, of ``sum_t(L m) / sum_t(m)``
    - ``seq-mean-token-sum``: mean, over rows with at least one token, of ``sum_t(L m)``
    - ``seq-mean-token-sum-norm`` (Dr.GRPO): ``sum(L m) / (N * max_len)``, ``max_len`` defaulting
      to the padded width ``T``

    ``denominator`` replaces the count this mode divides by (tokens, rows with tokens, or rows; see
    :func:`aggregation_denominator`). The trainer passes the count of the whole step's batch, so
    that micro-batches of gradient accumulation add up to exactly the full batch's loss instead of
    a mean of micro-batch means (which over-weights the tokens of short micro-batches).

    An empty mask gives 0, still connected to the graph (its gradient is 0).
    """
    if mode not in AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {mode!r}; valid modes: {list(AGG_MODES)}")
    if per_token.dim() != 2 or mask.shape != per_token.shape:
        raise ValueError(
            f"per_token and mask must both be [N, T], got {tuple(per_token.shape)} and {tuple(mask.shape)}"
        )
    lm = _apply_mask(per_token, mask)  # [N, T]
    m = mask.to(lm.dtype)
    one = torch.ones((), dtype=lm.dtype, device=lm.device)

    def safe_div(a: Tensor, b: Tensor) -> Tensor:
        return a / torch.where(b > 0, b, one)

    fixed = None if denominator is None else torch.as_tensor(float(denominator), dtype=lm.dtype, device=lm.device)
    if mode == "token-mean":
        return safe_div(lm.sum(), m.sum() if fixed is None else fixed)
    if mode == "seq-mean-token-sum-norm":
        n, t = per_token.shape
        rows = n if denominator is None else float(denominator)
        return lm.sum() / max(rows * (t if max_len is None else int(max_len)), 1)
    seq_sum = lm.sum(dim=1)  # [N]
    tokens = m.sum(dim=1)  # [N]
    has = (tokens > 0).to(lm.dtype)  # [N]
    if mode == "seq-mean-token-mean":
        per_seq = safe_div(seq_sum, tokens)
    else:  # seq-mean-token-sum
        per_seq = seq_sum
    return safe_div((per_seq * has).sum(), has.sum() if fixed is None else fixed)


def aggregation_denominator(mask: Tensor, mode: str) -> float:
    """What ``aggregate`` divides by over ``mask`` [N, T]: tokens (``token-mean``), rows with at
    least one token (``seq-mean-token-mean`` / ``seq-mean-token-sum``) or rows
    (``seq-mean-token-sum-norm``, times ``max_len`` there)."""
    if mode not in AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {mode!r}; valid modes: {list(AGG_MODES)}")
    if mode == "token-mean":
        return float(mask.sum())
    if mode == "seq-mean-token-sum-norm":
        return float(mask.shape[0])
    return float((mask.sum(dim=1) > 0).sum())


# --- compositions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossTerm:
    channel: str = "main"  # key in the advantages dict
    loss: str = "clipped"  # name in LOSSES
    weight: float = 1.0
    rollout_mask: str | None = None  # name of a [N] bool in batch.rollout_masks; None = all rollouts


@register_composition("single")
def single(cfg: Any) -> list[LossTerm]:
    """One term: ``cfg.loss_type`` (default ``clipped``) on the ``main`` channel, all rollouts."""
    return [LossTerm("main", loss=getattr(cfg, "loss_type", None) or "clipped")]


def _term_prefixes(terms: list[LossTerm]) -> list[str]:
    """Metric prefix per term: the channel; ``channel.i`` when channels repeat; none for one term."""
    if len(terms) == 1:
        return [""]
    channels = [t.channel for t in terms]
    return [f"{c}/" if channels.count(c) == 1 else f"{c}.{i}/" for i, c in enumerate(channels)]


def compute_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: dict[str, Tensor],
    completion_mask: Tensor,
    terms: list[LossTerm],
    cfg: Any,
    rollout_masks: dict[str, Tensor] | None = None,
    weights: Tensor | None = None,
    denominators: list[float] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over ``terms`` of ``weight * aggregate(loss(channel), token mask)``.

    ``denominators`` (one per term, see :func:`term_denominators`): the aggregation counts of the
    whole step's batch, when this call sees one micro-batch of it.

    logp, old_logp, completion_mask, advantages[*], weights: [N, T]; rollout_masks[*]: [N] bool.
    A term's token mask is ``completion_mask * rollout_masks[term.rollout_mask][:, None]``.
    Aggregation is ``cfg.loss_agg_mode`` (default token-mean), with
    ``max_len = cfg.max_completion_length`` for ``seq-mean-token-sum-norm``. Metrics are the
    loss's own; with more than one term they are prefixed ``"<channel>/"`` and a per-term
    ``"<channel>/loss"`` is added. ``"loss"`` is the weighted total (for one term, that term's loss).
    """
    if not terms:
        raise ValueError("compute_policy_loss needs at least one LossTerm")
    rollout_masks = rollout_masks or {}
    mode = getattr(cfg, "loss_agg_mode", None) or "token-mean"
    max_len = getattr(cfg, "max_completion_length", None)
    total: Tensor | None = None  # every aggregate stays in the graph, even over an empty mask
    metrics: dict[str, Tensor] = {}
    if denominators is not None and len(denominators) != len(terms):
        raise ValueError(f"denominators has {len(denominators)} entries for {len(terms)} loss terms")
    for i, (term, prefix) in enumerate(zip(terms, _term_prefixes(terms))):
        if term.channel not in advantages:
            raise KeyError(f"loss term wants advantage channel {term.channel!r}; batch has {sorted(advantages)}")
        mask = term_mask(term, completion_mask, rollout_masks)
        per_token, m = get_loss(term.loss)(logp, old_logp, advantages[term.channel], mask, cfg, weights=weights)
        term_loss = aggregate(per_token, mask, mode, max_len, None if denominators is None else denominators[i])
        weighted = float(term.weight) * term_loss
        total = weighted if total is None else total + weighted
        for k, v in m.items():
            metrics[prefix + k] = v
        if prefix:
            metrics[prefix + "loss"] = term_loss.detach()
    metrics["loss"] = total.detach()  # the composed loss (one term: that term's), always logged
    return total, metrics


def term_mask(term: LossTerm, completion_mask: Tensor, rollout_masks: dict[str, Tensor]) -> Tensor:
    """The token mask [N, T] a loss term is averaged over: ``completion_mask``, restricted to the
    rollouts of ``term.rollout_mask`` when it names one."""
    if term.rollout_mask is None:
        return completion_mask
    if term.rollout_mask not in rollout_masks:
        raise KeyError(f"loss term wants rollout mask {term.rollout_mask!r}; batch has {sorted(rollout_masks)}")
    rm = rollout_masks[term.rollout_mask]  # [N]
    return completion_mask * rm.to(completion_mask.dtype)[:, None]


def term_denominators(
    terms: list[LossTerm], completion_mask: Tensor, rollout_masks: dict[str, Tensor], mode: str
) -> list[float]:
    """Per term, the aggregation count over a whole batch (pass to ``compute_policy_loss`` for each
    micro-batch of it)."""
    return [aggregation_denominator(term_mask(t, completion_mask, rollout_masks), mode) for t in terms]
