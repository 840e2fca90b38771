"""DECS curriculum batch scheduling (arXiv 2509.25827): the ``decs_kappa`` assembler.

On top of dynamic sampling, a controlled share of *easy* prompts (all G rollouts correct)
enters the batch. Under the DECS reward an all-correct group still carries signal: its only
variation is the length term on redundant tokens, so easy prompts are where the model learns
to stop early; too many of them and it learns to cut the reasoning itself.

Each generation round classifies the drawn groups:

- **kept**: mixed outcomes (some rollouts correct, some not) -- the usual GRPO signal;
- **easy**: all G rollouts correct;
- **all wrong**: no rollout correct -- dropped;
- anything else without reward variance -- dropped.

A rollout is correct when its ``decs_accuracy_reward`` value (default ``"accuracy"``) is 1.
Without that reward in the groups, a rollout is correct when its total reward equals the
largest total reward seen so far in training (a running maximum kept in the state).

With ``kappa`` the target share of easy prompts and ``kept_running`` the running count of
kept prompts (accumulated only while ``kappa > 0``, as in the paper's code)::

    n = min(#easy, floor(kappa * kept_running / (1 - kappa)))

random easy prompts are admitted, and ``kept_running`` is reset to 0 whenever ``n > 0``. So,
over time, easy prompts make up about ``kappa`` of the kept + easy prompts. Rounds repeat (up to
``max_generation_batches``) until kept + admitted easy reach the batch size; each round's
selection is shuffled and the batch is trimmed to size. Unlike the paper's code, which resets
the running count at every step, the count carries over between steps (and is checkpointed):
with small batches a per-step reset would round every admission down to 0.

After each optimizer step, with ``nrp_t`` the mean ``decs/nrp_ratio`` (from the ``decs_redundancy``
reward's meta) over the correct responses of the batch in which an NRP was detected::

    kappa <- clamp(kappa + kappa_lr * (nrp_t - nrp_{t-1}), 0, kappa_max)

(``nrp_0 = decs_nrp_init``; no update when no response has an NRP). A rising NRP ratio means
less redundancy after the first correct answer, so more easy prompts can be afforded. The
paper's code leaves kappa unclamped (kappa -> 1 divides by zero, kappa < 0 admits nothing);
here ``kappa_max < 1``. Under several processes, ``nrp_t`` is averaged over all of them
(``torch.distributed``) so kappa stays identical everywhere.

Settings (``args.method_kwargs``): see :class:`KappaSettings`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from curriculum.samplers import BatchAssembler, DrawFn, RolloutFn, ScoredGroup, register_assembler
from rewards.settings import MethodSettings, setting

STATE_VERSION = 1
_ADMIT_EPS = 1e-9  # floor(kappa * k / (1 - kappa)) is taken with this slack against float error


@dataclass(frozen=True)
class KappaSettings(MethodSettings):
    """``decs_kappa`` settings, read from ``args.method_kwargs`` (``parsimony methods`` lists them).

    ``max_generation_batches`` (a config field) bounds the rounds per step; ``seed`` seeds the
    choice of easy prompts.
    """

    kappa_init: float = setting("decs_kappa_init", 0.0, "initial kappa (the paper's code starts at 0), at most "
                                "decs_kappa_max", minimum=0.0)
    kappa_lr: float = setting("decs_kappa_lr", 0.2, "step size of the kappa update", minimum=0.0)
    kappa_max: float = setting("decs_kappa_max", 0.9, "upper clamp of kappa", minimum=0.0, exclusive_maximum=1.0)
    nrp_init: float = setting("decs_nrp_init", 0.5, "nrp_0, the 'previous' NRP ratio before the first step",
                              minimum=0.0, maximum=1.0)
    accuracy_reward: str = setting("decs_accuracy_reward", "accuracy", "the reward whose value 1 means correct")

    def check(self) -> None:
        if self.kappa_init > self.kappa_max:
            raise self.bad("decs_kappa_init", f"must be <= decs_kappa_max ({self.kappa_max!r}), got {self.kappa_init!r}")


def admission_count(kappa: float, kept_running: int, easy_available: int) -> int:
    """``min(#easy, floor(kappa * kept_running / (1 - kappa)))`` (0 when kappa <= 0)."""
    if kappa <= 0 or kept_running <= 0 or easy_available <= 0:
        return 0
    return min(easy_available, int(math.floor(kappa * kept_running / (1.0 - kappa) + _ADMIT_EPS)))


def _dist_sum(values: list[float]) -> list[float]:
    """Sum ``values`` over processes when torch.distributed is running (else unchanged)."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return values
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return values
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.cpu().tolist()


def _rank() -> int:
    try:
        import torch.distributed as dist

        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    except ImportError:  # pragma: no cover
        return 0


@register_assembler("decs_kappa")
class DECSKappaAssembler(BatchAssembler):
    """Dynamic sampling plus a kappa-controlled share of all-correct (easy) prompts."""

    method_settings = KappaSettings  # the method_kwargs keys it reads (checked at config time)

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.settings = KappaSettings.from_args(cfg)
        self.kappa = self.settings.kappa_init
        self.prev_nrp = self.settings.nrp_init
        self.kept_running = 0
        self.max_total_seen: float | None = None  # for the no-accuracy-reward fallback
        self.rng_seed = int(getattr(cfg, "seed", 0) or 0) * 1_000_003 + 7919 * _rank()
        self.rng_calls = 0

    # --- randomness: one fresh generator per use, so the state is two integers ---------------------
    def _rng(self) -> random.Random:
        self.rng_calls += 1
        return random.Random(self.rng_seed * 1_000_033 + self.rng_calls)

    # --- classification -----------------------------------------------------------------------------
    def _correct(self, group: ScoredGroup) -> list[bool]:
        name = self.settings.accuracy_reward
        values = group.rewards.get(name)
        if values is not None:
            out = []
            for v in values:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
                out.append(ok and abs(float(v) - 1.0) <= 1e-9)
            return out
        top = self.max_total_seen
        return [top is not None and float(x) >= top - 1e-9 for x in group.total]

    def classify(self, group: ScoredGroup) -> str:
        """``"easy"`` | ``"kept"`` | ``"all_wrong"`` | ``"zero_std"`` (see the module docstring)."""
        correct = self._correct(group)
        if correct and all(correct):
            return "easy"
        if not any(correct):
            return "all_wrong"
        return "kept" if group.has_variance else "zero_std"

    def _see_totals(self, groups: list[ScoredGroup]) -> None:
        totals = [float(x) for g in groups for x in g.total if math.isfinite(float(x))]
        if totals:
            m = max(totals)
            self.max_total_seen = m if self.max_total_seen is None else max(self.max_total_seen, m)

    # --- one step's batch ----------------------------------------------------------------------------
    def assemble(self, draw: DrawFn, rollout: RolloutFn, num_groups: int) -> tuple[list[ScoredGroup], dict]:
        max_rounds = int(getattr(self.cfg, "max_generation_batches", 4))
        batch: list[ScoredGroup] = []
        seen = zero_std = rounds = 0
        counts = {"kept": 0, "easy": 0, "all_wrong": 0, "zero_std": 0}
        kappa = self.kappa
        while len(batch) < num_groups and rounds < max_rounds:
            rounds += 1
            groups = rollout(draw(num_groups))
            seen += len(groups)
            zero_std += sum(not g.has_variance for g in groups)
            if self.settings.accuracy_reward not in (groups[0].rewards if groups else {}):
                self._see_totals(groups)
            kept: list[ScoredGroup] = []
            easy: list[ScoredGroup] = []
            for g in groups:
                kind = self.classify(g)
                counts[kind] += 1
                g.meta["decs/category"] = kind
                if kind == "kept":
                    kept.append(g)
                elif kind == "easy":
                    easy.append(g)
            n = 0
            if kappa > 0:
                self.kept_running += len(kept)
                n = admission_count(kappa, self.kept_running, len(easy))
                if n > 0:
                    self.kept_running = 0
            chosen = kept + (self._rng().sample(easy, n) if n else [])
            self._rng().shuffle(chosen)
            batch.extend(chosen)
        batch = batch[:num_groups]
        in_batch_easy = sum(g.meta.get("decs/category") == "easy" for g in batch)
        metrics = {
            "sampling/zero_std_frac": zero_std / max(1, seen),
            "sampling/generation_rounds": rounds,
            "sampling/shortfall": max(0, num_groups - len(batch)),
            "decs/kappa": kappa,
            "decs/kappa_used": kappa,
            "decs/kept": len(batch) - in_batch_easy,
            "decs/easy_admitted": in_batch_easy,
            "decs/easy_available": counts["easy"],
            "decs/dropped_all_wrong": counts["all_wrong"],
            "decs/dropped_zero_std": counts["zero_std"],
            "decs/kept_running": self.kept_running,
        }
        return batch, metrics

    # --- curriculum update -----------------------------------------------------------------------------
    @staticmethod
    def nrp_values(meta: list[dict[str, Any]]) -> list[float]:
        """NRP ratios of the correct responses with a detected NRP."""
        out = []
        for m in meta:
            v = m.get("decs/nrp_ratio")
            if v is None or m.get("decs/correct") is False:
                continue
            try:
                x = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x):
                out.append(x)
        return out

    def update_kappa(self, nrp: float) -> float:
        """``kappa <- clamp(kappa + kappa_lr * (nrp - prev_nrp), 0, kappa_max)``; returns kappa."""
        s = self.settings
        self.kappa = min(s.kappa_max, max(0.0, self.kappa + s.kappa_lr * (nrp - self.prev_nrp)))
        self.prev_nrp = nrp
        return self.kappa

    def after_step(self, batch: Any, metrics: dict[str, float]) -> dict[str, float]:
        vals = self.nrp_values(list(getattr(batch, "meta", None) or []))
        total, count = _dist_sum([float(sum(vals)), float(len(vals))])
        nrp = float("nan")
        if count > 0:
            nrp = total / count
            self.update_kappa(nrp)
        return {
            "decs/kappa": self.kappa,
            "decs/nrp_ratio_step": nrp,
            "decs/nrp_count": count,
            "decs/kappa_updated": 1.0 if count > 0 else 0.0,
        }

    # --- resume ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "kappa": self.kappa,
            "prev_nrp": self.prev_nrp,
            "kept_running": self.kept_running,
            "max_total_seen": self.max_total_seen,
            "rng_seed": self.rng_seed,
            "rng_calls": self.rng_calls,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:  # a checkpoint from another sampler: start the curriculum afresh
            return
        if state.get("version", STATE_VERSION) != STATE_VERSION:
            raise ValueError(f"decs_kappa state version {state.get('version')!r} is not {STATE_VERSION}")
        self.kappa = float(state["kappa"])
        self.prev_nrp = float(state["prev_nrp"])
        self.kept_running = int(state["kept_running"])
        m = state.get("max_total_seen")
        self.max_total_seen = None if m is None else float(m)
        # the seed stays this process's own (config seed and rank); the draw count is restored
        self.rng_calls = int(state.get("rng_calls", 0))
