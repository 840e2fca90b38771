"""An engine with one generation request in flight beside training.

``OffPolicyEngine(engine)`` runs ``engine.generate`` in a background thread: ``submit`` returns a
``concurrent.futures.Future`` at once, so the trainer can update the policy while the next
rollouts are sampled (``rl/rollouts_ahead.py``). The engine itself must hold its own weights:
an ``HFProcessEngine`` (rollout/hf_process.py), a colocated vLLM or a vLLM server.

- One request at a time: a new request waits for the one in flight.
- ``sync_weights`` never changes the weights under a request: while one is in flight, the sync
  is deferred to the next submission, so every request samples from one version of the weights.
- Every trajectory records that version in ``meta["policy_version"]`` (the trainer's step count
  when the request was submitted).
- ``seed`` reaches engines whose ``generate`` takes one (the HF process engine); others ignore it.
"""

from __future__ import annotations

import inspect
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, Sequence

import torch

from rollout.types import EngineBase, SamplingConfig, Trajectory, as_rollout_engine


class OffPolicyEngine(EngineBase):
    """``close_engine``: whether :meth:`close` also closes the wrapped engine (False for an engine the
    caller built and keeps, e.g. one shared by several trainers)."""

    def __init__(self, engine: Any, close_engine: bool = True) -> None:
        self.engine = engine  # called as given: its generate() may take a seed
        self._declared = as_rollout_engine(engine)  # its close() and pad_token_id, with the protocol's defaults
        self.close_engine = close_engine
        self.pad_token_id = self._declared.pad_token_id
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parsimony-rollouts")
        self._inflight: Future | None = None
        self._pending: Any = None
        self._seeded = "seed" in inspect.signature(engine.generate).parameters

    def submit(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingConfig, *,
               version: int | None = None, seed: int | None = None) -> Future:
        """Start generating; the future's result is ``engine.generate``'s (or its exception)."""
        self.wait()
        self._apply_pending()
        kwargs = {"seed": seed} if self._seeded and seed is not None else {}
        threads = torch.get_num_threads()  # OpenMP's thread count is per thread: the caller's goes along
        self._inflight = self._pool.submit(self._generate, [list(p) for p in prompt_ids], n, sampling, version, kwargs,
                                           threads)
        return self._inflight

    def _generate(self, prompt_ids, n, sampling, version, kwargs, threads) -> list[list[Trajectory]]:
        torch.set_num_threads(threads)  # e.g. vLLM's CPU attention checks it against its own
        groups = self.engine.generate(prompt_ids, n, sampling, **kwargs)
        for g in groups:
            for t in g:
                t.meta["policy_version"] = version
        return groups

    def generate(self, prompt_ids: Sequence[Sequence[int]], n: int, sampling: SamplingConfig, *,
                 version: int | None = None, seed: int | None = None) -> list[list[Trajectory]]:
        """Synchronous: submit and wait."""
        return self.submit(prompt_ids, n, sampling, version=version, seed=seed).result()

    def wait(self) -> None:
        """Until no request is in flight (its result or error stays with its future's holder)."""
        fut, self._inflight = self._inflight, None
        if fut is not None:
            wait_futures([fut])

    def sync_weights(self, model: Any) -> None:
        self._pending = model
        if self._inflight is None or self._inflight.done():
            self._apply_pending()

    def _apply_pending(self) -> None:
        if self._pending is not None:
            model, self._pending = self._pending, None
            self.engine.sync_weights(model)

    def close(self) -> None:
        self.wait()
        self._pool.shutdown(wait=True)
        if self.close_engine:
            self._declared.close()
