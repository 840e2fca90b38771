"""Plain GRPO as a method: the baseline every other method is measured against.

Nothing but a preset: the ``accuracy`` reward, the ``grpo`` advantage estimator (``rl/advantages.py``),
the ``single`` loss composition (``rl/losses.py``) and the ``plain`` sampler (``curriculum/samplers.py``),
all of them engine pieces. ``method: grpo`` in a recipe; docs/grpo.md.
"""

from __future__ import annotations

from rl.presets import register_method


register_method(
    "grpo",
    reward_funcs=["accuracy"],
    description="plain GRPO: accuracy reward, group-normalised advantages, clipped surrogate",
)
