"""Decoupled M-GRPO through a real Redis server: the planner trainer pushes each step's executor rows
and parents' R_M and trains on its own rows; the executor trainer (its own model and optimizer) pulls
committed steps, computes R_S, aligns and trains; restarts from checkpoints lose and repeat no group."""

from __future__ import annotations

import json

import pytest
import torch

from curriculum.samplers import ScoredGroup
from rl.methods.mgrpo_exchange import group_from_record, push_executor_step
from rl.methods.mgrpo_two_process import StoreExecutorTrainer
from rl.grpo_trainer import GRPOTrainer
from rollout.mgrpo.store import InProcessStore, RedisServer, RedisStore
from rollout.types import Trajectory
from tests.helpers import require_redis_server
from tests_helpers_grpo import make_cfg, params
from test_grpo_mgrpo import PlannerExecutorEngine, dataset


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    require_redis_server()
    with RedisServer(tmp_path_factory.mktemp("redis")) as srv:
        yield srv.url


def _hand_group():
    t = lambda role, sub, **m: Trajectory(prompt_ids=[5, 6], completion_ids=[7, 8, 9], completion_mask=[1, 0, 1],  # noqa: E731
                                          role=role, sub_group=sub, meta=m)
    trajs = [t(0, 0), t(0, 1), t(0, 2),
             t(1, 0, call_index=0, executor_format_ok=True, executor_r_local=1.0, task="2*3"),
             t(1, 0, call_index=1, executor_format_ok=False, executor_r_local=0.0, task="4*5"),
             t(1, 2, call_index=0, executor_format_ok=True, executor_r_local=None, task="x")]
    total = [1.0, 0.1, 0.1, 9.0, 9.0, 9.0]  # executor totals are recomputed from R_M by the executor side
    return ScoredGroup(prompt_index=3, trajectories=trajs, rewards={"mgrpo_reward": total}, total=total)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_records_cross_the_store_and_r_s_comes_from_the_stored_r_m(backend, request):
    store = InProcessStore() if backend == "memory" else RedisStore(request.getfixturevalue("redis_url"))
    if backend == "redis":
        store.client.flushdb()
    assert push_executor_step(store, "r", 0, [_hand_group()]) is True
    assert push_executor_step(store, "r", 0, [_hand_group()]) is False  # a replayed step is not rewritten
    (rec,) = store.get_step("r", 0).values()
    assert rec["parents"] == [{"sub_group": 0, "main_reward": 1.0, "executor_calls": 2},
                              {"sub_group": 1, "main_reward": pytest.approx(0.1), "executor_calls": 0},
                              {"sub_group": 2, "main_reward": pytest.approx(0.1), "executor_calls": 1}]
    assert rec["executors"][0]["completion_ids"] == [7, 8, 9] and rec["executors"][0]["completion_mask"] == [1, 0, 1]
    g = group_from_record(rec, w_main=1.0, w_local=0.5)
    assert [t.role for t in g.trajectories] == [1, 1, 1] and [t.sub_group for t in g.trajectories] == [0, 0, 2]
    assert g.total == pytest.approx([1.0 + 0.5, 0.0, 0.1])  # R_S = w_main R_M + w_local r_local; invalid -> 0
    assert g.meta["parent_rollouts"] == [0, 1, 2] and all(t.group_index == 3 for t in g.trajectories)


def _planner_cfg(tiny_model_dir, out, url, run, **kw):
    base = dict(method="mgrpo", max_turns=5, max_completion_length=150, max_episode_tokens=700,
                environment_kwargs={"executor_max_episode_tokens": 300}, per_device_train_batch_size=8,
                num_generations=4, method_kwargs={"mgrpo_store": url, "mgrpo_run": run, "mgrpo_train_roles": "planner"})
    base.update(kw)
    return make_cfg(tiny_model_dir, out, **base)


def _executor_cfg(tiny_model_dir, out, url, run, **kw):
    kw.setdefault("method_kwargs", {"mgrpo_store": url, "mgrpo_run": run, "mgrpo_train_roles": "executor"})
    return _planner_cfg(tiny_model_dir, out, url, run, environment=None, **kw)


def _record_batches(trainer):
    seen = []
    orig = trainer._update
    trainer._update = lambda b: (seen.append(b), orig(b))[1]
    return seen


def test_two_trainers_train_decoupled_through_redis(tiny_model_dir, tmp_path, redis_url):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    RedisStore(redis_url).client.flushdb()
    pcfg = _planner_cfg(tiny_model_dir, tmp_path / "p", redis_url, "dec", max_steps=2)
    planner = GRPOTrainer(pcfg.model, args=pcfg, train_dataset=dataset(), engine=PlannerExecutorEngine(tok))
    pb = _record_batches(planner)
    planner.train()
    assert [b.num_rollouts for b in pb] == [8, 8] and all(int(b.role.max()) == 0 for b in pb)  # planner rows only
    store = RedisStore(redis_url)
    assert [len(store.committed("dec", s)) for s in (0, 1)] == [2, 2] and store.committed("dec", 2) is None
    ecfg = _executor_cfg(tiny_model_dir, tmp_path / "e", redis_url, "dec", max_steps=2)
    ex = StoreExecutorTrainer(ecfg.model, ecfg)
    eb = _record_batches(ex)
    before = params(ex)
    ex.train()
    assert ex.consumed == [0, 1] and store.cursor("dec", "executor") == 1
    # each step: 2 prompts x 3 delegating rollouts x D_max 2 = 12 executor rows; R_S from the stored R_M
    assert [b.num_rollouts for b in eb] == [12, 12] and all(bool((b.role == 1).all()) for b in eb)
    r = eb[0].total_reward.tolist()
    assert r[:4] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    assert any(not torch.equal(before[k], v) for k, v in params(ex).items())


def test_restarts_lose_and_repeat_no_group(tiny_model_dir, tmp_path, redis_url):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    store = RedisStore(redis_url)
    store.client.flushdb()
    # the planner runs step 0, checkpoints, "dies"; a replay of step 0 without its checkpoint keeps the first commit
    p1 = _planner_cfg(tiny_model_dir, tmp_path / "p", redis_url, "rs", max_steps=1, save_steps=1)
    GRPOTrainer(p1.model, args=p1, train_dataset=dataset(), engine=PlannerExecutorEngine(tok)).train()
    first = store.get_step("rs", 0)
    replay = _planner_cfg(tiny_model_dir, tmp_path / "p_replay", redis_url, "rs", max_steps=1)
    GRPOTrainer(replay.model, args=replay, train_dataset=dataset(), engine=PlannerExecutorEngine(tok)).train()
    assert store.get_step("rs", 0) == first
    # the planner resumes from its checkpoint: steps 1 and 2 only
    p2 = _planner_cfg(tiny_model_dir, tmp_path / "p", redis_url, "rs", max_steps=3, save_steps=1,
                      resume_from_checkpoint="latest")
    GRPOTrainer(p2.model, args=p2, train_dataset=dataset(), engine=PlannerExecutorEngine(tok)).train()
    assert [store.committed("rs", s) is not None for s in range(4)] == [True, True, True, False]
    # the executor trains step 0, checkpoints and dies; resumed, it trains steps 1 and 2, never step 0 again
    e1 = _executor_cfg(tiny_model_dir, tmp_path / "e", redis_url, "rs", max_steps=1, save_steps=1)
    a = StoreExecutorTrainer(e1.model, e1)
    a.train()
    e2 = _executor_cfg(tiny_model_dir, tmp_path / "e", redis_url, "rs", max_steps=3, save_steps=1,
                       resume_from_checkpoint="latest")
    b = StoreExecutorTrainer(e2.model, e2)
    b.train()
    assert a.consumed == [0] and b.consumed == [1, 2] and store.cursor("rs", "executor") == 2


def test_an_uncommitted_step_times_out_instead_of_training_on_nothing(tiny_model_dir, tmp_path):
    cfg = _executor_cfg(tiny_model_dir, tmp_path / "e", "memory", "empty", max_steps=1)
    ex = StoreExecutorTrainer(cfg.model, cfg, wait_timeout=0.2)
    with pytest.raises(TimeoutError, match="planner step 0 not committed"):
        ex.train()


def test_separate_models_the_executor_serves_its_own_model(tiny_model_dir, tmp_path):
    """Two models and two optimizers: the executor trainer serves generation from its own model over
    HTTP; the planner's executor calls go there; the executor then trains on those rows."""
    from transformers import AutoTokenizer

    from rollout.mgrpo.agents import EXECUTOR_SYSTEM_PROMPT

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ecfg = _executor_cfg(tiny_model_dir, tmp_path / "e", "memory", "sep", max_steps=1, max_completion_length=40)
    ex = StoreExecutorTrainer(ecfg.model, ecfg, serve_port=0, wait_timeout=30.0)
    try:
        pcfg = _planner_cfg(tiny_model_dir, tmp_path / "p", "memory", "sep", max_steps=1,
                            environment_kwargs={"executor_max_episode_tokens": 40, "executor_max_turns": 1,
                                                "executor_engine_url": ex.server.url})
        planner = GRPOTrainer(pcfg.model, args=pcfg, train_dataset=dataset(), engine=PlannerExecutorEngine(tok))
        planner.train()
        # 2 prompts x (2 + 1 + 3) = 12 calls of one executor turn each, batched per planner turn: the
        # turns with calls have 6, 4 and 2 of them
        assert ex.server.requests == 3 and ex.server.prompts == 12
        eb = _record_batches(ex)
        ex.train()
        (b,) = eb
        assert ex.consumed == [0] and b.num_rollouts == 12 and bool((b.role == 1).all())
        prompt = tok.decode(b.prompt_ids[0][b.prompt_mask[0] > 0], skip_special_tokens=False)
        assert EXECUTOR_SYSTEM_PROMPT in prompt
        # the random executor model writes no <result>: R_S = 0, and the planner saw the error
        assert b.total_reward.tolist() == [0.0] * 12
        assert all(m["executor_format_ok"] is False for m in b.meta)
    finally:
        ex.stop_serving()


def test_role_flag_of_parsimony_train(tiny_model_dir, capsys):
    import json as _json

    from rl.errors import ConfigError
    from rl.methods.mgrpo_exchange import pop_role

    assert pop_role(["--x", "1"]) == (["--x", "1"], None)
    assert pop_role(["--role", "executor", "--x", "1"]) == (
        ["--x", "1", "--method_kwargs", '{"mgrpo_train_roles": "executor"}'], "executor")
    out, role = pop_role(["--method_kwargs", '{"mgrpo_run": "a"}', "--role=planner"])
    assert role == "planner" and _json.loads(out[1]) == {"mgrpo_run": "a", "mgrpo_train_roles": "planner"}
    out, _ = pop_role(['--method_kwargs={"mgrpo_d_max": 2}', "--role", "executor"])
    assert _json.loads(out[0].split("=", 1)[1]) == {"mgrpo_d_max": 2, "mgrpo_train_roles": "executor"}
    with pytest.raises(ConfigError, match="--role"):
        pop_role(["--role", "judge"])
    from rl.commands.cli import main

    assert main(["train", "--role", "executor", "--method", "mgrpo", "--model", str(tiny_model_dir),
                 "--method_kwargs", '{"mgrpo_store": "redis://127.0.0.1:1/0", "mgrpo_run": "r"}', "--dry_run"]) == 0
    import yaml

    kw = yaml.safe_load(capsys.readouterr().out)["method_kwargs"]
    assert kw["mgrpo_train_roles"] == "executor" and kw["mgrpo_store"] == "redis://127.0.0.1:1/0"


def test_the_role_flag_is_registered_by_the_method_and_names_its_trainer():
    from rl.methods.mgrpo_two_process import StoreExecutorTrainer
    from rl.role_flags import ROLE_FLAGS, pop_role_flag

    assert pop_role_flag(["--x", "1"]) == (["--x", "1"], None)  # no --role: nothing loaded, nothing changed
    argv, trainer = pop_role_flag(["--role", "executor", "--x", "1"])
    assert trainer is StoreExecutorTrainer and argv[:2] == ["--x", "1"]
    argv, trainer = pop_role_flag(["--role=planner"])
    assert trainer is None and "--method_kwargs" in argv  # the planner trains with the GRPO trainer
    assert [f.source for f in ROLE_FLAGS] == ["rl.methods.mgrpo"]


def test_run_separate_trains_two_models_at_once_and_frozen_executor_trains_one(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from rl.methods.mgrpo_two_process import run_separate

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    env = {"executor_max_episode_tokens": 40, "executor_max_turns": 1}
    pcfg = _planner_cfg(tiny_model_dir, tmp_path / "p", "memory", "both", max_steps=2, environment_kwargs=env)
    ecfg = _executor_cfg(tiny_model_dir, tmp_path / "e", "memory", "both", max_steps=2, max_completion_length=40)
    out = run_separate(pcfg, ecfg, train_dataset=dataset(), planner_engine=PlannerExecutorEngine(tok), timeout=120)
    planner, ex = out["trainers"]
    assert out["planner"]["global_step"] == 2 and out["executor"]["global_step"] == 2 and ex.consumed == [0, 1]
    assert planner.unwrapped_model is not ex.unwrapped_model and planner.optimizer is not ex.optimizer
    # frozen executor: the executor model serves the calls and never trains; only the planner's rows train
    frozen = _planner_cfg(tiny_model_dir, tmp_path / "pf", None, "frozen", max_steps=1, environment_kwargs=env,
                          method_kwargs={"mgrpo_train_roles": "planner"})
    ecfg = _executor_cfg(tiny_model_dir, tmp_path / "ef", "memory", "frozen", max_steps=1, max_completion_length=40)
    out = run_separate(frozen, ecfg, train_dataset=dataset(), planner_engine=PlannerExecutorEngine(tok),
                       train_executor=False)
    planner, ex = out["trainers"]
    assert out["executor"] is None and ex.global_step == 0 and out["planner"]["global_step"] == 1


def test_a_planner_budget_of_generated_tokens_ends_both_separate_trainers_at_its_step(tiny_model_dir, tmp_path):
    """The planner's ``max_generated_tokens`` (its executor calls counted) ends its run after step 1 of 5; the executor
    trains on that step, then ends too instead of waiting out its timeout for a step that will not come."""
    import time

    from transformers import AutoTokenizer

    from rl.methods.mgrpo_two_process import run_separate

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    env = {"executor_max_episode_tokens": 40, "executor_max_turns": 1}
    pcfg = _planner_cfg(tiny_model_dir, tmp_path / "p", "memory", "budget", max_steps=5, environment_kwargs=env,
                        max_generated_tokens=1)
    ecfg = _executor_cfg(tiny_model_dir, tmp_path / "e", "memory", "budget", max_steps=5, max_completion_length=40)
    t0 = time.monotonic()
    out = run_separate(pcfg, ecfg, train_dataset=dataset(), planner_engine=PlannerExecutorEngine(tok), timeout=60)
    planner, ex = out["trainers"]
    assert out["planner"]["budget_spent"] and out["planner"]["global_step"] == 1
    assert out["executor"]["budget_spent"] and out["executor"]["global_step"] == 1 and ex.consumed == [0]
    assert time.monotonic() - t0 < 45  # not the 60 s wait for a step 1 the planner never commits
    assert planner.generated_tokens >= 1 and ex.generated_tokens == 0  # the executor generates nothing of its own


def test_the_planner_marks_a_budget_end_in_a_redis_store_and_nothing_else(tiny_model_dir, tmp_path, redis_url):
    """The mark two hand-launched processes share: written when a budget ended the planner's run, not when
    max_steps or a signal did, and never by the executor's side."""
    from rl.advantages import get_advantage

    store = RedisStore(redis_url)
    est = get_advantage("mgrpo")
    pcfg = _planner_cfg(tiny_model_dir, tmp_path / "p", redis_url, "mark-a", max_steps=5, max_generated_tokens=10)
    est.run_ended(pcfg, {"global_step": 5, "budget_spent": False, "interrupted": False})
    assert store.cursor("mark-a", "planner_end") == -1
    est.run_ended(pcfg, {"global_step": 3, "budget_spent": True, "interrupted": False})
    assert store.cursor("mark-a", "planner_end") == 3
    ecfg = _executor_cfg(tiny_model_dir, tmp_path / "e", redis_url, "mark-b", max_steps=5)
    est.run_ended(ecfg, {"global_step": 2, "budget_spent": True, "interrupted": False})
    assert store.cursor("mark-b", "planner_end") == -1


def test_a_step_without_executor_calls_is_an_empty_executor_step(tiny_model_dir, tmp_path):
    """A planner step whose rollouts made no executor call: the executor counts it without an update (both
    processes stay at the same step number) and trains on the next step's rows."""
    store = InProcessStore()
    planners = [Trajectory(prompt_ids=[5, 6], completion_ids=[7], completion_mask=[1], role=0, sub_group=k) for k in (0, 1)]
    no_calls = ScoredGroup(prompt_index=0, trajectories=planners, rewards={"mgrpo_reward": [1.0, 0.1]}, total=[1.0, 0.1])
    assert push_executor_step(store, "e", 0, [no_calls]) and push_executor_step(store, "e", 1, [_hand_group()])
    cfg = _executor_cfg(tiny_model_dir, tmp_path / "e", "memory", "e", max_steps=2)
    ex = StoreExecutorTrainer(cfg.model, cfg, store=store, wait_timeout=5)
    seen = _record_batches(ex)
    assert ex.train()["global_step"] == 2 and ex.consumed == [0, 1] and store.cursor("e", "executor") == 1
    # one update, on step 1: D = median_low(2, 1) = 1 sample for each of the two rollouts that called
    assert [b.num_rollouts for b in seen] == [2] and bool((seen[0].role == 1).all())


@pytest.mark.serial
def test_a_dead_store_is_one_line_before_the_model_loads(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import time

    import rl.trainer_base
    from rl.commands.cli import main
    from rollout.mgrpo.store import free_port

    def no_model(*a, **k):
        raise AssertionError("the model loaded before the store was checked")

    monkeypatch.setattr(rl.trainer_base, "load_model", no_model)
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    t0 = time.monotonic()
    code = main(["train", "--method", "mgrpo", "--model", str(tiny_model_dir), "--output_dir", str(tmp_path / "run"),
                 "--dataset", "task:planner", "--dataset_num_examples", "8", "--environment", "planner",
                 "--method_kwargs", json.dumps({"mgrpo_store": url, "mgrpo_run": "r", "mgrpo_train_roles": "planner"})])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: store redis://:***@127.0.0.1")
    assert "s3cret" not in err[0] and time.monotonic() - t0 < 30
    assert not (tmp_path / "run").exists()
