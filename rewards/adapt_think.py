"""AdaptThink's reward (Zhang et al., arXiv 2505.13417): ``r(x, y) - R_ref(x) + delta * 1[y is NoThinking]``.

AdaptThink teaches a reasoning model to skip thinking where thinking does not pay: maximise the share of
*NoThinking* completions (the first token closes the thinking block: the completion starts with ``</think>``)
subject to accuracy no lower than the reference (start) model's. The constraint's penalty form, divided by its
multiplier, gives the reward of one completion ``y`` of prompt ``x``::

    r_i = c_i - R_ref(x) + delta * 1[y_i starts with </think>]

``c_i`` is 1 for a correct answer, else 0 (with ``adapt_think_require_think_end``, the authors' check, a completion
without exactly one ``</think>`` is wrong); ``R_ref(x)`` is the reference model's mean accuracy on ``x``. The reward
is already centred by ``R_ref``, so the ``adapt_think`` estimator uses it as the advantage as it is. A NoThinking
completion wins over a Thinking one of the same prompt when its accuracy is at most ``delta`` lower.

``R_ref`` comes from ``adapt_think_ref_accuracy``:

- a JSONL file with one ``{"prompt": <text>, "ref_accuracy": <mean accuracy>}`` per training prompt, keyed by
  :func:`prompt_key` (``parsimony adapt-think-ref`` samples the start model K times per prompt and writes it;
  the paper's way, computed before training);
- ``first_seen``: the accuracy of the group's Thinking completions the first time a prompt is scored, frozen
  afterwards (kept in the checkpoint). No extra sampling, but a prompt first seen late in training is measured
  on the trained policy, not the start model: an approximation, documented as a difference.

Registered as ``adapt_think``; the sampler and the preset are in ``rl/methods/adapt_think.py``;
docs/efficiency-methods.md has the source and the differences.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rewards.length.base import GradedLengthReward, group_rows
from rewards.math import completion_text
from rewards.registry import register_reward
from rewards.settings import MethodSettings, setting

__all__ = ["AdaptThinkReward", "AdaptThinkSettings", "FIRST_SEEN", "is_nothinking", "prompt_key",
           "read_reference_accuracies"]

FIRST_SEEN = "first_seen"
STATE_VERSION = 1


def _ref_source(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    raise ValueError(f"must be a JSONL path, '{FIRST_SEEN}' or null, got {value!r}")


@dataclass(frozen=True)
class AdaptThinkSettings(MethodSettings):
    delta: float = setting("adapt_think_delta", 0.05, "delta: the bonus of a NoThinking completion (the paper's 0.05)",
                           minimum=0.0)
    ref_accuracy: Any = setting("adapt_think_ref_accuracy", None, "R_ref(x): a JSONL of the start model's accuracy per "
                                "prompt (`parsimony adapt-think-ref`; the paper's), or 'first_seen' (the group's "
                                "Thinking accuracy when a prompt is first scored: an approximation); null: not set, "
                                "the trainer refuses to start", parse=_ref_source)
    think_end: str = setting("adapt_think_think_end", "</think>", "the end-of-thinking marker: a completion that starts "
                             "with it is NoThinking")
    require_think_end: bool = setting("adapt_think_require_think_end", True, "a completion without exactly one "
                                      "end-of-thinking marker counts as wrong (the authors' reward)")


def prompt_key(prompt: Any) -> str:
    """What ``R_ref`` is keyed by: a string prompt as it is; chat messages: their contents joined by blank lines."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Mapping):
        prompt = [prompt]
    if isinstance(prompt, Sequence):
        return "\n\n".join(str(m.get("content", "")) if isinstance(m, Mapping) else str(m) for m in prompt)
    return str(prompt)


def is_nothinking(text: str, think_end: str = "</think>") -> bool:
    """Whether a completion skips thinking: its first token (after white space) closes the thinking block."""
    return text.lstrip().startswith(think_end)


def read_reference_accuracies(path: str | Path) -> dict[str, float]:
    """``{prompt: ref_accuracy}`` of a JSONL file of ``{"prompt": ..., "ref_accuracy": ...}`` lines."""
    where = "method_kwargs.adapt_think_ref_accuracy"
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{where}: {p} does not exist (write it with `parsimony adapt-think-ref`, or use '{FIRST_SEEN}')")
    out: dict[str, float] = {}
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key, acc = prompt_key(rec["prompt"]), rec["ref_accuracy"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{where}: {p} line {n}: not a {{\"prompt\", \"ref_accuracy\"}} record ({e})") from None
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0.0 <= acc <= 1.0:
            raise ValueError(f"{where}: {p} line {n}: ref_accuracy must be a number in [0, 1], got {acc!r}")
        if key in out and out[key] != float(acc):
            raise ValueError(f"{where}: {p} line {n}: a second, different ref_accuracy for prompt {key[:60]!r}")
        out[key] = float(acc)
    if not out:
        raise ValueError(f"{where}: {p} holds no record")
    return out


@register_reward("adapt_think")
class AdaptThinkReward(GradedLengthReward):
    """``adapt_think``: ``correct - R_ref(x) + delta * NoThinking`` (see the module docstring)."""

    name = "adapt_think"
    method_settings = AdaptThinkSettings

    def __init__(self, grader: Any = None, name: str | None = None, *, delta: float | None = None,
                 ref_accuracy: str | None = None, think_end: str | None = None,
                 require_think_end: bool | None = None) -> None:
        super().__init__(grader, name, adapt_think_delta=delta, adapt_think_ref_accuracy=ref_accuracy,
                         adapt_think_think_end=think_end, adapt_think_require_think_end=require_think_end)
        self.table: dict[str, float] | None = None  # R_ref read from the file
        self.first_seen: dict[str, float] = {}  # R_ref measured at the first sight of a prompt (first_seen)

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        super().setup(tokenizer=tokenizer, args=args)
        self.table, self.first_seen = None, {}
        self._reference_table()  # a missing or bad setting fails when the trainer is built, not at the first step

    def _reference_table(self) -> dict[str, float] | None:
        source = self.settings["adapt_think_ref_accuracy"]
        if source is None:
            raise ValueError("method_kwargs.adapt_think_ref_accuracy: not set: AdaptThink needs R_ref(x), the start "
                             "model's accuracy per prompt: a JSONL file (`parsimony adapt-think-ref`) or "
                             f"'{FIRST_SEEN}' (the group's own Thinking accuracy when a prompt is first scored)")
        if source == FIRST_SEEN:
            return None
        if self.table is None:
            self.table = read_reference_accuracies(source)
        return self.table

    def correctness(self, completions: Sequence[Any], texts: Sequence[str], columns: Mapping[str, Any]) -> list[bool | None]:
        """Graded correctness (None: no ground truth); with ``adapt_think_require_think_end``, a completion
        without exactly one end-of-thinking marker is wrong."""
        correct = self._correct(completions, columns)
        if self.settings["adapt_think_require_think_end"]:
            end = self.settings["adapt_think_think_end"]
            bad = [i for i, c in enumerate(correct) if c is not None and texts[i].count(end) != 1]
            self._count("adapt_think/format_errors", len(bad))
            for i in bad:
                correct[i] = False
        return correct

    def reference(self, keys: list[str], correct: list[bool | None], nothink: list[bool]) -> list[float | None]:
        """``R_ref`` per completion (None where there is no ground truth)."""
        table = self._reference_table()
        if table is not None:
            missing = sorted({k for k, c in zip(keys, correct) if c is not None and k not in table})
            if missing:
                raise ValueError(f"method_kwargs.adapt_think_ref_accuracy: no reference accuracy for {len(missing)} "
                                 f"prompt(s) in {self.settings['adapt_think_ref_accuracy']}, e.g. {missing[0][:80]!r}")
            return [table[k] if c is not None else None for k, c in zip(keys, correct)]
        for key, rows in group_rows(keys, [i for i, c in enumerate(correct) if c is not None]).items():
            if key not in self.first_seen:  # the Thinking completions' accuracy (all of them when none thinks)
                thinking = [i for i in rows if not nothink[i]] or rows
                self.first_seen[key] = sum(bool(correct[i]) for i in thinking) / len(thinking)
        return [self.first_seen[k] if c is not None else None for k, c in zip(keys, correct)]

    def __call__(self, prompts=None, completions=None, completion_ids=None, **columns) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        texts = [completion_text(c) for c in completions]
        keys = [prompt_key(p) for p in (list(prompts) if prompts is not None else [""] * n)]
        correct = self.correctness(completions, texts, columns)
        nothink = [is_nothinking(t, self.settings["adapt_think_think_end"]) for t in texts]
        ref = self.reference(keys, correct, nothink)
        delta = self.settings["adapt_think_delta"]
        out: list[float | None] = [None] * n
        for i in range(n):
            if correct[i] is not None:
                out[i] = float(bool(correct[i])) - float(ref[i]) + (delta if nothink[i] else 0.0)
        self._log(correct, nothink, ref)
        return out

    def _log(self, correct: list, nothink: list[bool], ref: list) -> None:
        graded = [i for i, c in enumerate(correct) if c is not None]
        if not graded:
            return
        metrics = {"adapt_think/nothink_frac": sum(nothink[i] for i in graded) / len(graded),
                   "adapt_think/ref_accuracy": sum(ref[i] for i in graded) / len(graded)}
        for mode, rows in (("nothink", [i for i in graded if nothink[i]]), ("think", [i for i in graded if not nothink[i]])):
            if rows:
                metrics[f"adapt_think/{mode}_accuracy"] = sum(bool(correct[i]) for i in rows) / len(rows)
        with self._mlock:
            self._metrics.update(metrics)

    # --- resume (first_seen: the reference accuracies measured so far) ------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "first_seen": dict(self.first_seen)} if self.first_seen else {}

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        if state.get("version", STATE_VERSION) != STATE_VERSION:
            raise ValueError(f"adapt_think state version {state.get('version')!r} is not {STATE_VERSION}")
        self.first_seen = {str(k): float(v) for k, v in state["first_seen"].items() if math.isfinite(float(v))}
