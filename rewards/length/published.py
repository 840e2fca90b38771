"""Published length-efficiency rewards (the leaderboard's presets): each returns the *full* reward.

Like :mod:`rewards.length.penalties`, use one of them **instead of** ``accuracy`` in ``reward_funcs``.
Correctness comes from the math grader against the row's ground truth (rows without one get
``None``); ``L_i = len(completion_ids[i])``; a completion is *truncated* when it reached
``max_completion_length`` without ending in an eos token. Settings come from
``args.method_kwargs`` (``setup``), or keyword arguments to the constructor (which win).

- ``cosine`` (:class:`CosineLengthReward`; Yeo et al. 2025, "Demystifying Long Chain-of-Thought
  Reasoning in LLMs"): ``f(L; r0, rL) = rL + (r0 - rL) * (1 + cos(pi * L / L_max)) / 2``, so
  ``f(0) = r0`` and ``f(L_max) = rL``; correct: ``f(L; r0c, rLc)``, wrong: ``f(L; r0w, rLw)``,
  truncated: ``r_exceed``. Defaults are the paper's ``r0c=2, rLc=1, r0w=-10, rLw=0, r_exceed=-10``:
  a short correct answer beats a long one, a long wrong answer beats a short one.
- ``soft_overlong`` (:class:`SoftOverlongReward`; DAPO's soft overlong punishment):
  ``acc_i + factor * R_len(L_i)`` with ``acc = 1`` correct / ``overlong_wrong_reward`` (DAPO: -1)
  and ``R_len = 0`` for ``L <= L_max - L_cache``, ``((L_max - L_cache) - L) / L_cache`` inside the
  buffer, ``-1`` beyond ``L_max``.
- ``linear_pass_rate`` (:class:`LinearPassRateReward`): correct ``1 - alpha * p_g * L_i / L_ref``,
  wrong ``0``, with ``p_g`` the share of correct completions in the prompt's group: the easier
  the prompt, the harder its correct completions are pushed to be short.
- ``grpo_lead`` (:class:`GRPOLeadReward`; Zhang & Zuo 2025, GRPO-LEAD): correct
  ``exp(-alpha * z_i)``, ``z_i = (L_i - mu_g) / (sigma_g + eps)`` over the *correct* completions
  of the group (population std); wrong ``lead_wrong_reward`` (the explicit penalty, -1).
- ``dler_truncation`` (:class:`DLERTruncationReward`; DLER's length penalty): ``1`` when correct
  and within the length budget (``L <= dler_length_cap`` and not truncated), else ``0``.

Group-relative rewards (``linear_pass_rate``, ``grpo_lead``) group completions by the prompt's
dataset index (``meta["prompt_index"]``), else ``meta["group_index"]``, else the prompt itself, so
that a prompt rolled out twice in one step (GFPO's larger group) forms one group.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from rewards.length.base import GradedLengthReward, bad_setting, number_setting, positive_int_setting
from rewards.registry import register_reward

__all__ = [
    "CosineLengthReward",
    "SoftOverlongReward",
    "LinearPassRateReward",
    "GRPOLeadReward",
    "DLERTruncationReward",
    "cosine_interp",
    "soft_overlong_penalty",
    "group_keys",
]


def cosine_interp(length: float, max_len: float, at_zero: float, at_max: float) -> float:
    """``at_max + (at_zero - at_max) * (1 + cos(pi * min(L, L_max) / L_max)) / 2``."""
    t = min(max(float(length), 0.0), float(max_len)) / float(max_len)
    return at_max + (at_zero - at_max) * 0.5 * (1.0 + math.cos(math.pi * t))


def soft_overlong_penalty(length: int, max_len: int, buffer: int) -> float:
    """DAPO's ``R_length``: 0 up to ``max_len - buffer``, then linear down to -1 at ``max_len``, -1 beyond."""
    start = max_len - buffer
    if length <= start:
        return 0.0
    if length <= max_len:
        return (start - length) / buffer
    return -1.0


def group_keys(n: int, prompts: Sequence[Any] | None, columns: Mapping[str, Any]) -> list[Any]:
    """One key per completion: ``meta["prompt_index"]``, else ``meta["group_index"]``, else the prompt."""
    metas = columns.get("meta") or [{} for _ in range(n)]
    prompts = list(prompts) if prompts is not None else [None] * n
    out = []
    for i in range(n):
        m = metas[i] if i < len(metas) and isinstance(metas[i], Mapping) else {}
        if m.get("prompt_index") is not None:
            out.append(("prompt_index", m["prompt_index"]))
        elif m.get("group_index") is not None:
            out.append(("group_index", m["group_index"]))
        else:
            out.append(("prompt", repr(prompts[i])))
    return out


def _groups(keys: list[Any], rows: Sequence[int]) -> dict[Any, list[int]]:
    out: dict[Any, list[int]] = {}
    for i in rows:
        out.setdefault(keys[i], []).append(i)
    return out


class _EfficiencyReward(GradedLengthReward):
    """Shared: the length budget (``None`` -> max_completion_length, else the call's longest) and truncation."""

    def _limit(self, value: Any, lengths: Sequence[int]) -> int:
        if value is not None:
            return int(value)
        if self.max_completion_length:
            return self.max_completion_length
        return max(1, max(lengths, default=1))

    def _truncated(self, ids: Sequence[int]) -> bool:
        limit = self.max_completion_length
        if limit is None or len(ids) < limit:
            return False
        return not (self.eos_token_ids and len(ids) > 0 and ids[-1] in self.eos_token_ids)

    def _opt_int(self, s: dict[str, Any], key: str) -> None:
        if s[key] is not None:
            s[key] = positive_int_setting(key, s[key])


@register_reward("cosine")
class CosineLengthReward(_EfficiencyReward):
    """``cosine``: cosine-scaled length reward by correctness (Demystifying Long CoT)."""

    name = "cosine"
    defaults = {
        "cosine_max_len": None,
        "cosine_correct_short": 2.0,
        "cosine_correct_long": 1.0,
        "cosine_wrong_short": -10.0,
        "cosine_wrong_long": 0.0,
        "cosine_exceed": -10.0,
    }
    method_settings = defaults

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:
        self._opt_int(s, "cosine_max_len")
        for k in ("cosine_correct_short", "cosine_correct_long", "cosine_wrong_short", "cosine_wrong_long", "cosine_exceed"):
            s[k] = number_setting(k, s[k])
        return s

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        s = self.settings
        max_len = self._limit(s["cosine_max_len"], lengths)
        out: list[float | None] = []
        for i in range(n):
            if correct[i] is None:
                out.append(None)
            elif self._truncated(completion_ids[i]) or lengths[i] > max_len:
                self._count("cosine/exceeded")
                out.append(s["cosine_exceed"])
            elif correct[i]:
                out.append(cosine_interp(lengths[i], max_len, s["cosine_correct_short"], s["cosine_correct_long"]))
            else:
                out.append(cosine_interp(lengths[i], max_len, s["cosine_wrong_short"], s["cosine_wrong_long"]))
        return out


@register_reward("soft_overlong")
class SoftOverlongReward(_EfficiencyReward):
    """``soft_overlong``: correctness (+1 / -1) plus DAPO's soft overlong punishment."""

    name = "soft_overlong"
    defaults = {
        "overlong_max_len": None,
        "overlong_buffer": None,
        "overlong_penalty_factor": 1.0,
        "overlong_wrong_reward": -1.0,
    }
    method_settings = defaults

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:
        self._opt_int(s, "overlong_max_len")
        self._opt_int(s, "overlong_buffer")
        if s["overlong_max_len"] is not None and s["overlong_buffer"] is not None and s["overlong_buffer"] > s["overlong_max_len"]:
            raise bad_setting("overlong_buffer", f"must be <= overlong_max_len ({s['overlong_max_len']}), got {s['overlong_buffer']}")
        s["overlong_penalty_factor"] = number_setting("overlong_penalty_factor", s["overlong_penalty_factor"], minimum=0.0)
        s["overlong_wrong_reward"] = number_setting("overlong_wrong_reward", s["overlong_wrong_reward"])
        return s

    def budget(self, lengths: Sequence[int]) -> tuple[int, int]:
        """``(L_max, L_cache)``; the buffer defaults to 20% of ``L_max`` (DAPO: 4096 of 20480)."""
        max_len = self._limit(self.settings["overlong_max_len"], lengths)
        buf = self.settings["overlong_buffer"]
        buf = max(1, max_len // 5) if buf is None else min(buf, max_len)
        return max_len, buf

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        max_len, buf = self.budget(lengths)
        factor, wrong = self.settings["overlong_penalty_factor"], self.settings["overlong_wrong_reward"]
        out: list[float | None] = []
        for c, L in zip(correct, lengths):
            if c is None:
                out.append(None)
                continue
            pen = soft_overlong_penalty(L, max_len, buf)
            if pen < 0:
                self._count("soft_overlong/in_buffer")
            out.append((1.0 if c else wrong) + factor * pen)
        return out


@register_reward("linear_pass_rate")
class LinearPassRateReward(_EfficiencyReward):
    """``linear_pass_rate``: correct ``1 - alpha * pass_rate_g * L / L_ref``, wrong 0."""

    name = "linear_pass_rate"
    defaults = {"pass_rate_alpha": 0.5, "pass_rate_length_ref": "max_completion_length"}
    method_settings = defaults

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:
        s["pass_rate_alpha"] = number_setting("pass_rate_alpha", s["pass_rate_alpha"], minimum=0.0)
        ref = s["pass_rate_length_ref"]
        if not (ref in ("max_completion_length", "group") or (isinstance(ref, int) and not isinstance(ref, bool) and ref >= 1)):
            raise bad_setting("pass_rate_length_ref", f"must be 'max_completion_length', 'group' or a positive integer, got {ref!r}")
        return s

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        keys = group_keys(n, prompts, columns)
        alpha, ref = self.settings["pass_rate_alpha"], self.settings["pass_rate_length_ref"]
        out: list[float | None] = [None] * n
        for rows in _groups(keys, [i for i in range(n) if correct[i] is not None]).values():
            p = sum(bool(correct[i]) for i in rows) / len(rows)
            if ref == "group":
                L_ref = max(1, max(lengths[i] for i in rows))
            else:
                L_ref = self._limit(ref if isinstance(ref, int) else None, lengths)
            for i in rows:
                out[i] = 1.0 - alpha * p * min(lengths[i], L_ref) / L_ref if correct[i] else 0.0
        return out


@register_reward("grpo_lead")
class GRPOLeadReward(_EfficiencyReward):
    """``grpo_lead``: correct ``exp(-alpha * z)`` (length z-score among the group's correct), wrong -1."""

    name = "grpo_lead"
    defaults = {"lead_alpha": 0.1, "lead_wrong_reward": -1.0, "lead_eps": 1e-6}
    method_settings = defaults

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:
        s["lead_alpha"] = number_setting("lead_alpha", s["lead_alpha"], minimum=0.0)
        s["lead_wrong_reward"] = number_setting("lead_wrong_reward", s["lead_wrong_reward"])
        s["lead_eps"] = number_setting("lead_eps", s["lead_eps"], minimum=0.0)
        if s["lead_eps"] <= 0:
            raise bad_setting("lead_eps", f"must be > 0, got {s['lead_eps']!r}")
        return s

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        keys = group_keys(n, prompts, columns)
        s = self.settings
        out: list[float | None] = [None if c is None else (None if c else s["lead_wrong_reward"]) for c in correct]
        for rows in _groups(keys, [i for i in range(n) if correct[i]]).values():
            mu = sum(lengths[i] for i in rows) / len(rows)
            sigma = math.sqrt(sum((lengths[i] - mu) ** 2 for i in rows) / len(rows))
            for i in rows:
                out[i] = math.exp(-s["lead_alpha"] * (lengths[i] - mu) / (sigma + s["lead_eps"]))
        return out


@register_reward("dler_truncation")
class DLERTruncationReward(_EfficiencyReward):
    """``dler_truncation``: 1 when correct within the length budget, else 0 (DLER's truncation penalty)."""

    name = "dler_truncation"
    defaults = {"dler_length_cap": None}
    method_settings = defaults

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:
        self._opt_int(s, "dler_length_cap")
        return s

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        lengths = self._lengths(completion_ids, n)
        correct = self._correct(completions, columns)
        cap = self.settings["dler_length_cap"]
        out: list[float | None] = []
        for i in range(n):
            if correct[i] is None:
                out.append(None)
            elif self._truncated(completion_ids[i]) or (cap is not None and lengths[i] > cap):
                self._count("dler/over_budget")
                out.append(0.0)
            else:
                out.append(1.0 if correct[i] else 0.0)
        return out
