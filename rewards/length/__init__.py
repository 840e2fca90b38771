"""The length family of rewards: each returns the *full* reward (correctness included) and replaces
``accuracy`` in ``reward_funcs``.

- :mod:`rewards.length.base`: the shared machinery (settings, grading, lengths, metrics);
- :mod:`rewards.length.penalties`: ``length_penalty`` (linear or Kimi k1.5), ``l1_target_length``
  (L1 / LCPO), ``thinkprune``;
- :mod:`rewards.length.published`: the leaderboard's published rewards (``cosine``,
  ``soft_overlong``, ``linear_pass_rate``, ``grpo_lead``, ``dler_truncation``);
- :mod:`rewards.length.group_shaped`: group-relative rewards shaped within one group (``kimi_length``,
  ``sigmoid_length``, ``shorter_better``, ``alp``);
- :mod:`rewards.length.adaptive`: rewards that adapt during training, their state in the checkpoint
  (``laser_d``, ``short_rl``).

The presets that use them are in ``rl/methods/length.py``; importing this package registers the
rewards (``rl.presets.load_methods`` does it through that front door).
"""

from rewards.length.adaptive import BUCKETS, LaserDReward, LaserDSettings, ShortRLReward, ShortRLSettings, laser_target
from rewards.length.group_shaped import (
    ALPReward,
    ALPSettings,
    KimiLengthReward,
    KimiLengthSettings,
    ShorterBetterReward,
    ShorterBetterSettings,
    SigmoidLengthReward,
    SigmoidLengthSettings,
    kimi_lambda,
)
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
    "ALPReward", "ALPSettings", "BUCKETS", "CosineLengthReward", "CosineSettings", "DLERTruncationReward",
    "DLERTruncationSettings", "GRPOLeadReward", "GRPOLeadSettings", "KimiLengthReward", "KimiLengthSettings",
    "L1Settings", "L1TargetLengthReward", "LaserDReward", "LaserDSettings", "LengthPenaltyReward",
    "LengthPenaltySettings", "LinearPassRateReward", "LinearPassRateSettings", "ShortRLReward", "ShortRLSettings",
    "ShorterBetterReward", "ShorterBetterSettings", "SigmoidLengthReward", "SigmoidLengthSettings", "SoftOverlongReward",
    "SoftOverlongSettings", "ThinkPruneReward", "ThinkPruneSettings", "cosine_interp", "group_keys", "kimi_lambda",
    "laser_target", "soft_overlong_penalty",
]
