"""SFT under ``accelerate launch`` with two CPU processes (torchrun, gloo), from the same recipe as a
single-process run: packing, held-out eval loss reduced over both processes, and an exact resume
(a constant schedule: the first leg stops at max_steps 2, and a cosine schedule depends on max_steps)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from tests.helpers import REPO, launch_two_processes

TIMEOUT = 240

pytestmark = pytest.mark.slow


def _launch(model_dir, out, steps, *extra, port_offset=0):
    code, log = launch_two_processes(
        REPO / "scripts/train_sft.py",
        ["--config", str(REPO / "recipes/sft/tiny.yaml"),
         "--model", str(model_dir), "--output_dir", str(out), "--max_steps", str(steps),
         "--dataset_num_examples", "64", "--per_device_train_batch_size", "4", "--packing", "true",
         "--max_length", "256", "--eval_steps", "2", "--eval_num_examples", "4", "--eval_holdout_fraction", "0.25",
         "--save_steps", "2", "--logging_steps", "1", "--warmup_steps", "0", "--lr_scheduler_type", "constant",
         "--report_to", "jsonl", "--disable_progress_bar", "true", "--max_completion_length", "8", *extra],
        TIMEOUT, port_seed=11 + port_offset)
    assert code == 0, log[-3000:]
    return log


def test_two_process_sft_with_packing_eval_loss_and_exact_resume(tiny_model_dir, tmp_path):
    log = _launch(tiny_model_dir, tmp_path / "a", 4)
    assert "processes: 2" in log
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4] and all(r["eval_loss"] > 0 for r in evals)
    _launch(tiny_model_dir, tmp_path / "b", 2, port_offset=1)
    _launch(tiny_model_dir, tmp_path / "b", 4, "--resume_from_checkpoint", "latest", port_offset=2)
    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    rows_b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert {r["step"]: r["eval_loss"] for r in rows_b if "eval_loss" in r} == {r["step"]: r["eval_loss"] for r in evals}
