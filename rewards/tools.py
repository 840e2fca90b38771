"""Tool-use rewards, read from each completion's trajectory ``meta`` (counts, not text).

``tool_call_penalty``: ``-T`` with ``T = meta["tool_calls"]`` (the episode's tool round-trips,
0 when absent). Weighted by ``lambda`` next to the accuracy reward it is the *coupled* baseline
of HDPO's paper, ``r = r_acc - lambda * T`` under one group normalisation (presets
``coupled_small`` / ``coupled_large`` in ``rl/methods/hdpo.py``).
"""

from __future__ import annotations

from typing import Any

from rewards.registry import register_reward


@register_reward("tool_call_penalty")
def tool_call_penalty(prompts=None, completions=None, completion_ids=None, meta=None, **kwargs: Any) -> list[float]:
    """Minus the number of tool round-trips of each episode (``meta["tool_calls"]``)."""
    n = len(completions if completions is not None else completion_ids or [])
    metas = meta if meta is not None else [{}] * n
    return [-float((m or {}).get("tool_calls", 0) or 0) for m in metas]
