"""The second round of published length-efficiency rewards against values computed by hand on small groups:
kimi_length, sigmoid_length, shorter_better, alp (group-shaped) and laser_d, short_rl (adaptive, with their
state saved and reloaded). A fake grader (correct iff the text contains ``\\boxed{<ground truth>}``) keeps
these pure; groups are given by ``meta["prompt_index"]`` as the trainer does."""

from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import pytest
import torch

from rewards import REWARDS, get_reward_func
from rewards.hooks import RewardHooks, StatefulReward, check_hooks, state_hooks_of
from rewards.length.adaptive import LaserDReward, ShortRLReward
from rewards.length.group_shaped import ALPReward, KimiLengthReward, ShorterBetterReward, SigmoidLengthReward
from tests.rewards.test_efficiency import EOS, R, W, FakeGrader, ids  # noqa: F401  (the same fake grader and ids)


def make(cls, max_len=100, num_generations=None, **kw):
    r = cls(grader=FakeGrader())
    r.setup(tokenizer=SimpleNamespace(eos_token_id=EOS),
            args=SimpleNamespace(max_completion_length=max_len, num_generations=num_generations, method_kwargs=kw))
    return r


def call(r, groups, answers=None):
    """``groups``: one list of (length, correct) per prompt; prompt k's rows get meta prompt_index k."""
    rows = [(k, L, c) for k, g in enumerate(groups) for L, c in g]
    return r(prompts=[f"p{k}" for k, _, _ in rows], completions=[R if c else W for _, _, c in rows],
             completion_ids=[ids(L) for _, L, _ in rows], answer=answers or ["4"] * len(rows),
             meta=[{"prompt_index": k} for k, _, _ in rows])


def test_registered_with_their_settings():
    for name, cls in [("kimi_length", KimiLengthReward), ("sigmoid_length", SigmoidLengthReward),
                      ("shorter_better", ShorterBetterReward), ("alp", ALPReward), ("laser_d", LaserDReward),
                      ("short_rl", ShortRLReward)]:
        fn = get_reward_func(name)
        assert isinstance(fn, cls) and fn.__name__ == name and REWARDS[name].settings is cls.method_settings
        assert get_reward_func(name) is not fn  # a new object per resolution: no state shared between trainers


# --- kimi_length --------------------------------------------------------------------------------------------


def test_kimi_length_hand_computed():
    r = make(KimiLengthReward)
    out = r(prompts=["p0"] * 5 + ["p1"] * 2, completions=[R, R, W, W, R, R, W],
            completion_ids=[ids(10), ids(20), ids(30), ids(50), ids(100), ids(7), ids(7)],
            answer=["4", "4", "4", "4", None, "4", "4"], meta=[{"prompt_index": 0}] * 5 + [{"prompt_index": 1}] * 2)
    # p0 (the row without a ground truth is left out): L_min 10, L_max 50 -> lambda 0.5, 0.25, 0, -0.5
    # correct 1 + 0.5 lambda: 1.25, 1.125; wrong 0.5 min(0, lambda): 0, -0.25; p1: equal lengths -> lambda 0
    assert out[:4] == pytest.approx([1.25, 1.125, 0.0, -0.25]) and out[4] is None
    assert out[5:] == pytest.approx([1.0, 0.0])


def test_kimi_length_weight_and_warmup():
    r = make(KimiLengthReward, kimi_weight=1.0, kimi_warmup_steps=2)
    group = [[(10, True), (20, True), (30, False), (50, False)]]
    r.set_step(1)  # warm-up: accuracy alone
    assert call(r, group) == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert r.pop_metrics() == {"kimi_length/warmup_calls": 1}
    r.set_step(2)  # 1 + lambda, min(0, lambda)
    assert call(r, group) == pytest.approx([1.5, 1.25, 0.0, -0.5])


# --- sigmoid_length -----------------------------------------------------------------------------------------


def test_sigmoid_length_hand_computed():
    r = make(SigmoidLengthReward, max_len=100)
    out = r(prompts=["p0"] * 4 + ["p1"] * 2, completions=[R, R, W, R, R, W],
            completion_ids=[ids(20), ids(40), ids(60), ids(100, ended=False), ids(33), ids(50)],
            answer=["4"] * 6, meta=[{"prompt_index": 0}] * 4 + [{"prompt_index": 1}] * 2)
    # p0: the truncated answer counts as wrong and is left out; correct lengths 20, 40: mu 30, sigma 10 -> z = -1, +1
    # 1 - 0.1 sigmoid(-1) = 1 - 0.1 / (1 + e); 1 - 0.1 sigmoid(1) = 1 - 0.1 / (1 + 1/e); wrong 0
    # p1: one correct answer -> sigma 0, z 0, 1 - 0.1 * 0.5
    assert out == pytest.approx([1 - 0.1 / (1 + math.e), 1 - 0.1 / (1 + 1 / math.e), 0.0, 0.0, 0.95, 0.0], rel=1e-6)
    assert r.pop_metrics() == {"sigmoid_length/truncated_correct": 1}


def test_sigmoid_length_truncated_counted_when_asked():
    comps, cids = [R, R], [ids(10), ids(30, ended=False)]
    r = make(SigmoidLengthReward, max_len=30, sigmoid_alpha=0.4)
    assert r(completions=comps, completion_ids=cids, answer=["4"] * 2) == pytest.approx([0.8, 0.0])  # 1 - 0.4 / 2
    r = make(SigmoidLengthReward, max_len=30, sigmoid_alpha=0.4, sigmoid_truncated_wrong=False)
    # both correct: mu 20, sigma 10 -> z = -1, +1
    assert r(completions=comps, completion_ids=cids, answer=["4"] * 2) == pytest.approx(
        [1 - 0.4 / (1 + math.e), 1 - 0.4 / (1 + 1 / math.e)], rel=1e-6)


# --- shorter_better -----------------------------------------------------------------------------------------


def test_shorter_better_hand_computed():
    r = make(ShorterBetterReward)
    out = call(r, [[(50, True), (30, True), (80, False), (20, False)], [(10, False), (20, False), (60, False)]])
    # p0: l* = 30 (shortest correct): 2 - 0.001 * 20, 2, -0.001 * 50, -0.001 * 10
    # p1: none correct: l* = mean(10, 20, 60) = 30: -0.02, -0.01, -0.03
    assert out == pytest.approx([1.98, 2.0, -0.05, -0.01, -0.02, -0.01, -0.03])
    assert r.pop_metrics() == {"shorter_better/groups_without_correct": 1}
    r = make(ShorterBetterReward, sb_alpha=1.0, sb_beta=0.01)
    assert call(r, [[(50, True), (30, True), (80, False), (20, False)]]) == pytest.approx([0.8, 1.0, -0.5, -0.1])


# --- alp ----------------------------------------------------------------------------------------------------


def test_alp_hand_computed():
    r = make(ALPReward, max_len=100)
    out = call(r, [[(20, True), (40, True), (80, True), (60, False)], [(40, False), (100, False), (20, False), (60, False)]])
    # p0: solve rate 3/4: 1 - 0.5 * 0.75 * L / 100 -> 0.925, 0.85, 0.7; wrong: -0.5 * 0.75 * 0.6 = -0.225
    # p1: solve rate 0 -> the floor 1/G = 1/4: -0.5 * 0.25 * L / 100 -> -0.05, -0.125, -0.025, -0.075
    assert out == pytest.approx([0.925, 0.85, 0.7, -0.225, -0.05, -0.125, -0.025, -0.075])
    r = make(ALPReward, max_len=100, alp_length_norm=200, alp_beta=1.0)  # beta / N unchanged: the same values
    assert call(r, [[(20, True), (40, True), (80, True), (60, False)]]) == pytest.approx([0.925, 0.85, 0.7, -0.225])


# --- laser_d ------------------------------------------------------------------------------------------------

LASER = dict(max_len=16, num_generations=3, laser_thresholds=[4, 8, 12, 16], laser_update_every=2)
STEP0 = [[(3, True), (5, True), (9, True)], [(6, True), (10, True), (14, False)], [(12, False), (16, False), (15, False)]]
STEP1 = [[(2, True), (4, True), (7, False)], [(5, True), (11, False), (13, False)]]
STEP2 = [[(4, True), (4, True), (4, True)], [(3, True), (9, False), (16, False)], [(10, True), (12, False), (14, False)]]


def test_laser_d_targets_by_hand():
    """G = 3: the fewest correct of an easy / medium / hard group are floor(2G/3) = 2, floor(G/3) = 1, 1; a target
    is the first threshold L with floor(covered(L) * fewest / total) >= 1."""
    r = make(LaserDReward, **LASER)
    r.set_step(0)  # the first call estimates from its own rollouts
    out = call(r, STEP0)
    # estimate buckets (3 correct -> easy, 2 -> medium, 0 -> hard), covered at 4/8/12/16:
    # easy [3, 5, 9]: 1, 2, 3, 3 -> floor(2 * 2 / 3) = 1 at L = 8; medium [6, 10, 14]: 0, 1, 2, 3 -> 3 / 3 at 16;
    # hard [12, 16, 15]: 0, 0, 1, 3 -> 16
    assert r.targets == {"easy": 8, "medium": 16, "hard": 16}
    # reward buckets (2/3 and 1/3 count upwards): p0, p1 easy (target 8), p2 hard (16); wrong -0.5, bonus 0.5
    assert out == pytest.approx([1.5, 1.5, 1.0, 1.5, 1.0, -0.5, -0.5, -0.5, -0.5])
    r.set_step(1)  # not due: the targets stay, the rollouts are kept for the next estimate
    assert call(r, STEP1) == pytest.approx([1.5, 1.5, -0.5, 1.5, -0.5, -0.5])  # p0 easy (8), p1 medium (16)
    r.set_step(2)  # due: estimate from steps 1 and 2
    out = call(r, STEP2)
    # window: easy [4, 4, 4] -> covered 3 at L = 4 -> 4; medium (step 1's p0) [2, 4, 7] -> 3 of 3 at L = 8 -> 8;
    # hard [5, 11, 13] + [3, 9, 16] + [10, 12, 14]: covered 1, 2, 5, 9 of 9 -> 16
    assert r.targets == {"easy": 4, "medium": 8, "hard": 16}
    # p0 easy (4): all within; p1, p2 one correct -> medium (8): 3 within, 10 not
    assert out == pytest.approx([1.5, 1.5, 1.5, 1.5, -0.5, -0.5, 1.0, -0.5, -0.5])
    metrics = r.pop_metrics()
    assert (metrics["laser_d/target_easy"], metrics["laser_d/target_medium"], metrics["laser_d/target_hard"]) == (4, 8, 16)


def _through_a_checkpoint_file(state):
    """What the trainer does: plain data, saved with torch.save and read back with weights_only=True."""
    buf = io.BytesIO()
    torch.save({"local": {"rewards": {"laser_d": state}}}, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)["local"]["rewards"]["laser_d"]


def test_laser_d_state_round_trip_gives_the_same_next_rewards():
    straight = make(LaserDReward, **LASER)
    for step, groups in ((0, STEP0), (1, STEP1)):
        straight.set_step(step)
        call(straight, groups)
    state = straight.checkpoint_state()
    assert json.loads(json.dumps(state)) == state  # plain data
    resumed = make(LaserDReward, **LASER)
    resumed.load_checkpoint_state(_through_a_checkpoint_file(state))
    assert resumed.checkpoint_state() == state
    straight.set_step(2)
    resumed.set_step(2)
    expected = call(straight, STEP2)
    assert call(resumed, STEP2) == expected == pytest.approx([1.5, 1.5, 1.5, 1.5, -0.5, -0.5, 1.0, -0.5, -0.5])
    assert resumed.targets == straight.targets and resumed.checkpoint_state() == straight.checkpoint_state()
    # without the state the step-2 call estimates from itself alone: medium has no rollout -> the budget, 16
    fresh = make(LaserDReward, **LASER)
    fresh.set_step(2)
    assert call(fresh, STEP2)[6] == pytest.approx(1.5) and fresh.targets["medium"] == 16


def test_laser_d_default_thresholds_scale_with_the_budget():
    r = make(LaserDReward, max_len=160)
    r.set_step(0)
    call(r, [[(10, True), (20, True)]])
    assert r.thresholds == list(range(10, 161, 10))  # 16 equal steps up to the budget
    assert make(LaserDReward).checkpoint_state() == {}  # nothing seen yet: nothing to save


# --- short_rl -----------------------------------------------------------------------------------------------

SHORT = dict(short_rl_length_tolerance=5)
ACC_HALF = [[(10, True), (15, True), (30, True), (20, False)], [(8, False), (9, False), (50, True), (12, False)]]
ACC_QUARTER = [[(10, True), (30, True), (20, False), (40, False)], [(5, False), (6, False), (7, False), (8, False)]]


def test_short_rl_hand_computed():
    r = make(ShortRLReward, **SHORT)
    # accuracy 4/8 = 0.5, the best so far: on. p0 correct lengths 10..30: 10, 15 within 10 + 5 -> 0.5;
    # 30 -> 0.5 - 20 / 20 = -0.5. p1: one correct -> within -> 0.5. Wrong: 0
    assert call(r, ACC_HALF) == pytest.approx([1.5, 1.5, 0.5, 0.0, 0.0, 0.0, 1.5, 0.0])
    assert r.pop_metrics() == {"short_rl/on": 1.0, "short_rl/max_accuracy": 0.5}
    # accuracy 2/8 = 0.25 < 0.5 - 0.05: off, correctness alone
    assert call(r, ACC_QUARTER) == pytest.approx([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert r.pop_metrics() == {"short_rl/on": 0.0, "short_rl/max_accuracy": 0.5}
    # a wider accuracy tolerance keeps it on: 0.25 >= 0.5 - 0.3; weight 2: 1 + 2 * 0.5, 1 + 2 * (-0.5)
    r = make(ShortRLReward, short_rl_length_tolerance=5, short_rl_acc_tolerance=0.3, short_rl_weight=2.0)
    call(r, ACC_HALF)
    assert call(r, ACC_QUARTER) == pytest.approx([2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])


def test_short_rl_state_round_trip_gives_the_same_next_rewards():
    straight = make(ShortRLReward, **SHORT)
    call(straight, ACC_HALF)
    state = straight.checkpoint_state()
    assert state == {"version": 1, "max_accuracy": 0.5} and json.loads(json.dumps(state)) == state
    resumed = make(ShortRLReward, **SHORT)
    resumed.load_checkpoint_state(state)
    assert call(resumed, ACC_QUARTER) == call(straight, ACC_QUARTER) == pytest.approx([1.0, 1.0] + [0.0] * 6)
    # without the state the 0.25 accuracy is the best seen: on, and the 30-token answer is penalised
    fresh = make(ShortRLReward, **SHORT)
    assert call(fresh, ACC_QUARTER) == pytest.approx([1.5, 0.5] + [0.0] * 6)
    with pytest.raises(ValueError, match="short_rl state version"):
        fresh.load_checkpoint_state({"version": 99, "max_accuracy": 0.5})


# --- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls,kw,key", [
    (KimiLengthReward, {"kimi_weight": -1}, "kimi_weight"),
    (KimiLengthReward, {"kimi_warmup_steps": 1.5}, "kimi_warmup_steps"),
    (SigmoidLengthReward, {"sigmoid_alpha": 1.0}, "sigmoid_alpha"),
    (SigmoidLengthReward, {"sigmoid_eps": 0}, "sigmoid_eps"),
    (SigmoidLengthReward, {"sigmoid_truncated_wrong": "yes"}, "sigmoid_truncated_wrong"),
    (ShorterBetterReward, {"sb_beta": -0.1}, "sb_beta"),
    (ShorterBetterReward, {"sb_alpha": "2"}, "sb_alpha"),
    (ALPReward, {"alp_beta": -1}, "alp_beta"),
    (ALPReward, {"alp_length_norm": 0}, "alp_length_norm"),
    (LaserDReward, {"laser_thresholds": [8, 4]}, "laser_thresholds"),
    (LaserDReward, {"laser_thresholds": [0, 4]}, "laser_thresholds"),
    (LaserDReward, {"laser_thresholds": []}, "laser_thresholds"),
    (LaserDReward, {"laser_update_every": 0}, "laser_update_every"),
    (LaserDReward, {"laser_alpha": -0.5}, "laser_alpha"),
    (LaserDReward, {"laser_expected_correct": 0}, "laser_expected_correct"),
    (ShortRLReward, {"short_rl_length_tolerance": -1}, "short_rl_length_tolerance"),
    (ShortRLReward, {"short_rl_acc_tolerance": -0.1}, "short_rl_acc_tolerance"),
    (ShortRLReward, {"short_rl_weight": -1}, "short_rl_weight"),
])
def test_bad_settings_name_the_key(cls, kw, key):
    with pytest.raises(ValueError, match=f"method_kwargs.{key}"):
        make(cls, **kw)


@pytest.mark.parametrize("method,kwargs,key", [
    ("kimi_length", {"kimi_weight": "big"}, "kimi_weight"),
    ("sigmoid_length", {"sigmoid_alpha": -0.1}, "sigmoid_alpha"),
    ("laser_d", {"laser_thresholds": [16, 8]}, "laser_thresholds"),
    ("shorter_better", {"sb_alpha": -2}, "sb_alpha"),
    ("alp", {"alp_length_norm": -5}, "alp_length_norm"),
    ("short_rl", {"short_rl_weight": "x"}, "short_rl_weight"),
    ("short_rl", {"laser_alpha": 0.5}, "laser_alpha"),  # a key no active piece reads
])
def test_presets_expand_and_bad_settings_fail_at_config_time(tmp_path, method, kwargs, key):
    from rl.config import ConfigError, GRPOConfig

    c = GRPOConfig(model="m", output_dir=str(tmp_path), method=method)
    assert c.reward_funcs == [method]
    assert c.advantage_estimator == ("rloo" if method == "sigmoid_length" else "grpo")  # RLOO: the authors' code
    with pytest.raises(ConfigError, match=key):
        GRPOConfig(model="m", output_dir=str(tmp_path), method=method, method_kwargs=kwargs)


# --- the checkpoint hooks -------------------------------------------------------------------------------------


def test_the_checkpoint_hooks_are_declared_and_refused_half_done():
    assert RewardHooks().checkpoint_state() == {}
    assert isinstance(ShortRLReward(grader=FakeGrader()), StatefulReward)
    assert state_hooks_of(lambda **kw: []).checkpoint_state() == {}  # a plain function saves nothing

    class HalfStateful:
        __name__ = "half_stateful"

        def __call__(self, **kw):
            return []

        def checkpoint_state(self):
            return {"x": 1}

    with pytest.raises(TypeError, match="half_stateful.*checkpoint_state.*load_checkpoint_state"):
        check_hooks(HalfStateful(), "half_stateful")


def test_the_trainer_saves_and_restores_each_rewards_state_by_name():
    """GRPOTrainer.extra_state / load_extra_state on a stand-in: the reward states go per process, by name."""
    from rl.grpo_trainer import GRPOTrainer

    def stand_in(funcs):
        sampler = SimpleNamespace(state_dict=lambda: {"s": 1}, load_state_dict=lambda st: None)
        assembler = SimpleNamespace(state_dict=lambda: {}, load_state_dict=lambda st: None)
        return SimpleNamespace(reward_funcs=funcs, reward_names=["short_rl", "plain"], sampler=sampler,
                               assembler=assembler, ahead=None, skipped_batches=0, generated_tokens=0)

    def plain(**kw):
        return []

    saved = make(ShortRLReward, **SHORT)
    call(saved, ACC_HALF)
    _, local = GRPOTrainer.extra_state(stand_in([saved, plain]))
    assert local["rewards"] == {"short_rl": {"version": 1, "max_accuracy": 0.5}}  # the plain function: nothing
    restored = make(ShortRLReward, **SHORT)
    GRPOTrainer.load_extra_state(stand_in([restored, plain]), {}, local)
    assert restored.max_accuracy == 0.5
    _, local = GRPOTrainer.extra_state(stand_in([make(ShortRLReward), plain]))
    assert "rewards" not in local  # nothing scored yet: nothing saved
