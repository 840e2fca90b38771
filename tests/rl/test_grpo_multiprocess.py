"""Two CPU processes (accelerate launch -> torchrun, gloo): every skip decision is collective, and a
resume restores each process's own curriculum state. The runs are in ``ddp_worker.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import launch_two_processes

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
TIMEOUT = 150  # a hang (a collective that one process never reaches) fails here, not in CI's limit

pytestmark = pytest.mark.slow


def _launch(model_dir, out, scenario, *extra, port_offset=0):
    code, log = launch_two_processes(WORKER, ["--model", str(model_dir), "--out", str(out), "--scenario", scenario, *extra],
                                     TIMEOUT, port_seed=port_offset)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return code, log, ranks


def test_a_reward_skip_on_one_process_skips_the_step_on_every_process(tiny_model_dir, tmp_path):
    # rank 1's reward returns NaN once at step index 1 (nonfinite_reward_policy: skip_batch). Before the
    # fix rank 1 alone skipped and redrew: its sampler ran 4 draws ahead, and its retry was averaged
    # into rank 0's step 2 by DDP.
    rc, log, ranks = _launch(tiny_model_dir, tmp_path / "nan", "nan", "--steps", "3")
    assert rc == 0, log[-3000:]
    calls = [[(c["step"], c["skipped"]) for c in r["calls"]] for r in ranks]
    assert calls[0] == calls[1] == [(0, False), (1, True), (1, False), (2, False)]
    cursors = [[c["sampler"] for c in r["calls"]] for r in ranks]
    assert cursors[0] == cursors[1] == [[0, 4], [0, 8], [0, 12], [0, 16]]
    assert ranks[0]["skipped_batches"] == ranks[1]["skipped_batches"] == 1
    # the prompts stay disjoint across processes
    drawn = [{i for c in r["calls"] for d in c["draws"] for i in d} for r in ranks]
    assert not drawn[0] & drawn[1]
    assert "batch skipped: process 1: reward function 'flaky' returned nan" in log


def test_a_reward_error_on_one_process_fails_every_process_with_its_message(tiny_model_dir, tmp_path):
    # reward_error_policy: raise. Before the fix the other process died in gloo with
    # "Connection closed by peer" (torchrun tore the group down), or waited forever in the next collective
    rc, log, ranks = _launch(tiny_model_dir, tmp_path / "raise", "raise", "--steps", "3", port_offset=1)
    assert rc != 0
    assert ranks[1]["error"].startswith("RewardError: reward function 'flaky' raised ValueError")
    assert ranks[0]["error"].startswith("RuntimeError: step 2 failed on another process (process 1: RewardError")
    assert [c["step"] for c in ranks[0]["calls"]] == [c["step"] for c in ranks[1]["calls"]] == [0]


def test_resume_restores_each_process_curriculum_state(tiny_model_dir, tmp_path):
    # sampler decs_kappa: rank 1 sees easy groups that rank 0 does not, so the two processes' running
    # counts and RNG draws differ. 4 steps straight == 2 steps + resume + 2 steps, on every rank, in the
    # prompts each rank trains on (and their order) and bit-exactly in the parameters. Before the fix
    # both ranks resumed with rank 0's state: rank 1 shuffled with another RNG draw.
    rc, log, straight = _launch(tiny_model_dir, tmp_path / "a", "decs", "--steps", "4", "--save_steps", "2",
                                port_offset=2)
    assert rc == 0, log[-3000:]
    ckpt = tmp_path / "a" / "run" / "checkpoint-2"
    saved = [torch.load(ckpt / f"rng_state_{r}.pt", weights_only=False)["local"]["assembler"] for r in (0, 1)]
    at2 = [r["calls"][1]["assembler"] for r in straight]
    assert saved == at2 and saved[0] != saved[1]  # per-rank state, and the ranks really differ
    rc, log, resumed = _launch(tiny_model_dir, tmp_path / "b", "decs", "--steps", "4", "--resume", str(ckpt),
                               port_offset=3)
    assert rc == 0, log[-3000:]
    for a, b in zip(straight, resumed):
        assert [c["step"] for c in b["calls"]] == [2, 3]
        for ca, cb in zip(a["calls"][2:], b["calls"]):
            assert (cb["batch"], cb["draws"], cb["sampler"], cb["assembler"]) == (
                ca["batch"], ca["draws"], ca["sampler"], ca["assembler"])
    pa = torch.load(tmp_path / "a" / "params.pt")
    pb = torch.load(tmp_path / "b" / "params.pt")
    for k in pa:
        assert torch.equal(pa[k], pb[k]), f"{k} differs after resume"


def test_async_rollouts_resume_exactly_on_two_processes(tiny_model_dir, tmp_path):
    # one rollout process per rank, dynamic sampling (decs_kappa) with rounds that differ by rank:
    # 4 steps straight == 2 + resume + 2 in the prompts, the rollouts' versions and the parameters
    args = ("--steps", "4", "--save_steps", "2", "--async_rollouts")
    rc, log, straight = _launch(tiny_model_dir, tmp_path / "a", "decs", *args, port_offset=4)
    assert rc == 0, log[-3000:]
    rc, log, resumed = _launch(tiny_model_dir, tmp_path / "b", "decs", *args, "--resume",
                               str(tmp_path / "a" / "run" / "checkpoint-2"), port_offset=5)
    assert rc == 0, log[-3000:]
    for a, b in zip(straight, resumed):
        for ca, cb in zip(a["calls"][2:], b["calls"]):
            assert (cb["batch"], cb["draws"], cb["sampler"]) == (ca["batch"], ca["draws"], ca["sampler"])
    pa = torch.load(tmp_path / "a" / "params.pt")
    pb = torch.load(tmp_path / "b" / "params.pt")
    for k in pa:
        assert torch.equal(pa[k], pb[k]), f"{k} differs after resume"
