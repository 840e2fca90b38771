"""One-step off-policy rollouts, the trainer's side (``async_rollouts: true``).

When step t's sampling ends, the first generation round of step t+1 is drawn from the prompt
stream and submitted to the engine (``rollout.off_policy.OffPolicyEngine``), which samples it
from the weights of step t while step t updates them. Step t+1 then takes those rollouts
(staleness 1: sampled one optimizer step behind the weights they train) instead of generating
its first round. Further rounds of a step (dynamic sampling refills) are generated on the spot.

The sampling log-probs come back with every trajectory, so the update's truncated importance
weight (``vllm_is_cap``) corrects for the policy lag. Groups older than ``max_staleness`` steps
are dropped (counted in ``async/stale_dropped``) and generated again from the current weights.

The assembler decides which prompts a round generates. The first round's shape is learned from
the step before (the positions of its prompts in the step's first draw, e.g. GFPO repeats each
prompt), so any assembler that rolls out the same shape every step is served ahead; one that
does not is generated on the spot and counted in ``async/prefetch_misses``.

Every request is seeded from (seed, step, round), and a checkpoint holds the finished
rollouts of the round in flight, so a resumed run takes exactly the rollouts the uninterrupted
run took.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable

from rollout.types import SamplingConfig, Trajectory


class RolloutsAhead:
    """The next step's first generation round, generated while this step trains."""

    def __init__(self, engine: Any, seed: int, max_staleness: int = 1) -> None:
        self.engine = engine  # an OffPolicyEngine: submit(...) -> Future, generate(..., version, seed)
        self.seed = seed
        self.max_staleness = max_staleness
        self.ahead: dict[str, Any] | None = None  # {"rollout", "version", "future" | "groups"}
        self.shape: list[int] | None = None  # the first round's prompts as positions in the first draw
        self.start_step(0)

    def request_seed(self, step: int, round_: int) -> int:
        return (self.seed * 1_000_003 + step) * 1000 + round_

    # --- within a step ------------------------------------------------------------------------
    def start_step(self, step: int) -> None:
        self._step, self._round = step, 0
        self._first_draw: list[int] | None = None
        self.metrics = {"async/staleness": 0.0, "async/stale_dropped": 0.0, "async/prefetch_misses": 0.0}
        self._stale_sum = self._stale_n = 0

    def draw(self, k: int, draw_fn: Callable[[int], list[int]]) -> list[int]:
        """The step's first draw is the one drawn ahead (when it has the size asked for)."""
        first = self._first_draw is None
        a = self.ahead
        if first and a is not None and len(a["draw"]) == k:
            idx = list(a["draw"])
        else:
            if first and a is not None:
                self._miss()
            idx = draw_fn(k)
        if first:
            self._first_draw = list(idx)
        return idx

    def generate(self, indices: list[int], prompt_ids: Callable[[], list[list[int]]], n: int,
                 sampling: SamplingConfig) -> list[list[Trajectory]]:
        """Groups for ``indices``: the ones generated ahead when they are these prompts, else new ones."""
        if self._round == 0 and self._first_draw is not None:  # learn the first round's shape
            pos = {i: p for p, i in reversed(list(enumerate(self._first_draw)))}
            self.shape = [pos[i] for i in indices] if all(i in pos for i in indices) else None
        a = self.ahead
        if a is not None and a["rollout"] == list(indices):
            self.ahead = None
            groups = a["groups"] if "groups" in a else a["future"].result()
            self._round += 1
            staleness = self._step - a["version"]
            if staleness <= self.max_staleness:
                self._record(groups, staleness)
                return groups
            self.metrics["async/stale_dropped"] += sum(len(g) for g in groups)
        elif a is not None:
            self._miss()
        seed = self.request_seed(self._step, self._round)
        self._round += 1
        groups = self.engine.generate(prompt_ids(), n, sampling, version=self._step, seed=seed)
        self._record(groups, 0)
        return groups

    def submit_next(self, draw_fn: Callable[[int], list[int]], prompt_ids: Callable[[list[int]], list[list[int]]],
                    n: int, sampling: SamplingConfig, next_step: int) -> None:
        """Draw the next step's first round and start generating it from the current weights."""
        if self.shape is None or self._first_draw is None:
            return  # this step's first round did not follow its first draw: nothing to predict
        drawn = draw_fn(len(self._first_draw))
        rollout = [drawn[p] for p in self.shape]
        future = self.engine.submit(prompt_ids(rollout), n, sampling, version=self._step,
                                    seed=self.request_seed(next_step, 0))
        self.ahead = {"draw": drawn, "rollout": rollout, "version": self._step, "future": future}

    def step_metrics(self) -> dict[str, float]:
        out = dict(self.metrics)
        out["async/staleness"] = self._stale_sum / max(1, self._stale_n)
        return out

    def _record(self, groups: list[list[Trajectory]], staleness: int) -> None:
        k = sum(len(g) for g in groups)
        self._stale_sum += staleness * k
        self._stale_n += k

    def _miss(self) -> None:
        """The assembler asked for other prompts than the ones drawn ahead: generate on the spot."""
        self.metrics["async/prefetch_misses"] += 1
        self.ahead = None

    # --- checkpoint -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The round in flight, finished (waits for it), as plain data."""
        a = self.ahead
        state: dict[str, Any] = {"shape": self.shape}
        if a is not None:
            groups = a["groups"] if "groups" in a else a["future"].result()
            a.pop("future", None)
            a["groups"] = groups
            state.update(draw=a["draw"], rollout=a["rollout"], version=a["version"],
                         groups=[[asdict(t) for t in g] for g in groups])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shape = state.get("shape")
        self.ahead = None
        if "groups" in state:
            self.ahead = {"draw": list(state["draw"]), "rollout": list(state["rollout"]), "version": state["version"],
                          "groups": [[Trajectory(**d) for d in g] for g in state["groups"]]}
