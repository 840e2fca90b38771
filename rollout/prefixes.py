"""Completions that start with a forced prefix: some of a prompt's ``n`` completions begin with given tokens.

A method that must see a behaviour the policy rarely samples (AdaptThink: answering without thinking, the first
token closing the thinking block) asks the rollout for it: ``count`` of each prompt's completions start with
``text``. The engine generates from the prompt followed by the prefix's tokens, and the prefix is then moved into
the completion, so the policy is trained on it like on any token it generated (its completion mask is 1) and
learns the choice the prefix makes.

Those tokens were chosen by the rollout, not sampled from the policy: the rollout's *proposal* picked this prefix
with probability ``exp(logprob)`` (e.g. 0.5 for each of two halves of a group). Each completion records it in
``Trajectory.forced_logprobs``: ``logprob`` at the first prefix token, 0 at the others (once the prefix is chosen
its tokens are certain), NaN at the tokens the engine sampled. The policy update takes that value as the old
(behaviour) log-probability of those tokens, so its ratio ``pi_theta / pi_old`` is the importance weight of
``pi_theta`` against the proposal there (``rl/policy_update.py``). An engine that returns log-probs gets the same
values at the forced tokens.

The trainer offers this to a batch assembler as ``rollout(indices, prefixes=[CompletionPrefix(...), ...])``
(single-turn rollouts only); this module imports nothing of ``rl``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rollout.types import SamplingConfig, Trajectory

__all__ = ["CompletionPrefix", "generate_with_prefixes", "prefix_token_ids"]

GenerateFn = Callable[[Sequence[Sequence[int]], int, SamplingConfig], "list[list[Trajectory]]"]


@dataclass(frozen=True)
class CompletionPrefix:
    """``count`` completions of each prompt start with ``text``.

    ``logprob``: the log-probability with which the rollout's proposal picks this prefix (recorded on its first
    token). ``max_new_tokens``: the budget of these completions, prefix included (None: the sampling's).
    ``name``: recorded in each completion's ``meta["completion_prefix"]`` (default: ``text``)."""

    text: str
    count: int
    logprob: float
    max_new_tokens: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise ValueError(f"CompletionPrefix.text: must be a non-empty string, got {self.text!r}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"CompletionPrefix.count: must be an integer >= 1, got {self.count!r}")
        if not isinstance(self.logprob, (int, float)) or not math.isfinite(self.logprob) or self.logprob > 0:
            raise ValueError(f"CompletionPrefix.logprob: must be a finite log-probability (<= 0), got {self.logprob!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"CompletionPrefix.max_new_tokens: must be >= 1 or None, got {self.max_new_tokens!r}")


def prefix_token_ids(tokenizer: Any, text: str) -> list[int]:
    """The prefix's token ids (no special tokens added)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"completion prefix {text!r} encodes to no token")
    return ids


def generate_with_prefixes(generate: GenerateFn, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], n: int,
                           sampling: SamplingConfig, prefixes: Sequence[CompletionPrefix]) -> list[list[Trajectory]]:
    """``n`` completions per prompt, ``prefix.count`` of them starting with each prefix (in the order given).

    ``generate(prompt_ids, k, sampling)`` is the engine's call (one per prefix, the prompts followed by the
    prefix's tokens). The counts must add up to ``n``. Returns the groups as ``generate`` does, each completion
    with the prefix at its start, its ``forced_logprobs`` and ``meta["completion_prefix"]``."""
    total = sum(p.count for p in prefixes)
    if not prefixes or total != n:
        raise ValueError(f"completion prefixes: their counts {[p.count for p in prefixes]} must add up to the "
                         f"group size {n}")
    groups: list[list[Trajectory]] = [[] for _ in prompt_ids]
    for prefix in prefixes:
        ids = prefix_token_ids(tokenizer, prefix.text)
        budget = (prefix.max_new_tokens or sampling.max_new_tokens) - len(ids)
        if budget < 1:
            raise ValueError(f"completion prefix {prefix.text!r}: {len(ids)} token(s) leave no room in a budget of "
                             f"{prefix.max_new_tokens or sampling.max_new_tokens}")
        out = generate([list(p) + ids for p in prompt_ids], prefix.count, dataclasses.replace(sampling, max_new_tokens=budget))
        for group, prompt, trajectories in zip(groups, prompt_ids, out):
            group.extend(with_prefix(t, list(prompt), ids, prefix, tokenizer) for t in trajectories)
    return groups


def with_prefix(t: Trajectory, prompt: list[int], ids: list[int], prefix: CompletionPrefix, tokenizer: Any) -> Trajectory:
    """``t`` (generated after ``prompt + ids``) as a completion of ``prompt`` that starts with ``ids``."""
    forced = [float(prefix.logprob)] + [0.0] * (len(ids) - 1)
    sampled = [math.nan] * len(t.completion_ids) if t.forced_logprobs is None else list(t.forced_logprobs)
    t.prompt_ids = prompt
    t.completion_ids = ids + list(t.completion_ids)
    t.completion_mask = [1] * len(ids) + list(t.completion_mask or [])
    t.logprobs = None if t.logprobs is None else forced + list(t.logprobs)
    t.forced_logprobs = forced + sampled
    t.text = tokenizer.decode(t.completion_ids, skip_special_tokens=True)
    t.meta["completion_prefix"] = prefix.name or prefix.text
    return t
