"""Decoupled M-GRPO training: the planner and the executor train in their own processes, each with
its own model and optimizer, and share only what crosses the store (``rollout/mgrpo/store.py``).

    planner process:  method: mgrpo, method_kwargs: {mgrpo_store: redis://..., mgrpo_run: R,
                                                     mgrpo_train_roles: planner}
    executor process: StoreExecutorTrainer(model, args), the same mgrpo_store / mgrpo_run and
                      mgrpo_train_roles: executor

**Planner side** (``rl.methods.mgrpo.prepare_groups``): at its step ``s`` the planner writes, per prompt, one
record keyed ``(run, s, prompt)``: its planner rollouts' ``R_M`` (and call counts) and the *raw*
executor trajectories of that prompt (prompt and completion ids, masks, sampling log-probs, and the
executor's scalar meta: format, local score, call index, task), then commits the step; it trains on
its planner rows only. No gradient and no weight crosses.

**Executor side** (:class:`StoreExecutorTrainer`): at its step ``s`` it waits for step ``s`` to be
committed, rebuilds the executor rows, computes ``R_S`` from the stored ``R_M`` (``rewards/mgrpo.py``),
aligns (``rl/methods/mgrpo.py``, seeded by the step: identical on a replay) and trains, then moves its cursor.

**Generation.** With ``serve_port`` the executor's process serves generation from its own model on
127.0.0.1 (``rollout/mgrpo/agent_server.py``, the OpenAI completions subset; ``vllm serve`` where vLLM is
installed), and the planner's ``environment_kwargs.executor_engine_url`` points its executor calls
there: two models, possibly of different sizes, two optimizers, each process with its own config.

**Exactly once.** Both processes number steps the same way (their ``global_step``), and a step is
committed once and never changes (``commit_step``). A planner that dies and resumes from its
checkpoint replays steps whose commit is kept, so nothing is written twice; an executor that dies
resumes from its checkpoint's step and reads that step again: a step it had trained on but not
checkpointed is trained on once in the resumed run, a checkpointed one is never read again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from curriculum.samplers import ScoredGroup
from rewards.mgrpo import MGRPORewardSettings
from rl.grpo_trainer import GRPOTrainer
from rl.methods.mgrpo_exchange import EXECUTOR_CURSOR, PLANNER_END_CURSOR, get_store, group_from_record, require_one_process
from rl.methods.mgrpo_settings import MGRPOSettings
from rollout.mgrpo.store import StoreError

class StoreExecutorTrainer(GRPOTrainer):
    """The executor's process: each step trains on the executor rows of the planner's step of the same
    number, pulled from the store (``method_kwargs.mgrpo_store`` / ``mgrpo_run``). The dataset is only a
    placeholder (rows come from the store); rewards are ``R_S`` from the stored ``R_M``."""

    def __init__(self, model: Any, args: Any, store: Any = None, wait_timeout: float = 600.0,
                 serve_port: int | None = None, **kwargs: Any) -> None:
        if kwargs.get("train_dataset") is None:
            from datasets import Dataset

            kwargs["train_dataset"] = Dataset.from_list([{"prompt": "store", "reward_model": {"ground_truth": "0"}}])
        super().__init__(model, args=args, **kwargs)
        if self.accelerator.num_processes > 1:
            require_one_process("StoreExecutorTrainer")
        self.mgrpo = MGRPOSettings.from_args(args)
        if self.mgrpo.store is None and store is None:
            raise ValueError("StoreExecutorTrainer needs method_kwargs.mgrpo_store (or store=)")
        if self.mgrpo.train_roles != "executor":
            raise ValueError("StoreExecutorTrainer trains the executor: set method_kwargs.mgrpo_train_roles: executor")
        self.store = store if store is not None else get_store(self.mgrpo.store)
        self.run_name = self.mgrpo.run
        self.wait_timeout = float(wait_timeout)
        weights = MGRPORewardSettings.from_args(args)  # R_S's weights, as the reward reads them
        self.w_main, self.w_local, self.parent_zero = weights.w_main, weights.w_local, weights.parent_zero
        self._pulled: tuple[int, list[ScoredGroup]] | None = None  # (step, its groups): the last store read
        self.consumed: list[int] = []  # steps trained on by this object (tests, logs)
        self.trained_steps: list[int] = []  # every store step in this model's weights (kept in its checkpoints)
        # serve_port (0 = a free one): generation for the planner's executor calls from this model, on
        # 127.0.0.1 (rollout/mgrpo/agent_server.py); the lock keeps requests out of the update
        self.update_lock = threading.Lock()
        self.server = None
        if serve_port is None:
            serve_port = self.mgrpo.serve_port
        if serve_port is not None:
            from rollout.mgrpo.agent_server import CompletionServer

            self.server = CompletionServer(self.engine, port=serve_port, lock=self.update_lock).start()
            self.log_line(f"[parsimony] executor: serving generation at {self.server.url}")

    def _pull(self, step: int) -> list[ScoredGroup]:
        """The executor groups of store step ``step`` (waits for its commit; read once per step)."""
        if self._pulled is not None and self._pulled[0] == step:
            return self._pulled[1]
        got = self._wait(step)
        if got is None and self.planner_ended(step):
            return []
        if got is None:
            raise TimeoutError(f"store run {self.run_name!r}: planner step {step} not committed after {self.wait_timeout} s")
        groups = []
        for prompt, record in got.items():
            try:
                groups.append(group_from_record(record, self.w_main, self.w_local, self.parent_zero))
            except (KeyError, TypeError, ValueError) as e:
                raise StoreError(f"store {self.store.name}: run {self.run_name!r} step {step} prompt {prompt!r}: "
                                 f"corrupt record ({type(e).__name__}: {e})") from None
        self._pulled = (step, [g for g in groups if g.trajectories])  # prompts whose rollouts made no call add no row
        return self._pulled[1]

    def _wait(self, step: int) -> dict[str, dict] | None:
        """``wait_step`` in slices of at most a second, ending early once the planner's run has ended before
        ``step`` (a budget of generated tokens stopped it: no such step will come)."""
        deadline = time.monotonic() + self.wait_timeout
        while True:
            got = self.store.wait_step(self.run_name, step, timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            if got is not None or self.planner_ended(step) or time.monotonic() >= deadline:
                return got

    def planner_ended(self, step: int) -> bool:
        """Whether the planner's run ended (``PLANNER_END_CURSOR``: its step count) at or before ``step``."""
        end = self.store.cursor(self.run_name, PLANNER_END_CURSOR)
        return 0 <= end <= step

    def budget_spent(self) -> bool:
        # the planner's budget of generated tokens (its executor calls included) ended its run: this trainer has
        # trained on every step it committed once its step count reaches the planner's
        return self.planner_ended(self.global_step) or super().budget_spent()

    def budget_line(self) -> str:
        return f"the planner's run ended after step {self.global_step} (its budget of generated tokens)"

    def rollout_and_score(self, indices: list[int]) -> list[ScoredGroup]:
        return self._pull(self.global_step)

    def _update(self, batch: Any) -> dict[str, float]:
        with self.update_lock:
            return super()._update(batch)

    def stop_serving(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def training_step(self) -> dict[str, float]:
        step = self.global_step
        pulled = self._pull(step)
        if not pulled and self.planner_ended(step):
            return {"skipped": 1.0}  # not a step: the loop then sees budget_spent() and ends the run
        if not pulled:
            # no planner rollout of the step called the executor: an empty step (no update, the lr schedule
            # does not move) that still counts, so both processes stay at the same step number
            self.log_line(f"[parsimony] executor: store step {step} has no executor call; nothing to train on")
            metrics = {"mgrpo/empty_store_step": 1.0}
        else:
            metrics = super().training_step()
        if not metrics.get("skipped"):
            self.consumed.append(step)
            self.trained_steps.append(step)
            self.store.set_cursor(self.run_name, EXECUTOR_CURSOR, step)
        return metrics

    def extra_state(self):
        shared, local = super().extra_state()
        return {**shared, "store_trained_steps": list(self.trained_steps)}, local

    def load_extra_state(self, shared, local):
        super().load_extra_state(shared, local)
        self.trained_steps = list(shared.get("store_trained_steps", []))


def run_separate(planner_args: Any, executor_args: Any, *, train_dataset: Any = None, planner_engine: Any = None,
                 train_executor: bool = True, timeout: float = 600.0) -> dict[str, Any]:
    """**separate** models in one process: two trainers, two models (possibly of different sizes), two
    optimizers, each with its own config. The executor's trainer serves generation from its model
    (``serve_port=0``) and, with ``train_executor``, trains in a thread on what the planner commits
    to their shared store (``mgrpo_store: memory`` in both configs, one ``mgrpo_run``); the planner's
    executor calls go to that server. ``train_executor=False`` is the ``frozen_executor`` baseline:
    the executor model only serves (give the planner ``mgrpo_train_roles: planner`` and no store).
    Returns ``{"planner": summary, "executor": summary or None, "trainers": (planner, executor)}``."""
    import dataclasses

    ex = StoreExecutorTrainer(executor_args.model, executor_args, serve_port=0, wait_timeout=timeout)
    out: dict[str, Any] = {"executor": None}
    errors: list[BaseException] = []
    thread = None
    try:
        kw = {**dict(planner_args.environment_kwargs or {}), "executor_engine_url": ex.server.url}
        pargs = dataclasses.replace(planner_args, environment_kwargs=kw)
        planner = GRPOTrainer(pargs.model, args=pargs, train_dataset=train_dataset, engine=planner_engine)
        out["trainers"] = (planner, ex)
        if train_executor:
            def train_executor_thread() -> None:
                try:
                    out["executor"] = ex.train()
                except BaseException as e:  # re-raised in the caller's thread
                    errors.append(e)

            thread = threading.Thread(target=train_executor_thread, name="parsimony-executor", daemon=True)
            thread.start()
        out["planner"] = planner.train()  # a budget's end is marked in the store (rl/methods/mgrpo.py: mark_planner_end)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"the executor's training did not finish within {timeout} s of the planner's")
        if errors:
            raise errors[0]
        return out
    finally:
        ex.stop_serving()


__all__ = ["StoreExecutorTrainer", "run_separate"]
