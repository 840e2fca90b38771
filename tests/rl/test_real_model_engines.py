"""The real model (SmolLM2-135M-Instruct, fixture ``smollm2_dir``) on the paths that start other processes or
engines: a colocated vLLM (CPU build) that takes the Llama, generates and follows the trainer's weights, and two
processes under ``accelerate launch``. A few prompts and tokens: these check the paths, not learning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.conftest import REPO, require_vllm
from tests.scripts.test_cli import _env

# a reward with variance in every group (the bare model rarely boxes a right answer in 8 tokens)
VARIED = "tests.rl.test_real_model:varied_reward"


def _args(model_dir, out, steps, extra=()):
    return ["--model", str(model_dir), "--dataset", "task:word_problems", "--dataset_num_examples", "16",
            "--output_dir", str(out), "--max_steps", str(steps), "--num_generations", "2",
            "--per_device_train_batch_size", "4", "--max_completion_length", "8", "--max_prompt_length", "128",
            "--eval_steps", "0", "--logging_steps", "1", "--report_to", "jsonl", "--disable_progress_bar", "true",
            "--seed", "0", *extra]


@pytest.mark.slow
def test_colocated_vllm_takes_the_llama_and_follows_its_weights(smollm2_dir, tmp_path):
    """Full fine-tuning with a float32 vLLM: the engine's sampling log-probs match the trainer's recomputation
    on both steps. The second step's rollouts come after a weight push (tied embeddings included), from a
    policy that the first update moved (lr 1e-4), so a push that missed a tensor shows as a mismatch there."""
    require_vllm()
    out = tmp_path / "run"
    args = _args(smollm2_dir, out, 2, ["--engine", "vllm", "--vllm_dtype", "float32", "--use_peft", "false",
                                       "--learning_rate", "1e-4", "--reward_funcs", f"accuracy,{VARIED}",
                                       "--save_steps", "0"])
    proc = subprocess.run([sys.executable, "-m", "rl.commands.cli", "train", *args], capture_output=True, text=True,
                          env=_env(), cwd=REPO, timeout=500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"step"' in x]
    rows = [r for r in rows if "rollout/logp_mismatch_mean" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["grad_norm"] > 0  # the first update moved the policy that the second step samples from
    for r in rows:
        assert r["time/weight_sync"] > 0
        assert r["rollout/logp_mismatch_mean"] < 2e-3, r  # float32 on both sides: kernels differ, weights do not


@pytest.mark.slow
def test_two_processes_train_the_real_model_with_lora(smollm2_dir, tmp_path):
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--config_file", str(REPO / "recipes/accelerate/cpu_2proc.yaml"),
           "--main_process_port", str(free_port()), str(REPO / "scripts/train_grpo.py"),
           *_args(smollm2_dir, out, 2, ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
                                        "--learning_rate", "1e-3", "--save_steps", "2", "--scale_rewards", "batch",
                                        "--reward_funcs", f"accuracy,{VARIED}"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "processes: 2" in proc.stdout + proc.stderr
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]  # only the main process logs
    ckpt = out / "checkpoint-2"
    assert (ckpt / "rng_state_0.pt").is_file() and (ckpt / "rng_state_1.pt").is_file()
    from safetensors.torch import load_file

    adapters = [p for p in ckpt.rglob("adapter_model.safetensors")]
    assert adapters, sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*"))
    lora_b = [v for k, v in load_file(adapters[0]).items() if "lora_B" in k]
    assert lora_b and any(bool(v.abs().sum() > 0) for v in lora_b)  # LoRA's B starts at zero: the steps trained it
