"""Noisy-teacher slips shared by the task generators: RL headroom of the kind RL really has.

A *slip* is a wrong behaviour that a controlled fraction of the SFT traces shows. The SFT
policy learns to slip at about that rate; GRPO with a verifiable reward can then remove the
slips by moving probability mass between two behaviours the model already has, without
learning a single new fact.

Why the slips are behaviours and not arithmetic noise: a teacher whose wrong step is a random
±1-2 error (the wave-1 probe in ``../shared/NOTES.md``) teaches a *flattened distribution at
every result token* of every arithmetic fact. RL then has to sharpen hundreds of separate
facts, each seen a few times per step, which is the same problem as learning the facts, and the
noisy updates disturb the facts the greedy policy had right (greedy fell 6 points). A
behaviour slip instead is one decision at one place that every rollout passes through (the
opening line, or whether to write the last step), so every rollout's reward pushes on the same
logit, and the steps the two behaviours share are the same facts in both.

Shared options (every generator accepts them):

* ``slip_rate``: a probability, or a ``{difficulty: probability}`` mapping (difficulty as the
  generator defines it: ``num_ops`` for ``overthink``; a missing difficulty gets 0). A mapping
  makes the slip *systematic*: where the rate exceeds 0.5 the slipped behaviour is the modal
  one, so greedy decoding slips too and there is greedy headroom as well as sampled headroom.
* ``slip_kind``: which wrong behaviour; each generator lists its kinds (``SLIP_KINDS``).

The draws use their own random stream (seeded by the generator's seed and split), one draw per
row, so rows with ``slip_rate=0`` are exactly the rows of the slip-free generator. A row that
slips records ``extra_info.slipped = True`` and ``extra_info.slip_kind``; its answer and ground
truth disagree (the ground truth is always the correct answer).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SlipPolicy", "slip_policy"]


@dataclass
class SlipPolicy:
    """Per-row slip decisions for one generator call."""

    rates: dict[int, float] | float
    kind: str
    rng: random.Random = field(repr=False, default_factory=random.Random)

    @property
    def active(self) -> bool:
        if isinstance(self.rates, dict):
            return any(r > 0 for r in self.rates.values())
        return self.rates > 0

    def rate(self, difficulty: int) -> float:
        if isinstance(self.rates, dict):
            return self.rates.get(int(difficulty), 0.0)
        return self.rates

    def draw(self, difficulty: int) -> bool:
        """One draw per row (always consumed when active, so the stream stays aligned)."""
        if not self.active:
            return False
        return self.rng.random() < self.rate(difficulty)


def _check_rate(v: Any, what: str) -> float:
    try:
        r = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a probability in [0, 1], got {v!r}") from None
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"{what} must be a probability in [0, 1], got {v!r}")
    return r


def slip_policy(
    slip_rate: float | Mapping[Any, float],
    slip_kind: str,
    kinds: tuple[str, ...],
    stream: str,
) -> SlipPolicy:
    """Validate the shared slip options -> a :class:`SlipPolicy` drawing from ``stream``."""
    if slip_kind not in kinds:
        raise ValueError(f"unknown slip_kind {slip_kind!r}; known: {', '.join(kinds)}")
    if isinstance(slip_rate, Mapping):
        rates: dict[int, float] | float = {}
        for k, v in slip_rate.items():
            try:
                key = int(k)  # JSON/YAML configs give string keys
            except (TypeError, ValueError):
                raise ValueError(f"slip_rate keys must be difficulties (integers), got {k!r}") from None
            rates[key] = _check_rate(v, f"slip_rate[{k!r}]")
    else:
        rates = _check_rate(slip_rate, "slip_rate")
    return SlipPolicy(rates=rates, kind=slip_kind, rng=random.Random(stream))
