"""Policy losses, k3, aggregation modes and loss compositions against hand-computed values.

Ratios are set exactly: old_logp = 0 and logp = log(rho), in float64.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from rl.losses import (
    AGG_MODES,
    COMPOSITIONS,
    LOSSES,
    LossTerm,
    aggregate,
    aggregation_denominator,
    compute_policy_loss,
    get_composition,
    get_loss,
    k3_kl,
    register_composition,
    register_loss,
    term_denominators,
)

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def cfg(**kw):
    base = dict(epsilon=0.2, epsilon_high=None, dual_clip_c=None, loss_agg_mode="token-mean")
    base.update(kw)
    return SimpleNamespace(**base)


def logp_for(ratios):
    """logp (leaf, requires grad) and old_logp = 0 so that exp(logp - old) == ratios."""
    lp = torch.log(t(ratios)).requires_grad_(True)
    return lp, torch.zeros_like(lp)


def close(a, b, tol=1e-9):
    if a.dtype == torch.float32:  # metrics are float32 whatever the input dtype
        tol = max(tol, 1e-6)
    assert torch.allclose(a.detach().to(D), t(b), atol=tol, rtol=0), (a, b)


# --- clipped ---------------------------------------------------------------------------------------

RATIOS = [[1.0, 1.1, 1.5, 0.5], [1.0, 1.1, 1.5, 0.5]]
ADV = [[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]


def test_clipped_values_and_gradients_symmetric():
    lp, old = logp_for(RATIOS)
    loss, m = get_loss("clipped")(lp, old, t(ADV), torch.ones(2, 4, dtype=D), cfg())
    # A > 0: -min(rho, clip(rho, .8, 1.2)):  1 -> -1, 1.1 -> -1.1, 1.5 -> -1.2 (clipped), 0.5 -> -0.5
    # A < 0:  max(rho, clip(rho, .8, 1.2)):  1 ->  1, 1.1 ->  1.1, 1.5 ->  1.5, 0.5 -> 0.8 (clipped)
    close(loss, [[-1.0, -1.1, -1.2, -0.5], [1.0, 1.1, 1.5, 0.8]])
    loss.sum().backward()
    # d(-A rho)/d logp = -A rho where unclipped, 0 where the clipped branch is taken
    close(lp.grad, [[-1.0, -1.1, 0.0, -0.5], [1.0, 1.1, 1.5, 0.0]])
    close(m["clip_frac_low"], 1 / 8)  # rho=0.5 with A<0
    close(m["clip_frac_high"], 1 / 8)  # rho=1.5 with A>0
    close(m["clip_frac"], 2 / 8)
    close(m["ratio_mean"], 8.2 / 8)
    close(m["dual_clip_frac"], 0.0)
    assert all(v.dim() == 0 and not v.requires_grad for v in m.values())


def test_clipped_scales_with_advantage_magnitude():
    lp, old = logp_for([[1.5, 0.5, 1.1]])
    loss, _ = get_loss("clipped")(lp, old, t([[2.0, -3.0, 0.0]]), torch.ones(1, 3, dtype=D), cfg())
    # 2 * -1.2; -3 * -0.8 = 2.4 (low clip); A=0 -> 0
    close(loss, [[-2.4, 2.4, 0.0]])


def test_clipped_mask_zeroes_loss_and_restricts_metrics():
    lp, old = logp_for(RATIOS)
    mask = t([[1, 1, 1, 0], [1, 1, 1, 1]])
    lp.data[0, 3] = float("nan")  # garbage under the mask must not leak
    loss, m = get_loss("clipped")(lp, old, t(ADV), mask, cfg())
    close(loss, [[-1.0, -1.1, -1.2, 0.0], [1.0, 1.1, 1.5, 0.8]])
    close(m["clip_frac_low"], 1 / 7)
    close(m["clip_frac_high"], 1 / 7)
    close(m["clip_frac"], 2 / 7)
    close(m["ratio_mean"], (1.0 + 1.1 + 1.5 + 4.1) / 7)
    loss.sum().backward()
    close(lp.grad, [[-1.0, -1.1, 0.0, 0.0], [1.0, 1.1, 1.5, 0.0]])


def test_clipped_asymmetric_eps_high():
    # epsilon 0.2, epsilon_high 0.28: ratio range [0.8, 1.28]
    lp, old = logp_for([[1.25, 1.3, 0.75, 1.25]])
    loss, m = get_loss("clipped")(lp, old, t([[1.0, 1.0, -1.0, -1.0]]), torch.ones(1, 4, dtype=D),
                                  cfg(epsilon_high=0.28))
    # +1, 1.25 -> -1.25 (inside); +1, 1.3 -> -1.28 (clipped high); -1, 0.75 -> 0.8 (clipped low);
    # -1, 1.25 -> 1.25 (pessimistic branch is the unclipped one)
    close(loss, [[-1.25, -1.28, 0.8, 1.25]])
    loss.sum().backward()
    close(lp.grad, [[-1.25, 0.0, 0.0, 1.25]])
    close(m["clip_frac_high"], 1 / 4)
    close(m["clip_frac_low"], 1 / 4)
    # the same 1.25 is clipped under the symmetric default
    lp2, old2 = logp_for([[1.25]])
    loss2, m2 = get_loss("clipped")(lp2, old2, t([[1.0]]), torch.ones(1, 1, dtype=D), cfg())
    close(loss2, [[-1.2]])
    close(m2["clip_frac_high"], 1.0)


def test_clipped_dual_clip():
    lp, old = logp_for([[4.0, 2.0, 4.0, 4.0]])
    adv = t([[-1.0, -1.0, 1.0, -2.0]])
    loss, m = get_loss("clipped")(lp, old, adv, torch.ones(1, 4, dtype=D), cfg(dual_clip_c=3.0))
    # A=-1, rho=4: PPO loss max(4, 1.2) = 4, capped at -c A = 3 (dual clip, no gradient)
    # A=-1, rho=2: 2 < 3, untouched. A=+1, rho=4: -1.2, dual clip does not apply to A>0.
    # A=-2, rho=4: max(8, 2.4) = 8, capped at 6
    close(loss, [[3.0, 2.0, -1.2, 6.0]])
    loss.sum().backward()
    close(lp.grad, [[0.0, 2.0, 0.0, 0.0]])
    close(m["dual_clip_frac"], 2 / 4)
    # without dual clip the same tokens are unbounded
    lp2, old2 = logp_for([[4.0, 2.0, 4.0, 4.0]])
    loss2, m2 = get_loss("clipped")(lp2, old2, adv, torch.ones(1, 4, dtype=D), cfg())
    close(loss2, [[4.0, 2.0, -1.2, 8.0]])
    close(m2["dual_clip_frac"], 0.0)


def test_clipped_defaults_when_cfg_is_bare():
    lp, old = logp_for([[1.5, 0.5]])
    loss, _ = get_loss("clipped")(lp, old, t([[1.0, -1.0]]), torch.ones(1, 2, dtype=D), SimpleNamespace())
    close(loss, [[-1.2, 0.8]])  # epsilon 0.2 both sides


def test_on_policy_ratio_is_one_and_gradient_is_minus_advantage():
    lp = t([[-0.3, -2.0], [-1.0, -0.1]]).requires_grad_(True)
    adv = t([[0.5, 0.5], [-2.0, -2.0]])
    for name in ("clipped", "reinforce"):
        lp.grad = None
        loss, m = get_loss(name)(lp, lp.detach(), adv, torch.ones(2, 2, dtype=D), cfg())
        close(loss, [[-0.5, -0.5], [2.0, 2.0]])
        loss.sum().backward()
        close(lp.grad, [[-0.5, -0.5], [2.0, 2.0]])
        close(m["ratio_mean"], 1.0)


def test_importance_weights_multiply_loss_not_differentiated():
    lp, old = logp_for([[1.1, 1.5, 0.5]])
    w = t([[2.0, 0.5, 0.0]]).requires_grad_(True)
    loss, _ = get_loss("clipped")(lp, old, t([[1.0, 1.0, -1.0]]), torch.ones(1, 3, dtype=D), cfg(), weights=w)
    close(loss, [[-2.2, -0.6, 0.0]])
    loss.sum().backward()
    close(lp.grad, [[-2.2, 0.0, 0.0]])
    assert w.grad is None


def test_reinforce_is_unclipped():
    lp, old = logp_for([[1.5, 0.5]])
    loss, m = get_loss("reinforce")(lp, old, t([[1.0, -2.0]]), torch.ones(1, 2, dtype=D), cfg())
    close(loss, [[-1.5, 1.0]])
    loss.sum().backward()
    close(lp.grad, [[-1.5, 1.0]])
    close(m["ratio_mean"], 1.0)


def test_losses_accept_extra_kwargs():
    lp, old = logp_for([[1.0]])
    for name in ("clipped", "reinforce"):
        get_loss(name)(lp, old, t([[1.0]]), torch.ones(1, 1, dtype=D), cfg(), weights=None, future_thing=3)


# --- k3 ----------------------------------------------------------------------------------------------


def test_k3_values():
    logp = t([[0.0, 0.0, 0.0, -1.0]])
    ref = t([[0.0, 1.0, -1.0, math.log(2) - 1.0]])
    # d = ref - logp = [0, 1, -1, ln 2]: e^d - d - 1 = [0, e - 2, 1/e, 1 - ln 2]
    close(k3_kl(logp, ref), [[0.0, math.e - 2.0, 1.0 / math.e, 1.0 - math.log(2)]], tol=1e-12)


def test_k3_non_negative_and_finite():
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(16, 32, generator=g) * 10
    ref = torch.randn(16, 32, generator=g) * 10
    kl = k3_kl(logp, ref)
    assert torch.isfinite(kl).all() and (kl >= 0).all()


# --- aggregation -------------------------------------------------------------------------------------

# row 0: 4 tokens [1,2,3,4]; row 1: 2 tokens [5,6]; row 2: 1 token [9]; row 3: no tokens
AGG_L = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 100.0, float("nan")], [100.0, 9.0, 100.0, 100.0], [7.0, 7.0, 7.0, 7.0]]
AGG_M = [[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    "mode,max_len,expected,grad_row0,grad_row1,grad_row2",
    [
        ("token-mean", None, 30 / 7, 1 / 7, 1 / 7, 1 / 7),  # 30 over 7 tokens
        ("seq-mean-token-mean", None, (2.5 + 5.5 + 9.0) / 3, 1 / 12, 1 / 6, 1 / 3),  # empty row excluded
        ("seq-mean-token-sum", None, (10 + 11 + 9) / 3, 1 / 3, 1 / 3, 1 / 3),
        ("seq-mean-token-sum-norm", None, 30 / 16, 1 / 16, 1 / 16, 1 / 16),  # N=4 * T=4
        ("seq-mean-token-sum-norm", 10, 30 / 40, 1 / 40, 1 / 40, 1 / 40),  # N=4 * max_len=10
    ],
)
def test_aggregate_modes_on_ragged_mask(mode, max_len, expected, grad_row0, grad_row1, grad_row2):
    L = t(AGG_L).requires_grad_(True)
    mask = t(AGG_M)
    out = aggregate(L, mask, mode, max_len)
    assert out.dim() == 0
    close(out, expected)
    out.backward()
    g = torch.zeros(4, 4, dtype=D)
    g[0, :] = grad_row0
    g[1, :2] = grad_row1
    g[2, 1] = grad_row2
    close(L.grad, g.tolist())  # masked positions (even nan ones) get exactly 0


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregate_zero_tokens_is_zero_with_grad(mode):
    L = t([[3.0, float("nan")], [2.0, 1.0]]).requires_grad_(True)
    out = aggregate(L, torch.zeros(2, 2, dtype=D), mode)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(L.grad, torch.zeros(2, 2, dtype=D))


def test_aggregate_unknown_mode():
    with pytest.raises(ValueError, match="token-mean"):
        aggregate(torch.ones(1, 1), torch.ones(1, 1), "sum")
    assert AGG_MODES == ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


@pytest.mark.parametrize("mode", AGG_MODES)
def test_micro_batches_with_the_batch_denominator_add_up_to_the_full_batch(mode):
    # rows 0-1 hold 6 tokens, rows 2-3 hold 1: a mean of the two micro-batch means would weight
    # the single token of the second half like the first half's six
    full = aggregate(t(AGG_L), t(AGG_M), mode, 10)
    denom = aggregation_denominator(t(AGG_M), mode)
    assert denom == {"token-mean": 7.0, "seq-mean-token-sum-norm": 4.0}.get(mode, 3.0)
    halves = [aggregate(t(AGG_L)[rows], t(AGG_M)[rows], mode, 10, denom) for rows in (slice(0, 2), slice(2, 4))]
    close(halves[0] + halves[1], full.item())
    if mode in ("token-mean", "seq-mean-token-mean"):
        mean_of_means = sum(aggregate(t(AGG_L)[r], t(AGG_M)[r], mode, 10) for r in (slice(0, 2), slice(2, 4))) / 2
        assert abs(mean_of_means.item() - full.item()) > 0.5


def test_term_denominators_follow_each_terms_rollout_mask():
    terms = [LossTerm("main"), LossTerm("aux", rollout_mask="tool")]
    rm = {"tool": torch.tensor([True, False, True])}
    assert term_denominators(terms, t(CMASK), rm, "token-mean") == [5.0, 4.0]
    assert term_denominators(terms, t(CMASK), rm, "seq-mean-token-mean") == [3.0, 2.0]
    lp, old = _on_policy()
    batch_denoms = term_denominators(terms, t(CMASK), rm, "token-mean")
    whole, _ = compute_policy_loss(lp, old, {"main": t(MAIN), "aux": t(AUX)}, t(CMASK), terms, cfg(), rollout_masks=rm)
    parts = [
        compute_policy_loss(lp[r], old[r], {"main": t(MAIN)[r], "aux": t(AUX)[r]}, t(CMASK)[r], terms, cfg(),
                            rollout_masks={"tool": rm["tool"][r]}, denominators=batch_denoms)[0]
        for r in (slice(0, 1), slice(1, 3))
    ]
    close(parts[0] + parts[1], whole.item())
    with pytest.raises(ValueError, match="denominators has 1 entries for 2 loss terms"):
        compute_policy_loss(lp, old, {"main": t(MAIN), "aux": t(AUX)}, t(CMASK), terms, cfg(), rollout_masks=rm,
                            denominators=[1.0])


# --- compositions ------------------------------------------------------------------------------------

# 3 rollouts x 2 tokens, on-policy (ratio 1): clipped loss per token = -A.
MAIN = [[1.0, 1.0], [2.0, 0.0], [-1.0, -1.0]]
AUX = [[10.0, 10.0], [20.0, 0.0], [30.0, 30.0]]
CMASK = [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]


def _on_policy():
    lp = t([[-0.5, -1.0], [-0.2, -3.0], [-0.7, -0.4]]).requires_grad_(True)
    return lp, lp.detach()


def test_compute_policy_loss_two_terms_with_rollout_mask():
    lp, old = _on_policy()
    terms = [LossTerm("main"), LossTerm("aux", weight=0.5, rollout_mask="tool")]
    rm = {"tool": torch.tensor([True, False, True])}
    loss, m = compute_policy_loss(lp, old, {"main": t(MAIN), "aux": t(AUX)}, t(CMASK), terms, cfg(),
                                  rollout_masks=rm)
    # main, token-mean over 5 tokens: -(1 + 1 + 2 - 1 - 1) / 5 = -0.4
    # aux, rows 0 and 2 only (4 tokens): -(10 + 10 + 30 + 30) / 4 = -20, weight 0.5 -> -10
    close(loss, -10.4)
    loss.backward()
    # row 0: -1/5 - 0.5*10/4 = -1.45; row 1: -2/5 (aux masked), pad 0; row 2: 1/5 - 0.5*30/4 = -3.55
    close(lp.grad, [[-1.45, -1.45], [-0.4, 0.0], [-3.55, -3.55]])
    close(m["main/loss"], -0.4)
    close(m["aux/loss"], -20.0)
    close(m["loss"], -10.4)  # the weighted total
    for k in ("clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean", "dual_clip_frac"):
        assert f"main/{k}" in m and f"aux/{k}" in m
    close(m["aux/ratio_mean"], 1.0)


def test_compute_policy_loss_same_channel_twice_keeps_metrics_apart():
    lp, old = _on_policy()
    terms = [LossTerm("main"), LossTerm("main", loss="reinforce", weight=2.0)]
    loss, m = compute_policy_loss(lp, old, {"main": t(MAIN)}, t(CMASK), terms, cfg())
    close(loss, -0.4 * 3)
    assert "main.0/clip_frac" in m and "main.1/ratio_mean" in m


def test_compute_policy_loss_single_term_metrics_unprefixed_and_agg_mode():
    lp, old = _on_policy()
    c = cfg(loss_agg_mode="seq-mean-token-sum-norm", max_completion_length=5)
    loss, m = compute_policy_loss(lp, old, {"main": t(MAIN)}, t(CMASK), get_composition("single")(c), c)
    close(loss, -2.0 / (3 * 5))  # sum -2 over N=3 x max_len=5
    assert "clip_frac" in m and not any("/" in k for k in m)
    close(m["loss"], -2.0 / (3 * 5))  # one term: the composed loss is that term's (logged as "loss")
    c = cfg(loss_agg_mode="seq-mean-token-mean")
    loss, _ = compute_policy_loss(lp, old, {"main": t(MAIN)}, t(CMASK), [LossTerm()], c)
    close(loss, (-1.0 - 2.0 + 1.0) / 3)  # row means -1, -2, 1


def test_compute_policy_loss_empty_rollout_mask_contributes_zero():
    lp, old = _on_policy()
    terms = [LossTerm("main"), LossTerm("aux", rollout_mask="tool")]
    rm = {"tool": torch.zeros(3, dtype=torch.bool)}
    loss, m = compute_policy_loss(lp, old, {"main": t(MAIN), "aux": t(AUX)}, t(CMASK), terms, cfg(),
                                  rollout_masks=rm)
    close(loss, -0.4)
    close(m["aux/loss"], 0.0)
    close(m["aux/clip_frac"], 0.0)
    loss.backward()
    close(lp.grad, [[-0.2, -0.2], [-0.4, 0.0], [0.2, 0.2]])
    # a lone term that selects nothing still returns a differentiable 0
    lp.grad = None
    loss, _ = compute_policy_loss(lp, old, {"aux": t(AUX)}, t(CMASK), [LossTerm("aux", rollout_mask="tool")],
                                  cfg(), rollout_masks=rm)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(lp.grad, torch.zeros(3, 2, dtype=D))


def test_compute_policy_loss_passes_weights():
    lp, old = _on_policy()
    w = t([[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    loss, _ = compute_policy_loss(lp, old, {"main": t(MAIN)}, t(CMASK), [LossTerm()], cfg(), weights=w)
    close(loss, -(2 + 2 + 0 - 1 - 1) / 5)


def test_compute_policy_loss_errors():
    lp, old = _on_policy()
    with pytest.raises(ValueError, match="at least one"):
        compute_policy_loss(lp, old, {"main": t(MAIN)}, t(CMASK), [], cfg())
    with pytest.raises(KeyError, match="aux"):
        compute_policy_loss(lp, old, {"main": t(MAIN)}, t(CMASK), [LossTerm("aux")], cfg())
    with pytest.raises(KeyError, match="tool"):
        compute_policy_loss(lp, old, {"main": t(MAIN)}, t(CMASK), [LossTerm(rollout_mask="tool")], cfg())
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        compute_policy_loss(lp, old, {"main": t(MAIN)}, t(CMASK), [LossTerm(loss="nope")], cfg())


# --- registries --------------------------------------------------------------------------------------


def test_single_composition_uses_loss_type():
    assert get_composition("single")(SimpleNamespace()) == [LossTerm("main", "clipped", 1.0, None)]
    assert get_composition("single")(SimpleNamespace(loss_type="reinforce")) == [LossTerm("main", "reinforce")]


def test_registries_duplicate_and_unknown():
    assert {"clipped", "reinforce"} <= set(LOSSES) and "single" in COMPOSITIONS
    with pytest.raises(ValueError, match="already registered"):
        register_loss("clipped")(lambda *a, **k: None)
    with pytest.raises(ValueError, match="already registered"):
        register_composition("single")(lambda c: [])
    with pytest.raises(ValueError, match=r"unknown loss 'nope'.*clipped"):
        get_loss("nope")
    with pytest.raises(ValueError, match=r"unknown loss composition 'nope'.*single"):
        get_composition("nope")
    try:
        @register_composition("_test_two")
        def two(c):
            return [LossTerm("main"), LossTerm("aux", weight=0.1)]

        assert get_composition("_test_two")(None)[1].weight == 0.1
    finally:
        COMPOSITIONS.pop("_test_two", None)


def test_importance_correct_by_hand():
    from rl.losses import importance_correct

    train = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, 0.0]])  # [N=2, T=3]
    engine = torch.tensor([[-1.5, -1.0, -0.5], [-1.0, -3.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv = {"main": torch.tensor([[2.0, 2.0, 2.0], [-1.0, -1.0, 0.0]])}
    # delta = train - engine = [[0.5, -1, 0], [0, 2, (masked)]]
    out, m = importance_correct(adv, train, engine, mask, cap=2.0)
    assert m["rollout/logp_mismatch_mean"] == pytest.approx((0.5 + 1 + 0 + 0 + 2) / 5)
    assert m["rollout/logp_mismatch_max"] == pytest.approx(2.0)
    w = torch.tensor([[math.exp(0.5), math.exp(-1.0), 1.0], [1.0, 2.0, 0.0]])  # exp(2) capped at 2
    assert torch.allclose(out["main"], adv["main"] * w)
    assert m["rollout/is_capped_frac"] == pytest.approx(1 / 5)
    assert m["rollout/is_weight_mean"] == pytest.approx(float(w.sum()) / 5)
    same, m0 = importance_correct(adv, train, engine, mask, cap=0.0)  # off: measured, not applied
    assert same["main"] is adv["main"] and "rollout/is_weight_mean" not in m0


# --- GSPO (sequence-level ratio) -------------------------------------------------------------------

# old_logp = 0: row 0 log-ratios average 0.05 (s = e^0.05, inside [0.8, 1.2]); row 1 averages 0.3 over
# its 2 tokens (s = e^0.3 = 1.35 > 1.2, A > 0: clipped; the padded 5.0 is ignored); row 2 averages
# -0.5 (s = e^-0.5 = 0.61 < 0.8, A < 0: clipped)
GSPO_LOGP = [[0.3, -0.3, 0.15], [0.6, 0.0, 5.0], [-0.5, -0.4, -0.6]]
GSPO_MASK = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
GSPO_ADV = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [-1.0, -1.0, -1.0]]


def _gspo_inputs():
    lp = t(GSPO_LOGP).requires_grad_(True)
    return lp, torch.zeros_like(lp), t(GSPO_ADV), t(GSPO_MASK)


def test_gspo_values_gradients_and_per_sequence_clipping():
    lp, old, adv, mask = _gspo_inputs()
    per_token, m = get_loss("gspo")(lp, old, adv, mask, cfg())
    s0 = math.exp(0.05)
    # the ratio's value is the sequence's on every token: row 0 -s0 A; rows 1 and 2 clipped at 1.2 / 0.8
    close(per_token, [[-s0, -s0, -s0], [-1.2, -1.2, 0.0], [0.8, 0.8, 0.8]])
    close(m["ratio_mean"], (3 * s0 + 2 * math.exp(0.3) + 3 * math.exp(-0.5)) / 8)
    close(m["clip_frac_high"], 2 / 8)
    close(m["clip_frac_low"], 3 / 8)
    per_token.sum().backward()
    # token form: d s_i,t / d logp_t = s_i, so an unclipped token's gradient is -A s_i; clipped rows get 0
    close(lp.grad, [[-s0, -s0, -s0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_gspo_token_form_gives_the_sequence_level_gradient():
    # GSPO's objective -(1/G) sum_i min(s_i A_i, clip(s_i) A_i) with s_i = exp(mean_t log-ratio), by
    # autograd through s_i itself, equals the token form aggregated seq-mean-token-mean
    from rl.losses import sequence_log_ratio

    lp, old, adv, mask = _gspo_inputs()
    s = torch.exp(sequence_log_ratio(lp, old, mask))  # [N], differentiable
    a = adv[:, 0]
    objective = -torch.minimum(s * a, s.clamp(0.8, 1.2) * a).mean()
    objective.backward()
    expected = lp.grad.clone()
    # by hand: row 0 is the only unclipped one: -(1/3) * s0 * (1/3) on each of its 3 tokens
    close(expected, [[-math.exp(0.05) / 9] * 3, [0.0] * 3, [0.0] * 3])
    lp.grad = None
    c = cfg(loss_agg_mode="seq-mean-token-mean")
    loss, _ = compute_policy_loss(lp, old, {"main": adv}, mask, [LossTerm(loss="gspo")], c)
    close(loss, float(objective.detach()))
    loss.backward()
    assert torch.allclose(lp.grad, expected, atol=1e-12, rtol=0)


def test_clipped_with_sequence_level_is_gspo_and_token_level_is_not():
    lp, old, adv, mask = _gspo_inputs()
    gspo, _ = get_loss("gspo")(lp, old, adv, mask, cfg())
    seq, _ = get_loss("clipped")(lp, old, adv, mask, cfg(importance_sampling_level="sequence"))
    tok, _ = get_loss("clipped")(lp, old, adv, mask, cfg(importance_sampling_level="token"))
    assert torch.equal(gspo, seq)
    assert not torch.allclose(gspo, tok)
    with pytest.raises(ValueError, match="importance_sampling_level"):
        get_loss("clipped")(lp, old, adv, mask, cfg(importance_sampling_level="seq"))


def test_gspo_on_policy_gradient_is_minus_advantage():
    lp = t(GSPO_LOGP).requires_grad_(True)
    per_token, m = get_loss("gspo")(lp, lp.detach(), t(GSPO_ADV), t(GSPO_MASK), cfg())
    per_token.sum().backward()
    close(lp.grad, [[-1.0, -1.0, -1.0], [-1.0, -1.0, 0.0], [1.0, 1.0, 1.0]])
    close(m["ratio_mean"], 1.0)


# --- CISPO (clipped, stop-gradient IS weight on the log-prob) ---------------------------------------


def test_cispo_values_and_gradients_by_hand():
    # ratios 1.0, 1.5, 0.5 (old_logp = 0); eps_high 0.2 caps the weight at 1.2; no lower bound by default
    lp, old = logp_for([[1.0, 1.5, 0.5], [1.0, 1.5, 0.5]])
    adv = t([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    mask = t([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    per_token, m = get_loss("cispo")(lp, old, adv, mask, cfg())
    w = [1.0, 1.2, 0.5]
    logs = [0.0, math.log(1.5), math.log(0.5)]
    close(per_token, [[-w[i] * logs[i] for i in range(3)], [w[0] * logs[0], w[1] * logs[1], 0.0]])
    close(m["is_weight_mean"], (1.0 + 1.2 + 0.5 + 1.0 + 1.2) / 5)
    close(m["clip_frac_high"], 2 / 5)
    close(m["clip_frac_low"], 0.0)
    per_token.sum().backward()
    # dL/dlogp = -clip(r) A: the token at ratio 1.5 keeps a (capped) gradient, where clipped gives 0
    close(lp.grad, [[-1.0, -1.2, -0.5], [1.0, 1.2, 0.0]])
    lp.grad = None
    clipped, _ = get_loss("clipped")(lp, old, adv, mask, cfg())
    clipped.sum().backward()
    assert lp.grad[0, 1].item() == 0.0


def test_cispo_own_epsilons():
    lp, old = logp_for([[1.0, 1.5, 0.5]])
    adv, mask = t([[2.0, 2.0, 2.0]]), t([[1.0, 1.0, 1.0]])
    c = cfg(epsilon_high=0.28, cispo_epsilon_low=0.2, cispo_epsilon_high=None)
    per_token, m = get_loss("cispo")(lp, old, adv, mask, c)
    per_token.sum().backward()
    close(lp.grad, [[-2.0, -2.0 * 1.28, -2.0 * 0.8]])  # upper bound from epsilon_high, lower from its own
    c = cfg(cispo_epsilon_high=0.1)
    lp.grad = None
    per_token, _ = get_loss("cispo")(lp, old, adv, mask, c)
    per_token.sum().backward()
    close(lp.grad, [[-2.0, -2.0 * 1.1, -1.0]])


def test_new_losses_ignore_padding_garbage():
    lp = t([[-0.5, float("inf")], [-1.0, float("nan")]]).requires_grad_(True)
    old = t([[-0.4, 0.0], [-1.2, 0.0]])
    mask = t([[1.0, 0.0], [1.0, 0.0]])
    adv = t([[1.0, 1.0], [-1.0, -1.0]])
    for name in ("gspo", "cispo"):
        lp.grad = None
        per_token, _ = get_loss(name)(lp, old, adv, mask, cfg())
        assert torch.isfinite(per_token).all() and per_token[:, 1].eq(0).all()
        per_token.sum().backward()
        assert torch.isfinite(lp.grad).all() and lp.grad[:, 1].eq(0).all()
