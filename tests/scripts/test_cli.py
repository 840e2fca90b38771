"""The command line, as a user runs it: subprocesses, real signals, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]


def _env():
    env = dict(os.environ, WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _train_args(model_dir, out, steps=1, extra=()):
    return [
        "--config", str(REPO / "recipes/grpo/tiny.yaml"),
        "--model", str(model_dir), "--output_dir", str(out), "--max_steps", str(steps),
        "--dataset_num_examples", "32", "--num_generations", "2", "--per_device_train_batch_size", "4",
        "--max_completion_length", "8", "--eval_steps", "0", "--save_steps", "0", "--logging_steps", "1",
        "--disable_progress_bar", "true", *extra,
    ]


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "rl.commands.cli", "--help"], capture_output=True, text=True, env=_env(),
                         cwd=REPO, check=True).stdout
    for cmd in ("make-tiny-model", "sft", "train", "eval", "quickstart"):
        assert cmd in out


def test_parsimony_train_smoke(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "rl.commands.cli", "train", *_train_args(tiny_model_dir, out, 2)],
                          capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert (out / "final" / "model.safetensors").is_file()


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rl.commands.cli", "train", "--model", str(tmp_path / "nope"),
                           "--num_generations", "3", "--per_device_train_batch_size", "8"],
                          capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: per_device_train_batch_size")
    proc = subprocess.run([sys.executable, "-m", "rl.commands.cli", "train", "--model", str(tmp_path / "nope"),
                           "--dataset_num_examples", "8"],
                          capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_saves_checkpoint_and_resume_continues(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "scripts/train_grpo.py"), *_train_args(tiny_model_dir, out, 1000)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=REPO)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output[-3000:]
    ckpts = sorted(out.glob("checkpoint-*"))
    assert len(ckpts) == 1, output[-2000:]
    step = int(ckpts[0].name.split("-")[1])
    assert step >= 2 and (ckpts[0] / "optimizer.pt").is_file()
    resume = subprocess.run(
        [sys.executable, str(REPO / "scripts/train_grpo.py"),
         *_train_args(tiny_model_dir, out, step + 1, ["--resume_from_checkpoint", "latest"])],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert resume.returncode == 0, resume.stderr[-3000:]
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    assert steps[-1] == step + 1 and steps.count(step + 1) == 1


def test_two_process_accelerate_launch(tiny_model_dir, tmp_path):
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--config_file", str(REPO / "recipes/accelerate/cpu_2proc.yaml"),
           "--main_process_port", str(free_port()),
           str(REPO / "scripts/train_grpo.py"),
           *_train_args(tiny_model_dir, out, 2, ["--save_steps", "2", "--scale_rewards", "batch"])]  # gathers rewards
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "processes: 2" in proc.stdout + proc.stderr
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]  # only the main process logs
    ckpt = out / "checkpoint-2"
    assert (ckpt / "rng_state_0.pt").is_file() and (ckpt / "rng_state_1.pt").is_file()

