"""The GRPO loop: sample -> rollout -> reward -> advantage -> policy update -> log / checkpoint.

The update half (log-probs, losses, optimizer steps) is :mod:`rl.policy_update`. The loop is method-blind. A method is (1) reward functions, (2) a registered advantage
estimator that returns per-token advantage channels, and (3) a registered loss
composition saying which loss consumes which channel. This file never branches on a
method's name; it runs whatever the config names from the registries.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

from curriculum.data import get_ground_truth, render_prompt, validate_dataset
from curriculum.samplers import PromptSampler, ScoredGroup, get_assembler
from rewards.hooks import hooks_of, state_hooks_of
from rl.advantages import get_advantage
from rl.batch import RolloutBatch, collate, reward_tensor
from rl.batch_metrics import batch_metrics, text_metric_fns
from rl.config import GRPOConfig
from rl.engines import make_rollout_engine, off_policy_engine
from rl.losses import LossTerm, get_composition
from rl.policy_update import PolicyUpdate
from rl.rewarding import (
    RewardState,
    SkipBatch,
    collect_reward_metrics,
    needs_answers,
    resolve_reward_funcs,
    reward_meta,
    score_completions,
)
from rl.role_adapters import RoleEngines
from rl.rollouts_ahead import RolloutsAhead
from rl.trainer_base import BaseTrainer
from rollout.episodes import episode_factory, run_episodes
from rollout.prefixes import CompletionPrefix, generate_with_prefixes
from rollout.types import RolloutEngine, SamplingConfig, as_rollout_engine

__all__ = ["GRPOConfig", "GRPOTrainer"]  # `from rl.grpo_trainer import GRPOConfig, GRPOTrainer`, as in TRL

RewardFunc = Callable[..., list]

_OK, _SKIP, _FAILED = 0, 1, 2  # a step's outcome on one process, ordered: the worst one wins


class GRPOTrainer(PolicyUpdate, BaseTrainer):
    """``GRPOTrainer(model, reward_funcs, args, train_dataset)``, as in TRL.

    ``model``: a path / hub id or a loaded causal LM. ``reward_funcs``: callables
    ``f(prompts, completions, completion_ids, **columns) -> list[float | None]`` or registered
    names (default: ``args.reward_funcs``). ``train_dataset``: a ``datasets.Dataset`` with
    ``prompt`` and an answer column.
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Sequence[RewardFunc | str] | RewardFunc | str | None = None,
        args: GRPOConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        engine: RolloutEngine | None = None,
    ) -> None:
        if args is None:  # as in TRL: GRPOTrainer(model="...", reward_funcs=..., train_dataset=...)
            args = GRPOConfig(model=model if isinstance(model, str) else "")
        if not args.model and isinstance(model, str):  # as in TRL, the model argument names it
            args.model = model
        own_data = train_dataset is None  # built from args.dataset (a given dataset may be anything)
        if train_dataset is None:
            from curriculum.data import load_dataset_spec

            train_dataset = load_dataset_spec(
                args.dataset, args.dataset_split, args.dataset_num_examples, args.seed, args.dataset_kwargs
            )
        funcs = reward_funcs if reward_funcs is not None else list(args.reward_funcs)
        self.reward_funcs, self.reward_names = resolve_reward_funcs(funcs)
        # fail on malformed rows before any model is loaded (an answer is needed unless only the caller's
        # own reward functions score, which may not read one: TRL's contract)
        validate_dataset(train_dataset, require_answer=needs_answers(funcs, self.reward_funcs, train_dataset))
        weights = args.reward_weights or [1.0] * len(self.reward_funcs)
        if len(weights) != len(self.reward_funcs):
            raise ValueError(f"reward_weights has {len(weights)} entries for {len(self.reward_funcs)} reward functions")
        self.reward_weights = [float(w) for w in weights]
        from rl.presets import load_methods

        load_methods()  # a config that was unpickled rather than built has not loaded the methods yet
        self.advantage_fn = get_advantage(args.advantage_estimator)
        self.advantage_fn.preflight(args)
        self._text_metrics = text_metric_fns(args.dataset) if args.log_text_metrics and own_data else {}  # e.g. a store the estimator needs: checked before the model loads
        super().__init__(model, args, processing_class)
        for fn in self.reward_funcs:  # rewards that need the tokenizer or config get them once
            hooks_of(fn).setup(tokenizer=self.tokenizer, args=args)
        self.args: GRPOConfig = args
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.loss_terms: list[LossTerm] = get_composition(args.loss_composition)(args)
        built = engine or make_rollout_engine(args, self.model, self.tokenizer, self.accelerator)
        if engine is not None:  # an engine the caller built may hold other weights (a shared server, an earlier run)
            built.sync_weights(self.model)
            if args.async_rollouts:  # wrapped as given: the off-policy engine passes a seed to a generate() that takes one
                built = off_policy_engine(built)
        self.engine = as_rollout_engine(built)
        if self.role_adapters:  # role 0 generates with its adapter; sub-episodes of role r ask for_role(r)
            if self.accelerator.num_processes > 1 or self.is_sharded:
                raise ValueError("role_adapters: one process only for now (DDP would see the idle role's "
                                 "adapter as unused parameters)")
            self.engine = RoleEngines(self.engine, self.unwrapped_model, self.role_adapters)
        self.sampling = SamplingConfig(
            max_new_tokens=args.max_completion_length,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            # the HF engine samples from the trainer's own weights and kernels; any other engine's
            # log-probs are kept to measure (and optionally correct) the rollout/training mismatch
            return_logprobs=args.engine != "hf" or args.async_rollouts,
        )
        # async_rollouts: the next step's first round generates while this step updates (rl/rollouts_ahead.py)
        self.ahead = RolloutsAhead(self.engine, args.seed, args.max_staleness) if args.async_rollouts else None
        if self.ahead is not None and self.is_sharded:
            raise ValueError("async_rollouts: not supported with sharded training (FSDP2 / ZeRO-3) yet")
        self.sampler = PromptSampler(
            len(train_dataset), seed=args.seed, rank=self.accelerator.process_index, world_size=self.accelerator.num_processes
        )
        self.assembler = get_assembler(args.sampler, args)
        # multi-turn rollouts: one fresh environment per episode (None = single-turn generate)
        self.make_episode_env = episode_factory(args.environment, args.environment_kwargs) if args.environment else None
        self.ref_model = None
        if args.beta > 0 and not args.use_peft:
            self.ref_model = self.build_reference_model()  # sharded like the policy under FSDP2
        self.skipped_batches = 0
        self.generated_tokens = 0  # the policy's tokens generated so far, every process (max_generated_tokens)
        self._step_generated = 0  # this process's, in the current step
        self._drawn = 0  # global prompt indices drawn in the current step (kept equal across processes)
        self._next_group = 0  # next group_index of the current step

    # --- rollout + reward -----------------------------------------------------------------------
    def _prompt_ids(self, rows: list[dict]) -> list[list[int]]:
        texts = [render_prompt(self.tokenizer, r["prompt"], self.args.system_prompt) for r in rows]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        limit = self.args.max_prompt_length
        return [x[-limit:] for x in ids]  # left-truncate: the end of a prompt holds the question

    def _episodes(self, rows: list[dict]) -> list[list[Any]]:
        """G multi-turn episodes per row through the configured environment (observations masked)."""
        a = self.args
        return run_episodes(
            self.engine, self.tokenizer, rows, self.make_episode_env, a.num_generations, self.sampling,
            max_turns=a.max_turns, max_episode_tokens=a.max_episode_tokens or a.max_completion_length,
            max_prompt_length=a.max_prompt_length, system_prompt=a.system_prompt,
        )

    def _generate(self, prompt_ids: list[list[int]], n: int, sampling: SamplingConfig) -> list[list[Any]]:
        """``engine.generate``, ``generation_batch_size`` prompts per call (0 = all of them at once)."""
        chunk = self.args.generation_batch_size
        if 0 < chunk < len(prompt_ids):
            return [g for j in range(0, len(prompt_ids), chunk) for g in self.engine.generate(prompt_ids[j : j + chunk], n, sampling)]
        return self.engine.generate(prompt_ids, n, sampling)

    def rollout_and_score(self, indices: list[int], prefixes: Sequence[CompletionPrefix] | None = None) -> list[ScoredGroup]:
        """Generate G completions for each prompt index and score them. ``prefixes``: ``prefix.count`` of each
        prompt's completions start with ``prefix.text`` (rollout/prefixes.py; single-turn rollouts only)."""
        t0 = time.time()
        rows = [self.train_dataset[i] for i in indices]
        chunk = self.args.generation_batch_size  # prompts per generate() call (0 = all of them at once)
        if prefixes and (self.ahead is not None or self.make_episode_env is not None):
            raise ValueError("completion prefixes: only single-turn rollouts without async_rollouts can start with one")
        if self.ahead is not None:  # drawn and generated ahead, or generated now (one request at a time)
            groups = self.ahead.generate(indices, lambda: self._prompt_ids(rows), self.args.num_generations, self.sampling)
        elif self.make_episode_env is not None:  # multi-turn episodes (rollout/episodes.py)
            step = chunk if chunk > 0 else len(rows)
            groups = [g for j in range(0, len(rows), step) for g in self._episodes(rows[j : j + step])]
        elif prefixes:
            groups = generate_with_prefixes(self._generate, self.tokenizer, self._prompt_ids(rows),
                                            self.args.num_generations, self.sampling, prefixes)
        else:
            groups = self._generate(self._prompt_ids(rows), self.args.num_generations, self.sampling)
        self._timing["rollout"] += time.time() - t0
        # the policy's tokens (observations excluded), children and groups a sampler may drop included
        self._step_generated += sum(sum(t.completion_mask) for g in groups for t in g)
        t0 = time.time()
        for row, idx, g in zip(rows, indices, groups):
            gid = self._next_group  # groups are formed here: one id per prompt group, unique in the step
            self._next_group += 1
            for t in g:
                t.group_index = gid
                t.meta.update(prompt_index=idx, ground_truth=get_ground_truth(row), data_source=row.get("data_source"))
        flat_rows = [row for row, g in zip(rows, groups) for _ in g]
        flat_traj = [t for g in groups for t in g]
        rewards, total, metrics, metas = score_completions(
            self.reward_funcs,
            self.reward_names,
            self.reward_weights,
            prompts=[r["prompt"] for r in flat_rows],
            completions=[t.text for t in flat_traj],
            completion_ids=[t.completion_ids for t in flat_traj],
            rows=flat_rows,
            error_policy=self.args.reward_error_policy,
            nonfinite_policy=self.args.nonfinite_reward_policy,
            pop_metrics=False,
            meta=[reward_meta(t) for t in flat_traj],
            trainer_state=RewardState(self.global_step, self.args.max_steps),
        )
        for k, v in metrics.items():  # counts (e.g. non-finite rewards) add up over rounds
            self._reward_metrics[k] = self._reward_metrics.get(k, 0.0) + v
        self._timing["reward"] += time.time() - t0
        for t, meta in zip(flat_traj, metas):
            t.meta.update(meta)
            if self._text_metrics:  # the task's behaviours, logged against the advantages (rl/batch_metrics.py)
                t.meta["text_metrics"] = {k: fn(t.text) for k, fn in self._text_metrics.items()}
        out, pos = [], 0
        for idx, row, g in zip(indices, rows, groups):
            G = len(g)
            out.append(
                ScoredGroup(
                    prompt_index=idx,
                    trajectories=g,
                    rewards={k: v[pos : pos + G] for k, v in rewards.items()},
                    total=total[pos : pos + G],
                )
            )
            pos += G
        return out

    def build_batch(self, groups: list[ScoredGroup]) -> RolloutBatch:
        # group_index was set where the groups were formed (rollout_and_score) and is kept as is
        trajs = [t for g in groups for t in g.trajectories]
        pad = self.engine.pad_token_id
        batch = collate(trajs, pad if pad is not None else self.tokenizer.pad_token_id)
        batch.rewards = {
            name: reward_tensor([x for g in groups for x in g.rewards[name]], batch.completion_ids.shape[1])
            for name in groups[0].rewards
        }
        batch.total_reward = torch.tensor([x for g in groups for x in g.total], dtype=torch.float32)  # [N]
        if self.accelerator.num_processes > 1:
            batch.global_total_reward = self._gather_rows(batch.total_reward)
        if self.args.mask_truncated_completions:
            batch.completion_mask = batch.completion_mask * (~batch.truncated).float().unsqueeze(1)
        return batch

    # --- one optimizer step ---------------------------------------------------------------------
    def training_step(self) -> dict[str, float]:
        args = self.args
        self._timing = {"rollout": 0.0, "reward": 0.0, "logprobs": 0.0, "update": 0.0, "weight_sync": 0.0}
        self._reward_metrics: dict[str, float] = {}
        for fn in self.reward_funcs:  # rewards with a schedule (e.g. a shrinking length cap)
            hooks_of(fn).set_step(self.global_step)
        # Every process decides locally (ok / skip / failed), then all of them agree in one collective
        # call: a skip or a failure on one process is a skip or a failure on every process, so none of
        # them draws an extra batch or waits forever in a collective the others never reach.
        self._drawn = 0
        self._next_group = 0
        self._step_generated = 0
        if self.ahead is not None:
            self.ahead.start_step(self.global_step)
        status, reason, error = _OK, "", None
        groups: list[ScoredGroup] = []
        sampling_metrics: dict[str, float] = {}
        try:  # sharded + HF engine: generation on gathered weights, no collective however many rounds each makes
            with self.gathered_weights(self.engine.generates_from(self.model)):
                groups, sampling_metrics = self.assembler.assemble(self._draw, self.rollout_and_score, args.step_prompts)
        except SkipBatch as e:
            status, reason = _SKIP, str(e)
        except Exception as e:  # turned into a failure of every process below
            status, reason, error = _FAILED, f"{type(e).__name__}: {e}", e
        if status == _OK and not groups:
            status, reason = _SKIP, f"no group was kept ({sampling_metrics})"
        elif status == _OK and sampling_metrics.get("sampling/shortfall", 0) > 0 and args.dynamic_sampling_on_shortfall == "warn_skip":
            status, reason = _SKIP, f"dynamic sampling found too few groups with reward variance ({sampling_metrics})"
        status, reason = self._agree(status, reason, error)
        self._count_generated()  # a skipped step's tokens were generated too
        if self.ahead is not None:
            t0 = time.time()  # mostly the weight sync the update deferred while the last round was in flight
            self._submit_next_round(self.global_step + (status == _OK))
            self._timing["weight_sync"] += time.time() - t0
            sampling_metrics = {**sampling_metrics, **self.ahead.step_metrics()}
        if status == _SKIP:
            collect_reward_metrics(self.reward_funcs)  # drop the skipped batch's counters
            return self._skip(reason)
        self._reward_metrics.update(collect_reward_metrics(self.reward_funcs))
        groups, prepared = self.advantage_fn.prepare_groups(groups, args, self.global_step)  # e.g. M-GRPO's alignment
        sampling_metrics = {**sampling_metrics, **prepared}
        batch = self.build_batch(groups)
        self.engine.sleep()  # a colocated engine may free its memory during the update
        t0 = time.time()
        self._add_reference_logprobs(batch)
        self._timing["logprobs"] += time.time() - t0  # old / reference log-prob passes (0 when none is needed)
        t0 = time.time()
        batch.advantages = self.advantage_fn(batch, args)
        update_metrics = self._update(batch)
        self._timing["update"] += time.time() - t0
        metrics = {
            **batch_metrics(batch, self._reward_metrics),
            **sampling_metrics,
            **update_metrics,
            **{f"time/{k}": v for k, v in self._timing.items()},
        }
        metrics.update(self.assembler.after_step(batch, metrics))
        metrics = self.reduce_metrics(metrics)
        metrics["tokens/generated"] = float(self.generated_tokens)  # the run's total so far (every process)
        if self.global_step % max(1, args.log_completions_steps) == 0:
            self._log_samples(batch)
        return metrics

    def train(self) -> dict[str, Any]:
        summary = super().train()
        self.advantage_fn.run_ended(self.args, summary)  # e.g. M-GRPO's planner marks a budget's end in its store
        return summary

    def _submit_next_round(self, next_step: int) -> None:
        """async_rollouts: the next step's first round generates while this step updates. Also after
        the last step when a checkpoint follows it, so that a run resumed with more steps takes the
        round the longer run would have taken."""
        a = self.args
        if next_step < a.max_steps or (a.save_steps > 0 and next_step % a.save_steps == 0):
            self.ahead.submit_next(self.sampler.draw, lambda idx: self._prompt_ids([self.train_dataset[i] for i in idx]),
                                   a.num_generations, self.sampling, next_step)

    def _count_generated(self) -> None:
        """Add this step's generated tokens, summed over processes, to the run's total (one collective)."""
        n = self._step_generated
        if self.accelerator.num_processes > 1:
            t = torch.tensor([float(n)], dtype=torch.float64, device=self.accelerator.device)
            n = int(self.accelerator.reduce(t, reduction="sum").item())
        self.generated_tokens += n

    def budget_spent(self) -> bool:
        budget = self.args.max_generated_tokens
        return budget > 0 and self.generated_tokens >= budget

    def budget_line(self) -> str:
        return f"{self.generated_tokens} tokens generated, max_generated_tokens {self.args.max_generated_tokens} reached"

    def _gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate a [n] tensor over processes, whose n may differ (dynamic-sampling shortfall)."""
        dev = self.accelerator.device
        padded = self.accelerator.pad_across_processes(x.to(dev), dim=0, pad_index=float("nan"))
        allx = self.accelerator.gather(padded).cpu()
        return allx[~torch.isnan(allx)]

    def _draw(self, k: int) -> list[int]:
        """``sampler.draw`` that counts the global indices this step consumed (see :meth:`_agree`)."""
        self._drawn += k * self.sampler.world_size
        return self.ahead.draw(k, self.sampler.draw) if self.ahead is not None else self.sampler.draw(k)

    def _agree(self, status: int, reason: str, error: BaseException | None) -> tuple[int, str]:
        """Make this step's outcome collective: the worst status over processes wins (failed > skip > ok).

        Also aligns the sampler cursors: a process whose assembler drew fewer generation rounds than
        another (dynamic sampling, a reward that failed mid-way) skips ahead to the same global
        position, so every process stays at one position of the shared prompt stream. A failure
        re-raises the original exception on the process where it happened and a ``RuntimeError``
        naming that process on the others."""
        world = self.accelerator.num_processes
        if world == 1:
            if status == _FAILED:
                raise error  # type: ignore[misc]
            return status, reason
        t = torch.tensor([float(status), float(self._drawn)], dtype=torch.float64, device=self.accelerator.device)
        t = self.accelerator.reduce(t, reduction="max")
        worst, drawn = int(t[0].item()), int(t[1].item())
        if drawn > self._drawn:  # prompts the others drew this step are used by no one
            self.sampler.draw((drawn - self._drawn) // world)
            self._drawn = drawn
        if worst == _OK:
            return _OK, ""
        from accelerate.utils import gather_object

        rank = self.accelerator.process_index
        reasons = gather_object([(rank, status, reason)])
        named = "; ".join(f"process {r}: {msg}" for r, st, msg in reasons if st == worst)
        if worst == _FAILED:
            if status == _FAILED:
                raise error  # type: ignore[misc]
            raise RuntimeError(f"step {self.global_step + 1} failed on another process ({named})")
        return _SKIP, named

    def _skip(self, reason: str) -> dict[str, float]:
        self.skipped_batches += 1
        self.log_line(f"[parsimony] step {self.global_step + 1}: batch skipped: {reason}")
        if self.skipped_batches > 20 and self.skipped_batches > self.global_step:
            raise RuntimeError("more than 20 batches skipped and more skips than steps: check rewards and sampler")
        return {"skipped": 1.0}

    # --- metrics --------------------------------------------------------------------------------
    def _log_samples(self, batch: RolloutBatch, k: int = 4) -> None:
        if self.tracker is None:
            return
        rows = []
        for i in range(min(k, batch.num_rollouts)):
            rows.append(
                {
                    "prompt": self.tokenizer.decode(batch.prompt_ids[i][batch.prompt_mask[i] > 0]),
                    "completion": self.tokenizer.decode(batch.completion_ids[i][batch.attention_mask_completion[i] > 0]),
                    "reward": float(batch.total_reward[i]),
                    "ground_truth": str(batch.meta[i].get("ground_truth")),
                }
            )
        self.tracker.log_completions(self.global_step + 1, rows)

    # --- checkpoint state -------------------------------------------------------------------------
    def on_weights_loaded(self) -> None:
        """A resumed checkpoint's weights go to the engine before the first rollout (the engine
        was built from the start weights)."""
        self.engine.sync_weights(self.model)

    def extra_state(self):
        # The prompt sampler's and the assembler's states are each process's own (the assembler's
        # curriculum state, e.g. decs_kappa's running counts and RNG draws, follows the groups that
        # process saw), so they go to rng_state_<rank>.pt; only what every process agrees on is shared.
        # A reward's own state (e.g. a running accuracy maximum, re-estimated length targets) follows the
        # completions that process scored, so it is per process too, under the reward's name.
        shared = {"skipped_batches": self.skipped_batches, "generated_tokens": self.generated_tokens}
        local = {"sampler": self.sampler.state_dict(), "assembler": self.assembler.state_dict()}
        if self.ahead is not None:  # the round in flight, finished: a resumed run takes the same rollouts
            local["rollouts_ahead"] = self.ahead.state_dict()
        rewards = {name: state for name, fn in zip(self.reward_names, self.reward_funcs)
                   if (state := state_hooks_of(fn).checkpoint_state())}
        if rewards:
            local["rewards"] = rewards
        return shared, local

    def load_extra_state(self, shared, local):
        # checkpoints written before the assembler state was per process kept the main process's only
        self.assembler.load_state_dict(local["assembler"] if "assembler" in local else shared.get("assembler", {}))
        self.skipped_batches = shared.get("skipped_batches", 0)
        self.generated_tokens = shared.get("generated_tokens", 0)
        if "sampler" in local:
            self.sampler.load_state_dict(local["sampler"])
        if self.ahead is not None and "rollouts_ahead" in local:
            self.ahead.load_state_dict(local["rollouts_ahead"])
        saved = local.get("rewards", {})
        for name, fn in zip(self.reward_names, self.reward_funcs):
            if name in saved:
                state_hooks_of(fn).load_checkpoint_state(saved[name])

    def close(self) -> None:
        """Stop what the engine started (the async rollout thread and process; idempotent)."""
        self.engine.close()
