"""The difficulty scorer interface of DeReason's split: the 1-5 scale, :class:`Score` (what a
scorer says about one row), :class:`DifficultyScorer` (what every scorer implements) and how a
row's problem is read (:func:`row_prompt`, :func:`prompt_text`). The built-in scorers are
:mod:`curriculum.dereason.scorers`', the scoring of a dataset :mod:`curriculum.dereason.difficulty`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

__all__ = ["MAX_SCORE", "MIN_SCORE", "DifficultyScorer", "Score", "ScoreParseError", "prompt_text", "row_prompt"]

MIN_SCORE, MAX_SCORE = 1, 5


class ScoreParseError(ValueError):
    """A judge answer holds no usable 1-5 score."""


@dataclass
class Score:
    difficulty: int | None
    raw: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.difficulty is not None


def prompt_text(prompt: Any) -> str:
    """The problem as plain text: a string, or the chat messages' contents (system left out)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        return "\n\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict) and m.get("role") != "system")
    raise ValueError(f"prompt has type {type(prompt).__name__}; expected chat messages or a string")


def row_prompt(row: dict) -> Any:
    """A row's problem: its ``prompt``, or an SFT conversation's messages before the first answer."""
    if "prompt" in row:
        return row["prompt"]
    if "messages" in row:  # an SFT conversation: the problem is everything before the first answer
        msgs = row["messages"]
        cut = next((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), len(msgs))
        return list(msgs[:cut])
    raise ValueError(f"row has neither 'prompt' nor 'messages' (fields: {sorted(row)})")


class DifficultyScorer:
    """One way of scoring rows. Subclasses set ``name`` and implement :meth:`score_many`."""

    name = "base"

    def settings(self) -> dict[str, Any]:
        """Everything that changes the score besides the row (part of the cache key)."""
        return {}

    def key_fields(self, row: dict) -> Any:
        """The part of a row the score depends on (part of the cache key)."""
        return row_prompt(row)

    def score_many(self, rows: Sequence[dict]) -> Iterator[tuple[int, Score]]:
        """Yield ``(position in rows, Score)`` as each row finishes, in any order. Exceptions for
        one row become that row's ``Score(error=...)``; only a broken setup may raise."""
        raise NotImplementedError

    def close(self) -> None:
        pass
