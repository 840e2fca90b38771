"""HDPO: the two advantage channels by hand (|Q| = 0, 1, 2, equal T, mixed groups), the dual
loss's token mask and value by hand, the preset, and GRPO steps with tools on the tiny model."""

from __future__ import annotations

import json
import math
import types

import pytest
import torch
from datasets import Dataset

from rl.batch import collate
from rl.errors import ConfigError
from rl.methods.hdpo import TOOL_SIGNAL_MASK, dual, hdpo
from rl.losses import compute_policy_loss
from rollout.types import Trajectory

EPS = 1e-6


def _batch(groups):
    """groups: list of (correct list, tool_calls list, lengths list)."""
    trajs, acc, metas = [], [], []
    for g, (correct, calls, lengths) in enumerate(groups):
        for c, t, n in zip(correct, calls, lengths):
            trajs.append(Trajectory(prompt_ids=[1, 2], completion_ids=list(range(5, 5 + n)), group_index=g,
                                    meta={"tool_calls": t}))
            acc.append(float(c))
    batch = collate(trajs, pad_token_id=0)
    batch.rewards = {"accuracy": torch.tensor(acc)}
    batch.total_reward = torch.tensor(acc)
    return batch


CFG = types.SimpleNamespace(scale_rewards="group", advantage_eps=EPS, method_kwargs={}, loss_agg_mode="token-mean",
                            epsilon=0.2, epsilon_high=0.2, loss_type="clipped")


def test_tool_channel_by_hand():
    batch = _batch([
        ([1, 1, 0, 1], [0, 1, 2, 3], [2, 3, 1, 4]),  # |Q| = 3, mixed T
        ([1, 0, 0, 0], [0, 0, 1, 2], [1, 1, 1, 1]),  # |Q| = 1
        ([0, 0, 0, 0], [0, 1, 2, 3], [1, 1, 1, 1]),  # |Q| = 0
        ([1, 1, 0, 0], [2, 2, 0, 1], [1, 1, 1, 1]),  # |Q| = 2, equal T
        ([1, 1], [0, 1], [1, 1]),                     # |Q| = 2, T 0 and 1
    ])
    adv = hdpo(batch, CFG)
    tool = adv["tool"][:, 0]
    # group 0: r_tool over Q = 1, 1/2, 1/4 -> mean 7/12, deviations 5/12, -1/12, -4/12
    sd = math.sqrt(((5 / 12) ** 2 + (1 / 12) ** 2 + (4 / 12) ** 2) / 2)
    g0 = [5 / 12 / (sd + EPS), -1 / 12 / (sd + EPS), 0.0, -4 / 12 / (sd + EPS)]
    # group 4: r_tool = 1, 1/2 -> mean 3/4, std sqrt(2 * (1/4)^2) = 0.35355
    sd4 = math.sqrt(2 * 0.25 ** 2)
    expect = g0 + [0.0] * 4 + [0.0] * 4 + [0.0] * 4 + [0.25 / (sd4 + EPS), -0.25 / (sd4 + EPS)]
    assert tool.tolist() == pytest.approx(expect, abs=1e-6)
    # every token of a row carries its advantage; padding 0
    assert adv["tool"][3].tolist() == pytest.approx([-4 / 12 / (sd + EPS)] * 4)
    assert adv["tool"][0, 2:].abs().sum() == 0
    # the tool signal (Metis's normalisation, the default): the rows whose tool advantage is not 0; group 3's
    # two correct rollouts share a call count, so they carry no signal and do not dilute the tool loss
    assert batch.rollout_masks[TOOL_SIGNAL_MASK].tolist() == [True, True, False, True] + [False] * 8 + \
        [False, False, False, False] + [True, True]
    # acc channel: GRPO over all rollouts. group 0: r = 1,1,0,1, mean 3/4, std 1/2
    acc = adv["acc"][:, 0]
    assert acc[:4].tolist() == pytest.approx([0.25 / (0.5 + EPS)] * 2 + [-0.75 / (0.5 + EPS)] + [0.25 / (0.5 + EPS)])
    assert acc[8:12].abs().sum() == 0  # all wrong: no accuracy signal either


def test_the_qualifying_rows_normalisation_is_one_setting_away():
    """hdpo_tool_loss_rows: qualifying keeps every correct rollout of a group with >= 2 correct in the tool
    loss's mask, zero-advantage rows included (the normalisation before the audit)."""
    groups = [([1, 1, 0, 0], [2, 2, 0, 1], [1, 1, 1, 1]), ([1, 1], [0, 1], [1, 1])]
    metis = _batch(groups)
    hdpo(metis, CFG)
    assert metis.rollout_masks[TOOL_SIGNAL_MASK].tolist() == [False, False, False, False, True, True]
    old = _batch(groups)
    cfg = types.SimpleNamespace(**{**vars(CFG), "method_kwargs": {"hdpo_tool_loss_rows": "qualifying"}})
    hdpo(old, cfg)
    assert old.rollout_masks[TOOL_SIGNAL_MASK].tolist() == [True, True, False, False, True, True]
    # the dual loss's tool term averages over 2 rows with Metis, over 4 with the qualifying rows: twice as strong
    from rl.losses import term_denominators

    terms = dual(CFG)
    d_metis = term_denominators(terms, metis.completion_mask, metis.rollout_masks, "token-mean")
    d_old = term_denominators(terms, old.completion_mask, old.rollout_masks, "token-mean")
    assert d_metis[1] * 2 == d_old[1]


def test_correctness_reward_is_required_and_nan_is_incorrect():
    batch = _batch([([1, 1], [0, 1], [1, 1])])
    batch.rewards = {"other": batch.rewards["accuracy"]}
    with pytest.raises(ValueError, match="needs the reward 'accuracy'"):
        hdpo(batch, CFG)
    batch.rewards = {"accuracy": torch.tensor([1.0, float("nan")])}
    batch.total_reward = torch.tensor([1.0, 0.0])
    out = hdpo(batch, CFG)
    assert out["tool"].abs().sum() == 0 and not batch.rollout_masks[TOOL_SIGNAL_MASK].any()


def test_dual_loss_by_hand_and_its_token_mask():
    batch = _batch([([1, 1, 0, 1], [0, 1, 2, 3], [2, 3, 1, 4])])
    adv = hdpo(batch, CFG)
    terms = dual(types.SimpleNamespace(method_kwargs={}, loss_type="clipped"))
    assert [(t.channel, t.weight, t.rollout_mask) for t in terms] == [("acc", 1.0, None), ("tool", 0.15, TOOL_SIGNAL_MASK)]
    logp = torch.zeros_like(batch.completion_mask, requires_grad=True)
    loss, m = compute_policy_loss(logp, logp.detach(), adv, batch.completion_mask, terms, CFG,
                                  rollout_masks=batch.rollout_masks)
    lengths = [2, 3, 1, 4]
    a_acc = adv["acc"][:, 0].tolist()
    a_tool = adv["tool"][:, 0].tolist()
    # ratio 1: per-token clipped loss = -A. acc over all 10 tokens; tool over the 9 tokens of Q (rows 0, 1, 3)
    l_acc = -sum(a * n for a, n in zip(a_acc, lengths)) / 10
    l_tool = -sum(a_tool[i] * lengths[i] for i in (0, 1, 3)) / 9
    assert float(loss.detach()) == pytest.approx(1.0 * l_acc + 0.15 * l_tool, abs=1e-6)
    assert float(m["tool/loss"]) == pytest.approx(l_tool, abs=1e-6)
    assert float(m["acc/loss"]) == pytest.approx(l_acc, abs=1e-6)
    assert abs(l_tool - (-sum(a * n for a, n in zip(a_tool, lengths)) / 10)) > 1e-3  # not diluted by row 2
    loss.backward()
    g = logp.grad
    # row 2 (incorrect) gets only the accuracy term's gradient; row 0 both
    assert g[2, 0].item() == pytest.approx(-a_acc[2] / 10, abs=1e-6)
    assert g[0, 0].item() == pytest.approx(-a_acc[0] / 10 - 0.15 * a_tool[0] / 9, abs=1e-6)
    assert torch.all(g[batch.completion_mask == 0] == 0)


def test_preset_and_settings(tmp_path):
    from rl.config import GRPOConfig

    base = dict(model="m", output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=8)
    c = GRPOConfig(method="hdpo", **base)
    assert (c.advantage_estimator, c.loss_composition, c.environment) == ("hdpo", "dual", "tools")
    assert c.reward_funcs == ["accuracy", "format"] and c.reward_weights == [0.9, 0.1]
    assert c.method_kwargs["hdpo_w_tool"] == 0.15
    for bad, match in (({"hdpo_w_tool": -1}, "hdpo_w_tool"), ({"hdpo_w_acc": 0, "hdpo_w_tool": 0}, "both 0"),
                       ({"hdpo_wtool": 1}, "unknown key"), ({"hdpo_tool_eps": 0}, "hdpo_tool_eps")):
        with pytest.raises(ConfigError, match=match):
            GRPOConfig(method="hdpo", method_kwargs=bad, **base)


CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "2+3"}}</tool_call>'


class AlternatingEngine:
    """Even episodes call the calculator once, odd ones answer directly; every answer is 5."""

    def __init__(self, tok):
        self.tok, self.pad_token_id, self.eos_token_ids, self.k = tok, tok.pad_token_id, {tok.eos_token_id}, 0

    def generate(self, prompt_ids, n, sampling):
        out = []
        for p in prompt_ids:
            turn = self.tok.decode(p, skip_special_tokens=False).count("<|im_start|>assistant") - 1
            if turn == 0:
                self.k += 1
            body = CALL if turn == 0 and self.k % 2 else "\\boxed{5}<|im_end|>"
            ids = self.tok(body, add_special_tokens=False)["input_ids"][: sampling.max_new_tokens]
            out.append([Trajectory(prompt_ids=list(p), completion_ids=ids, text=self.tok.decode(ids, skip_special_tokens=True))])
        return out

    def sync_weights(self, model):
        pass


def _hdpo_cfg(tiny_model_dir, tmp_path, **kw):
    from tests_helpers_grpo import make_cfg

    return make_cfg(tiny_model_dir, tmp_path, method="hdpo", environment_kwargs={"tools": ["calculator"]},
                    max_turns=3, max_completion_length=70, max_episode_tokens=110, **kw)


def _dataset(n=8):
    return Dataset.from_list([{"prompt": [{"role": "user", "content": "Compute: 2 + 3"}],
                               "reward_model": {"ground_truth": "5"}} for _ in range(n)])


def test_hdpo_trains_the_tool_channel_through_the_trainer(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from rl.grpo_trainer import GRPOTrainer

    cfg = _hdpo_cfg(tiny_model_dir, tmp_path)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=_dataset(), engine=AlternatingEngine(tok))
    seen = []
    orig = trainer._update
    trainer._update = lambda b: (seen.append(b), orig(b))[1]
    trainer.train()
    (b,) = seen
    assert b.rewards["accuracy"].tolist() == [1.0] * 8  # every answer is right: no accuracy signal
    assert b.rollout_masks[TOOL_SIGNAL_MASK].all()
    calls = torch.tensor([m["tool_calls"] for m in b.meta])
    assert calls.tolist() == [1, 0] * 4
    first = b.advantages["tool"][:, 0]
    assert torch.all(first[calls == 0] > 0) and torch.all(first[calls == 1] < 0)  # fewer calls are preferred
    assert b.advantages["acc"].abs().sum() == 0
    m = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert m["tool/loss"] != 0 and m["acc/loss"] == 0
    assert m["tools/calls_mean"] == pytest.approx(0.5)
    assert m["rollout_masks/has_tool_signal/frac"] == 1.0
    assert m["tools/accuracy_at_0_calls"] == 1.0 and m["tools/accuracy_at_1_calls"] == 1.0


def test_two_hdpo_steps_on_the_hf_engine(tiny_model_dir, tmp_path):
    from rl.grpo_trainer import GRPOTrainer

    cfg = _hdpo_cfg(tiny_model_dir, tmp_path, max_steps=2)
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=_dataset())
    summary = trainer.train()
    assert summary["global_step"] == 2
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "tools/calls_mean" in r]
    assert len(steps) == 2 and all("tool/loss" in r and "acc/loss" in r for r in steps)


def test_coupled_baseline_penalises_calls_in_one_reward(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from rl.grpo_trainer import GRPOTrainer
    from tests_helpers_grpo import make_cfg

    cfg = make_cfg(tiny_model_dir, tmp_path, method="coupled_large", max_turns=3, max_completion_length=70,
                   max_episode_tokens=110)
    assert cfg.reward_weights == [0.9, 0.1, 0.3] and cfg.advantage_estimator == "grpo"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=_dataset(), engine=AlternatingEngine(tok))
    seen = []
    orig = trainer._update
    trainer._update = lambda b: (seen.append(b), orig(b))[1]
    trainer.train()
    (b,) = seen
    assert b.rewards["tool_call_penalty"].tolist() == [-1.0, 0.0] * 4
    # all correct, no <think> format: r = 0.9 - 0.3 T
    assert b.total_reward.tolist() == pytest.approx([0.6, 0.9] * 4)
    assert set(b.advantages) == {"main"}


def test_decs_hdpo_recipe_runs_two_steps(tiny_model_dir, tmp_path):
    """DECS's token-level advantage on the accuracy channel and HDPO's tool channel in one run."""
    from pathlib import Path

    from rl.config import GRPOConfig, load_config
    from rl.grpo_trainer import GRPOTrainer

    recipe = Path(__file__).resolve().parents[2] / "recipes/hdpo/tiny-decs-hdpo.yaml"
    cfg = load_config(GRPOConfig, ["--config", str(recipe), "--model", str(tiny_model_dir), "--dataset", "task:overthink",
                                   "--dataset_num_examples", "16", "--max_steps", "2", "--num_generations", "4",
                                   "--per_device_train_batch_size", "8", "--max_completion_length", "48",
                                   "--max_episode_tokens", "96", "--output_dir", str(tmp_path / "run"),
                                   "--report_to", "jsonl", "--save_final", "false", "--disable_progress_bar", "true",
                                   # the random model is always wrong: decs_kappa would drop every group
                                   "--sampler", "plain", "--logging_steps", "1"])
    assert (cfg.advantage_estimator, cfg.loss_composition, cfg.environment) == ("decs_hdpo", "dual", "tools")
    trainer = GRPOTrainer(cfg.model, args=cfg)
    seen = []
    orig = trainer._update
    trainer._update = lambda b: (seen.append(b), orig(b))[1]
    summary = trainer.train()
    assert summary["global_step"] == 2
    b = seen[-1]
    assert set(b.advantages) == {"acc", "tool"} and "decs_redundancy" in b.rewards
    assert b.rewards["decs_redundancy"].dim() == 2  # token-level
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum("tool/loss" in r for r in rows) == 2


def test_calc_tool_recipe_is_the_measured_compare_setting():
    """recipes/hdpo/tiny-calc-tool.yaml is `parsimony compare --task calc_tool`'s hdpo_w05 run: every field the
    comparison sets for a method, with the variant's weight."""
    from pathlib import Path

    from curriculum.tasks import TASK_ROLLOUTS
    from rl.config import GRPOConfig, load_config

    recipe = Path(__file__).resolve().parents[2] / "recipes/hdpo/tiny-calc-tool.yaml"
    cfg = load_config(GRPOConfig, ["--config", str(recipe)])
    assert (cfg.advantage_estimator, cfg.loss_composition, cfg.method_kwargs["hdpo_w_tool"]) == ("hdpo", "dual", 0.5)
    ro = TASK_ROLLOUTS["calc_tool"]
    assert (cfg.environment, cfg.environment_kwargs, cfg.max_turns) == (ro["environment"], ro["environment_kwargs"], ro["max_turns"])
    assert (cfg.learning_rate, cfg.warmup_steps, cfg.lr_scheduler_type, cfg.num_generations) == (5e-5, 15, "constant_with_warmup", 8)
    assert (cfg.per_device_train_batch_size, cfg.max_completion_length, cfg.temperature, cfg.max_steps) == (64, 160, 1.0, 60)
