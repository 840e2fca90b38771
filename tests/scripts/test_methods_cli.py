"""``parsimony methods``, ``--dry_run`` and config-time method-setting errors, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path = REPO, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="offline")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "rl.commands.cli", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


@pytest.mark.slow
def test_methods_lists_every_method_and_piece():
    proc = _run("methods")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for section in ("methods", "rewards:", "advantage estimators:", "losses:", "compositions:", "samplers:", "engines:"):
        assert section in out
    for name in ("decs  [rl.methods.decs]", "grpo  [rl.methods.grpo]", "length_penalty", "thinkprune", "l1",
                 "decs_redundancy  [rewards.decs.reward]", "accuracy", "dr_grpo", "clipped", "single", "decs_kappa", "hf"):
        assert name in out, name
    info = json.loads(_run("methods", "--json").stdout)
    assert info["methods"]["decs"]["sampler"] == "decs_kappa"
    assert "decs_beta" in info["advantage estimators"]["decs"]["settings"]
    assert "decs_kappa_init" in info["samplers"]["decs_kappa"]["settings"]
    assert "length_alpha" in info["rewards"]["length_penalty"]["settings"]
    assert {"hf", "vllm"} <= set(info["engines"])


@pytest.mark.slow
def test_train_dry_run_prints_the_resolved_config(tmp_path):
    out = tmp_path / "out"
    proc = _run("train", "--config", str(REPO / "recipes/decs/tiny.yaml"), "--model", str(tmp_path / "no-model"),
                "--output_dir", str(out), "--dataset", str(tmp_path / "missing.parquet"), "--sampler", "plain",
                "--method_kwargs", '{"decs_beta": 0.2}', "--dry_run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["method"] == "decs" and cfg["reward_funcs"] == ["accuracy", "decs_redundancy"]
    assert cfg["advantage_estimator"] == "decs" and cfg["sampler"] == "plain"  # the flag beats the preset
    assert cfg["method_kwargs"]["decs_beta"] == 0.2 and cfg["method_kwargs"]["decs_kappa_init"] == 0.5
    assert cfg["model"] == str(tmp_path / "no-model") and cfg["max_steps"] == 80
    assert not out.exists()  # nothing was trained or written
    # --dry_run false trains (and fails here, on the missing model): the flag is a real boolean
    proc = _run("train", "--model", str(tmp_path / "no-model"), "--dry_run", "false", "--num_generations", "2",
                "--per_device_train_batch_size", "4", cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.slow
def test_sft_dry_run(tmp_path):
    proc = _run("sft", "--config", str(REPO / "recipes/sft/tiny.yaml"), "--model", "nobody/no-such-model",
                "--dataset", str(tmp_path / "missing.jsonl"), "--learning_rate", "1e-4", "--dry_run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["model"] == "nobody/no-such-model" and cfg["learning_rate"] == 1e-4
    assert cfg["dataset"] == str(tmp_path / "missing.jsonl") and "max_length" in cfg


@pytest.mark.slow
def test_unknown_method_setting_exits_2_naming_key_and_known_keys(tmp_path):
    proc = _run("train", "--config", str(REPO / "recipes/decs/tiny.yaml"), "--model", str(tmp_path / "no-model"),
                "--method_kwargs", '{"decs_bta": 0.2}', cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.startswith("error: method_kwargs: unknown key(s) 'decs_bta'"), err
    assert "known keys:" in err and "'decs_beta'" in err and "'decs_kappa_init'" in err and "Traceback" not in err
    # the same with --dry_run, and for a bad value and for bad JSON
    assert _run("train", "--model", "m", "--method", "decs", "--method_kwargs", '{"decs_bta": 1}', "--dry_run",
                cwd=tmp_path).returncode == 2
    proc = _run("train", "--model", "m", "--method", "decs", "--method_kwargs", '{"decs_beta": -1}', cwd=tmp_path)
    assert proc.returncode == 2 and "decs_beta" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run("train", "--model", "m", "--method", "decs", "--method_kwargs", "{decs_beta: 1}", cwd=tmp_path)
    assert proc.returncode == 2 and "--method_kwargs: not valid JSON" in proc.stderr
