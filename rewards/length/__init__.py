"""The length family of rewards: each returns the *full* reward (correctness included) and replaces
``accuracy`` in ``reward_funcs``.

- :mod:`rewards.length.base`: the shared machinery (settings, grading, lengths, metrics);
- :mod:`rewards.length.penalties`: ``length_penalty`` (linear or Kimi k1.5), ``l1_target_length``
  (L1 / LCPO), ``thinkprune``;
- :mod:`rewards.length.published`: the leaderboard's published rewards (``cosine``,
  ``soft_overlong``, ``linear_pass_rate``, ``grpo_lead``, ``dler_truncation``).

The presets that use them are in ``rl/methods/length.py``; importing this package registers the
rewards (``rl.presets.load_methods`` does it through that front door).
"""

from rewards.length.penalties import (
    L1Settings,
    L1TargetLengthReward,
    LengthPenaltyReward,
    LengthPenaltySettings,
    ThinkPruneReward,
    ThinkPruneSettings,
)
from rewards.length.published import (
    CosineLengthReward,
    CosineSettings,
    DLERTruncationReward,
    DLERTruncationSettings,
    GRPOLeadReward,
    GRPOLeadSettings,
    LinearPassRateReward,
    LinearPassRateSettings,
    SoftOverlongReward,
    SoftOverlongSettings,
    cosine_interp,
    group_keys,
    soft_overlong_penalty,
)

__all__ = [
    "CosineLengthReward", "CosineSettings", "DLERTruncationReward", "DLERTruncationSettings", "GRPOLeadReward",
    "GRPOLeadSettings", "L1Settings", "L1TargetLengthReward", "LengthPenaltyReward", "LengthPenaltySettings",
    "LinearPassRateReward", "LinearPassRateSettings", "SoftOverlongReward", "SoftOverlongSettings", "ThinkPruneReward",
    "ThinkPruneSettings", "cosine_interp", "group_keys", "soft_overlong_penalty",
]
