"""``method: mgrpo`` through the GRPO trainer (shared model mode): planner/executor episodes from a
scripted engine, rewards per role, alignment to D_max (fixed batch size), GRPO per (prompt, role),
one update; then one real step on the HF engine."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset

from rl.grpo_trainer import GRPOTrainer
from rollout.mgrpo.agents import EXECUTOR_SYSTEM_PROMPT
from rollout.types import Trajectory
from tests_helpers_grpo import make_cfg, params


def call(name, **args):
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


# rollout k of a prompt follows PLANS[k % 4], told apart by its first call's task; truth 2*3+4*5 = 26
PLANS = {
    "2*3": [call("executor", task="2*3"), call("executor", task="4*5"), "\\boxed{26}<|im_end|>"],  # 2 calls, right
    "4*5": [call("executor", task="4*5"), "\\boxed{25}<|im_end|>"],  # 1 call, wrong
    None: ["\\boxed{26}<|im_end|>"],  # no call, right
    "1+1": [call("executor", task="1+1"), call("executor", task="2*3"), call("executor", task="4*5"),
            "\\boxed{7}<|im_end|>"],  # 3 calls, wrong; the executor gives "1+1" no result
}
FIRST = ["2*3", "4*5", None, "1+1"]


class PlannerExecutorEngine:
    def __init__(self, tok):
        self.tok = tok
        self.pad_token_id = tok.pad_token_id
        self.eos_token_ids = {tok.eos_token_id}
        self.seen = 0

    def reply(self, text):
        k = text.count("<|im_start|>assistant") - 1
        if EXECUTOR_SYSTEM_PROMPT in text:
            task = text.split("<|im_start|>user\n")[-1].split("<|im_end|>")[0]
            if k == 0:
                return call("calculator", expression=task) if task != "1+1" else "two<|im_end|>"
            return "<result>" + text.split("<|im_start|>tool\n")[-1].split("<|im_end|>")[0] + "</result><|im_end|>"
        if k == 0:
            first = FIRST[self.seen % 4]
            self.seen += 1
            return PLANS[first][0]
        first = next((t for t in FIRST if t and f'"task": "{t}"' in text.split("<|im_start|>assistant", 2)[1][:120]), None)
        return PLANS[first][k]

    def generate(self, prompt_ids, n, sampling):
        out = []
        for p in prompt_ids:
            ids = self.tok(self.reply(self.tok.decode(p, skip_special_tokens=False)), add_special_tokens=False)["input_ids"]
            ids = ids[: sampling.max_new_tokens]
            out.append([Trajectory(prompt_ids=list(p), completion_ids=ids, text=self.tok.decode(ids, skip_special_tokens=True))])
        return out

    def sync_weights(self, model):
        pass


def dataset(n=4):
    return Dataset.from_list([{"prompt": [{"role": "user", "content": f"Q{i}: 2*3+4*5"}],
                               "reward_model": {"ground_truth": "26"}} for i in range(n)])


def _cfg(tiny_model_dir, tmp_path, **kw):
    base = dict(method="mgrpo", max_turns=5, max_completion_length=150, max_episode_tokens=700,
                environment_kwargs={"executor_max_episode_tokens": 300}, per_device_train_batch_size=8,
                num_generations=4)
    base.update(kw)
    return make_cfg(tiny_model_dir, tmp_path, **base)


def test_mgrpo_step_aligns_executors_and_normalises_per_prompt_and_role(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = _cfg(tiny_model_dir, tmp_path)
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=dataset(), engine=PlannerExecutorEngine(tok))
    batches = []
    orig = trainer._update
    trainer._update = lambda b: (batches.append(b), orig(b))[1]
    before = params(trainer)
    trainer.train()
    (b,) = batches
    # 2 prompts x (4 planner rollouts + 3 delegating rollouts x D_max 2 executor samples) = 20 rows
    assert b.num_rollouts == 20
    assert b.role.tolist() == ([0] * 4 + [1] * 6) * 2 and b.group_index.tolist() == [0] * 10 + [1] * 10
    assert b.sub_group.tolist() == [0, 1, 2, 3, 0, 0, 1, 1, 3, 3] * 2
    # planner R_M: right with a box 1.0, wrong with a box 0.1
    r = b.total_reward.tolist()
    assert r[:4] == pytest.approx([1.0, 0.1, 1.0, 0.1])
    # executors: R_S = R_M(parent) (w_main 1, w_local 0); rollout 1's one call is duplicated; rollout 3
    # keeps 2 of its 3 calls, and its "1+1" call has no <result> (R_S = 0)
    assert r[4:8] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    tasks3 = [m["task"] for m in b.meta[8:10]]
    assert r[8:10] == pytest.approx([0.0 if t == "1+1" else 0.1 for t in tasks3])
    assert [m.get("aligned_copy", False) for m in b.meta[4:10]] == [False, False, False, True, False, False]
    assert all(m["parent_rollout"] == s for m, s in zip(b.meta[4:10], b.sub_group.tolist()[4:10]))
    # advantages: GRPO within (prompt, role), by hand from the rewards
    adv = b.advantages["main"]
    for lo, hi in [(0, 4), (4, 10)]:
        x = torch.tensor(r[lo:hi], dtype=torch.float64)
        want = (x - x.mean()) / (x.std() + 1e-6)
        first_tok = adv[lo:hi, 0].double()
        assert first_tok.tolist() == pytest.approx(want.tolist(), rel=1e-4, abs=1e-6)
    obs = (b.completion_mask == 0) & (b.attention_mask_completion == 1)
    assert obs.any() and torch.all(adv[obs] == 0)
    after = params(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    m = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert m["mgrpo/d_max"] == 2 and m["mgrpo/executor_calls"] == 12 and m["mgrpo/executor_samples"] == 12
    assert m["mgrpo/executor_dropped"] == 2 and m["mgrpo/executor_duplicated"] == 2 and m["mgrpo/zero_call_rollouts"] == 2
    assert m["mgrpo/planner_accuracy"] == pytest.approx(0.5)


def test_one_mgrpo_step_on_the_hf_engine(tiny_model_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, tmp_path, max_completion_length=24, max_episode_tokens=48, max_turns=2,
               environment_kwargs={"executor_max_episode_tokens": 24, "executor_max_turns": 2})
    trainer = GRPOTrainer(cfg.model, args=cfg, train_dataset=dataset())
    summary = trainer.train()
    assert summary["global_step"] == 1
