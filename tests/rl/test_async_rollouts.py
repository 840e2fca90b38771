"""One-step off-policy rollouts: the next step's first round is sampled from the previous weights
while the update runs, corrected by the sampling log-probs, and a resumed run is bit-exact."""

from __future__ import annotations

import json
from concurrent.futures import Future

import pytest
import torch

from rl.config import ConfigError, GRPOConfig
from rl.grpo_trainer import GRPOTrainer
from rl.rollouts_ahead import RolloutsAhead
from rollout.types import SamplingConfig, Trajectory
from tests_helpers_grpo import make_cfg, make_dataset, params, token_sum_reward


def _metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_rollouts_are_one_step_behind_and_importance_corrected(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, tmp_path, max_steps=3, async_rollouts=True, vllm_is_cap=2.0)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    versions = []
    original = trainer.build_batch

    def recording(groups):
        versions.append(sorted({t.meta["policy_version"] for g in groups for t in g.trajectories}))
        return original(groups)

    trainer.build_batch = recording
    before = params(trainer)
    try:
        trainer.train()
    finally:
        trainer.close()
    after = params(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert versions == [[0], [0], [1]]  # step 1 on the start weights, steps 2 and 3 one update behind
    rows = _metrics(tmp_path / "run")
    assert [r["async/staleness"] for r in rows] == [0.0, 1.0, 1.0]
    assert rows[0]["rollout/logp_mismatch_mean"] < 1e-4  # the child sampled from the very same weights
    assert rows[1]["rollout/logp_mismatch_mean"] > 1e-3  # ... and then from the weights one step old
    assert "rollout/is_weight_mean" in rows[1] and rows[1]["async/stale_dropped"] == 0


def _run(model_dir, tmp_path, max_steps, resume=None):
    cfg = make_cfg(model_dir, tmp_path, max_steps=max_steps, save_steps=2, resume_from_checkpoint=resume,
                   save_total_limit=0, async_rollouts=True, vllm_is_cap=2.0)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset(10))
    try:
        trainer.train()
    finally:
        trainer.close()
    return params(trainer)


def test_async_resume_is_exact(tiny_model_dir, tmp_path):
    straight = _run(tiny_model_dir, tmp_path / "a", 4)
    _run(tiny_model_dir, tmp_path / "b", 2)  # its checkpoint holds the round generated for step 3
    resumed = _run(tiny_model_dir, tmp_path / "b", 4, resume="latest")
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), f"{k} differs after resume"


def test_config_refuses_async_multi_turn_and_zero_staleness(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="async_rollouts"):
        make_cfg(tiny_model_dir, tmp_path, async_rollouts=True, environment="tools")
    with pytest.raises(ConfigError, match="max_staleness"):
        make_cfg(tiny_model_dir, tmp_path, async_rollouts=True, max_staleness=0)
    assert GRPOConfig.__dataclass_fields__["async_rollouts"].default is False


class _Engine:
    """An OffPolicyEngine's interface, generating one-token completions at once."""

    def __init__(self):
        self.calls = []

    def _groups(self, prompt_ids, n, version):
        return [[Trajectory(prompt_ids=p, completion_ids=[p[0]], meta={"policy_version": version}) for _ in range(n)]
                for p in prompt_ids]

    def submit(self, prompt_ids, n, sampling, *, version=None, seed=None):
        self.calls.append(("submit", [p[0] for p in prompt_ids], seed))
        fut: Future = Future()
        fut.set_result(self._groups(prompt_ids, n, version))
        return fut

    def generate(self, prompt_ids, n, sampling, *, version=None, seed=None):
        self.calls.append(("generate", [p[0] for p in prompt_ids], seed))
        return self._groups(prompt_ids, n, version)


def test_rollouts_ahead_follow_the_first_rounds_shape_and_drop_stale_groups():
    engine, sampling = _Engine(), SamplingConfig(max_new_tokens=1)
    ahead = RolloutsAhead(engine, seed=0, max_staleness=1)
    stream = iter(range(100))

    def draw(k):
        return [next(stream) for _ in range(k)]

    def ids(idx):
        return [[i] for i in idx]

    # step 0: a GFPO-like assembler rolls out each drawn prompt twice
    ahead.start_step(0)
    first = ahead.draw(2, draw)
    assert first == [0, 1]
    ahead.generate([0, 0, 1, 1], lambda: ids([0, 0, 1, 1]), 2, sampling)
    ahead.submit_next(draw, ids, 2, sampling, next_step=1)
    assert engine.calls[-1] == ("submit", [2, 2, 3, 3], ahead.request_seed(1, 0))
    # step 1 takes what was drawn and generated ahead, one step behind
    ahead.start_step(1)
    assert ahead.draw(2, draw) == [2, 3]
    groups = ahead.generate([2, 2, 3, 3], lambda: pytest.fail("generated again"), 2, sampling)
    assert [g[0].completion_ids for g in groups] == [[2], [2], [3], [3]]
    assert ahead.step_metrics()["async/staleness"] == 1.0
    restored = RolloutsAhead(engine, seed=0)
    ahead.submit_next(draw, ids, 2, sampling, next_step=2)
    restored.load_state_dict(ahead.state_dict())  # a checkpoint holds the finished round, as plain data
    assert restored.ahead["rollout"] == [4, 4, 5, 5] and restored.ahead["groups"][0][0].completion_ids == [4]
    # step 3 (a skipped step 2): the round generated at step 1 is 2 steps old -> dropped and regenerated
    ahead.start_step(3)
    ahead.draw(2, draw)
    n_calls = len(engine.calls)
    ahead.generate([4, 4, 5, 5], lambda: ids([4, 4, 5, 5]), 2, sampling)
    assert engine.calls[n_calls] == ("generate", [4, 4, 5, 5], ahead.request_seed(3, 1))
    m = ahead.step_metrics()
    assert m["async/stale_dropped"] == 8 and m["async/staleness"] == 0.0
    # an assembler that asks for other prompts than the ones drawn ahead: generated on the spot, counted
    ahead.submit_next(draw, ids, 2, sampling, next_step=4)
    ahead.start_step(4)
    ahead.draw(3, draw)
    assert ahead.step_metrics()["async/prefetch_misses"] == 1 and ahead.ahead is None


def test_the_async_recipe_parses():
    from pathlib import Path

    from rl.config_loading import load_config

    cfg = load_config(GRPOConfig, ["--config", str(Path(__file__).resolve().parents[2] / "recipes/grpo/tiny-async.yaml")])
    assert cfg.async_rollouts and cfg.max_staleness == 1 and cfg.vllm_is_cap == 2.0
