"""Format rewards (pure regex, no worker pool), TRL contract:
``f(prompts, completions, completion_ids=None, **columns) -> list[float]``.

* :func:`format_reward`: 1.0 when the completion is exactly one ``<think>...</think>``
  section at the start (leading whitespace allowed) followed by a non-empty answer that
  contains a non-empty ``\\boxed{...}``.
* :func:`think_format_reward`: the same without the box requirement (any non-empty answer).

If the prompt is a string that already ends with ``<think>`` (chat templates that open the
reasoning block themselves), the completion is read as if it started with ``<think>``.
"""

from __future__ import annotations

from typing import Any

from rewards.math import completion_text, extract_boxed

__all__ = ["format_reward", "think_format_reward", "check_format"]

_OPEN, _CLOSE = "<think>", "</think>"


def _prompt_opens_think(prompt: Any) -> bool:
    return isinstance(prompt, str) and prompt.rstrip().endswith(_OPEN)


def check_format(text: str, require_box: bool = True, think_opened: bool = False) -> bool:
    """True if ``text`` is ``<think>reasoning</think>answer`` as described in the module doc."""
    if think_opened and _OPEN not in text:
        text = _OPEN + text
    body = text.lstrip()
    if not body.startswith(_OPEN) or text.count(_OPEN) != 1 or text.count(_CLOSE) != 1:
        return False
    thought, _, answer = body[len(_OPEN) :].partition(_CLOSE)
    if not thought.strip() or not answer.strip():
        return False
    if require_box:
        boxed = extract_boxed(answer)
        return bool(boxed and boxed.strip())
    return True


def _score(prompts, completions, require_box: bool) -> list[float]:
    completions = list(completions or [])
    prompts = list(prompts) if prompts is not None else [None] * len(completions)
    if len(prompts) != len(completions):
        prompts = [None] * len(completions)
    return [
        1.0 if check_format(completion_text(c), require_box, _prompt_opens_think(p)) else 0.0
        for p, c in zip(prompts, completions)
    ]


def format_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """1.0 for ``<think>reasoning</think> answer with \\boxed{...}``, else 0.0."""
    return _score(prompts, completions, require_box=True)


def think_format_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
    """1.0 for ``<think>reasoning</think> non-empty answer``, else 0.0."""
    return _score(prompts, completions, require_box=False)
