"""Multi-turn tool episodes on the colocated CPU vLLM engine: 2 GRPO steps through the episode
loop, and prefix caching (on for episodes) is reset by the weight sync."""

from __future__ import annotations

import json

import torch

from tests.conftest import require_vllm


def test_two_grpo_steps_with_tools_on_vllm(vllm_engine, vllm_model_dir, tmp_path):
    from tests.rl.tests_helpers_grpo import make_cfg, make_dataset, params, token_sum_reward

    from rl.grpo_trainer import GRPOTrainer

    cfg = make_cfg(vllm_model_dir, tmp_path, engine="vllm", max_steps=2, environment="tools",
                   environment_kwargs={"tools": ["calculator"]}, max_turns=3, max_completion_length=70,
                   max_episode_tokens=110)
    trainer = GRPOTrainer(str(vllm_model_dir), [token_sum_reward], cfg, make_dataset(), engine=vllm_engine)
    start = params(trainer)
    out = trainer.train()
    assert out["global_step"] == 2
    assert any(not torch.equal(start[k], v) for k, v in params(trainer).items())
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "episode/turns_mean" in r]
    assert len(steps) == 2 and all(r["rollout/logp_mismatch_mean"] < 1e-3 for r in steps)


def test_prefix_cache_is_reset_by_the_weight_sync(vllm_model_dir):
    """With prefix caching on (as for episodes), a weight sync must invalidate the cached KV: after it,
    greedy decoding matches the HF reference of the new weights; with the reset disabled it does not
    (so the test can see stale KV). Each case runs in its own process."""
    require_vllm()
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    worker = Path(__file__).with_name("prefix_cache_worker.py")
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    results = {}
    for flag in ([], ["--no-reset"]):
        proc = subprocess.run([sys.executable, str(worker), str(vllm_model_dir), *flag], capture_output=True,
                              text=True, env=env, timeout=300, cwd=repo)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[bool(flag)] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results[False]["matches_reference"] and results[False]["changed"]
    assert not results[True]["matches_reference"]  # stale KV without the reset


def test_two_hdpo_steps_on_vllm(vllm_engine, vllm_model_dir, tmp_path):
    from datasets import Dataset

    from tests.rl.tests_helpers_grpo import make_cfg

    from rl.grpo_trainer import GRPOTrainer

    cfg = make_cfg(vllm_model_dir, tmp_path, engine="vllm", method="hdpo", max_steps=2,
                   environment_kwargs={"tools": ["calculator"]}, max_turns=3, max_completion_length=70,
                   max_episode_tokens=110)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": "Compute: 2 + 3"}],
                               "reward_model": {"ground_truth": "5"}} for _ in range(8)])
    trainer = GRPOTrainer(str(vllm_model_dir), args=cfg, train_dataset=data, engine=vllm_engine)
    out = trainer.train()
    assert out["global_step"] == 2
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "tools/calls_mean" in r]
    assert len(steps) == 2 and all("tool/loss" in r and "acc/loss" in r for r in steps)
