"""Checkpoints that cannot run code, corrupt files named in one line before any model loads, `latest` =
the newest complete checkpoint, and a new run that refuses an output_dir holding an earlier run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from rl.checkpoint import read_torch
from rl.checkpoint_check import missing_parts, resolve_resume
from rl.errors import CheckpointError, ConfigError


class _Evil:
    """Pickles to a call of os.system: what a crafted optimizer.pt would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def run_with_checkpoint(tiny_model_dir, tmp_path_factory) -> Path:
    """A real GRPO run of 2 steps with a checkpoint at each step (checkpoint-1, checkpoint-2)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tests_helpers_grpo import constant_reward, make_cfg, make_dataset

    from rl.grpo_trainer import GRPOTrainer

    root = tmp_path_factory.mktemp("ckpt")
    cfg = make_cfg(tiny_model_dir, root, max_steps=2, save_steps=1, save_total_limit=0)
    GRPOTrainer(cfg.model, reward_funcs=[constant_reward], args=cfg, train_dataset=make_dataset()).train()
    return root / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))}


def _train_cli(tiny_model_dir, out: Path, *extra: str) -> int:
    from rl.commands.cli import main

    return main(["train", "--model", str(tiny_model_dir), "--output_dir", str(out), "--max_steps", "3",
                 "--per_device_train_batch_size", "8", "--num_generations", "4", "--max_completion_length", "8",
                 "--disable_progress_bar", "true", "--report_to", "jsonl", "--dataset", "task:overthink",
                 "--dataset_num_examples", "16", *extra])


def test_a_crafted_pickle_never_runs(run_with_checkpoint, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state": {}, "param_groups": [], "x": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused: .*could run code"):
        read_torch(tmp_path / "evil.pt")
    assert not marker.exists()
    run = _copy(run_with_checkpoint, tmp_path)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state_0.pt"):
        shutil.copy(tmp_path / "evil.pt", run / "checkpoint-2" / name)
        with pytest.raises(CheckpointError, match=rf"checkpoint-2/{name}: refused"):
            resolve_resume("latest", run, 1, log=lambda m: None)
        assert not marker.exists()
        shutil.copy(run_with_checkpoint / "checkpoint-2" / name, run / "checkpoint-2" / name)
    assert resolve_resume("latest", run, 1, log=lambda m: None) == run / "checkpoint-2"


@pytest.mark.parametrize("name, damage", [
    ("model.safetensors", "truncate"), ("optimizer.pt", "truncate"), ("scheduler.pt", "truncate"),
    ("rng_state_0.pt", "truncate"), ("trainer_state.json", "truncate"), ("optimizer.pt", "random"),
    ("model.safetensors", "random"),
])
def test_a_corrupt_file_is_one_line_naming_it_and_nothing_changes(run_with_checkpoint, tiny_model_dir, tmp_path,
                                                                    capsys, name, damage):
    run = _copy(run_with_checkpoint, tmp_path)
    f = run / "checkpoint-2" / name
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    before = _snapshot(run)
    code = _train_cli(tiny_model_dir, run, "--resume_from_checkpoint", "latest")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and f"checkpoint-2/{name}" in err[0], err
    assert _snapshot(run) == before


def test_latest_skips_an_incomplete_checkpoint_and_says_so(run_with_checkpoint, tmp_path):
    run = _copy(run_with_checkpoint, tmp_path)
    (run / "checkpoint-3").mkdir()  # a crash mid-save on another file system
    lines: list[str] = []
    assert resolve_resume("latest", run, 1, log=lines.append) == run / "checkpoint-2"
    assert len(lines) == 1 and "skipping" in lines[0] and "checkpoint-3" in lines[0] and "trainer_state.json" in lines[0]
    (run / "checkpoint-2" / "rng_state_0.pt").unlink()
    lines.clear()
    assert resolve_resume("latest", run, 1, log=lines.append) == run / "checkpoint-1"
    assert "rng_state_0.pt" in lines[1]
    assert missing_parts(run / "checkpoint-1", 1) == []


def test_an_explicit_incomplete_checkpoint_names_what_is_missing(run_with_checkpoint, tmp_path):
    run = _copy(run_with_checkpoint, tmp_path)
    (run / "checkpoint-2" / "rng_state_0.pt").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint-2 is incomplete: missing rng_state_0\.pt"):
        resolve_resume(str(run / "checkpoint-2"), run, 1)
    with pytest.raises(CheckpointError, match="written by 1 process\\(es\\) but 2 are resuming"):
        resolve_resume(str(run / "checkpoint-1"), run, 2)


def test_a_resume_from_a_checked_checkpoint_still_trains(run_with_checkpoint, tiny_model_dir, tmp_path):
    from tests_helpers_grpo import constant_reward, make_cfg, make_dataset

    from rl.grpo_trainer import GRPOTrainer

    run = _copy(run_with_checkpoint, tmp_path)
    cfg = make_cfg(tiny_model_dir, tmp_path, max_steps=3, save_steps=1, save_total_limit=0,
                   resume_from_checkpoint="latest")
    t = GRPOTrainer(cfg.model, reward_funcs=[constant_reward], args=cfg, train_dataset=make_dataset())
    assert t._resume_path == run / "checkpoint-2"
    t.train()
    assert t.global_step == 3 and (run / "checkpoint-3").is_dir()


def test_a_new_run_into_a_used_output_dir_is_refused_unless_overwritten(run_with_checkpoint, tiny_model_dir,
                                                                        tmp_path, capsys):
    run = _copy(run_with_checkpoint, tmp_path)
    before = _snapshot(run)
    assert _train_cli(tiny_model_dir, run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--overwrite_output_dir" in err[0]
    assert _snapshot(run) == before
    old_lines = (run / "metrics.jsonl").read_text().count("\n")
    assert _train_cli(tiny_model_dir, run, "--overwrite_output_dir", "true") == 0
    assert not (run / "checkpoint-1").exists() and not (run / "checkpoint-2").exists()
    assert (run / "metrics.jsonl").read_text().count("\n") == 3 != old_lines + 3


def test_the_config_check_is_a_config_error(tmp_path):
    from rl.checkpoint_check import check_output_dir

    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match="output_dir: .* already holds a run \\(metrics.jsonl\\)"):
        check_output_dir(tmp_path, None, False)
    check_output_dir(tmp_path, "latest", False)  # a resume may write there
    check_output_dir(tmp_path / "fresh", None, False)  # a new directory


def test_a_sharded_checkpoints_metadata_is_checked_before_dcp_unpickles_it(tmp_path):
    """torch.distributed.checkpoint reads `.metadata` with plain pickle.load: it is checked first."""
    import pickle
    import warnings

    import torch.distributed.checkpoint as dcp

    from rl.checkpoint_check import check_dcp_metadata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
        dcp.save({"model": {"w": torch.ones(2, 3)}, "optimizer": {"state": {0: {"step": torch.tensor(1.0)}}}},
                 checkpoint_id=str(tmp_path / "sharded"), no_dist=True)
    meta = tmp_path / "sharded" / ".metadata"
    check_dcp_metadata(meta)
    marker = tmp_path / "pwned"
    meta.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError, match=r"\.metadata: refused"):
        check_dcp_metadata(meta)
    assert not marker.exists()
    meta.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match=r"\.metadata: unreadable"):
        check_dcp_metadata(meta)
