"""Decoupled M-GRPO in two real processes sharing a real Redis server: a 2-process smoke run, and a
SIGKILL of each process in the middle of a step, then a restart from its checkpoint and the store:
no group is lost or trained on twice (tests/rl/mgrpo_role_worker.py is the worker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollout.mgrpo.store import RedisServer, RedisStore
from tests.helpers import require_redis_server

WORKER = Path(__file__).resolve().parent / "mgrpo_role_worker.py"
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    require_redis_server()
    with RedisServer(tmp_path_factory.mktemp("redis")) as srv:
        yield srv.url


def start(role, model, out, url, run, steps, die_at=-1):
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, str(WORKER), "--role", role, "--model", str(model), "--out", str(out), "--store", url,
           "--run", run, "--max_steps", str(steps), "--die_at", str(die_at)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)


def finish(proc, timeout=240):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker hung:\n{out[-3000:]}")
    return proc.returncode, out


def trained_steps(out_dir: Path) -> list[int]:
    """The store steps in the executor's latest checkpoint (its shared trainer state)."""
    ckpts = sorted((out_dir / "run").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((ckpts[-1] / "trainer_state.json").read_text())["store_trained_steps"]


def test_two_processes_then_a_kill_of_each_mid_step(tiny_model_dir, tmp_path, redis_url):
    store = RedisStore(redis_url)
    store.client.flushdb()
    # phase 1: both processes at once; the planner dies after committing step 1, the executor after its
    # update on step 1 (each before its checkpoint of that step)
    planner = start("planner", tiny_model_dir, tmp_path / "p", redis_url, "crash", 3, die_at=1)
    executor = start("executor", tiny_model_dir, tmp_path / "e", redis_url, "crash", 3, die_at=1)
    rc_p, out_p = finish(planner)
    rc_e, out_e = finish(executor)
    assert rc_p == -9, out_p[-3000:]
    assert rc_e == -9, out_e[-3000:]
    assert "planner pushed step 1: True" in out_p and "executor trained step 1 on 12 rows" in out_e
    committed = store.get_step("crash", 1)
    assert committed is not None and store.committed("crash", 2) is None
    assert trained_steps(tmp_path / "e") == [0]  # step 1 was trained on but not checkpointed
    # phase 2: both restart from their checkpoints and the store
    planner = start("planner", tiny_model_dir, tmp_path / "p", redis_url, "crash", 3)
    executor = start("executor", tiny_model_dir, tmp_path / "e", redis_url, "crash", 3)
    rc_p, out_p = finish(planner)
    rc_e, out_e = finish(executor)
    assert rc_p == 0, out_p[-3000:]
    assert rc_e == 0, out_e[-3000:]
    # the planner replayed step 1 (its commit kept, unchanged) and committed step 2 once
    assert "planner pushed step 1: False" in out_p and "planner pushed step 2: True" in out_p
    assert "planner pushed step 0" not in out_p
    assert store.get_step("crash", 1) == committed
    assert [store.committed("crash", s) is not None for s in range(4)] == [True, True, True, False]
    # the executor's weights hold every step exactly once
    assert "executor trained_steps [0, 1, 2]" in out_e and trained_steps(tmp_path / "e") == [0, 1, 2]
    assert "executor trained step 0" not in out_e
