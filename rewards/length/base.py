"""The length rewards' shared machinery: settings resolution (``method_kwargs`` through ``setup``, or
constructor keywords, which win), grading against the row's ground truth, lengths and metrics."""

from __future__ import annotations

import math
import threading
from typing import Any, Mapping, Sequence

from rewards.hooks import RewardHooks
from rewards.math import completion_text, get_default_grader, ground_truths_from_columns

__all__ = ["GradedLengthReward", "bad_setting", "bool_setting", "number_setting", "positive_int_setting"]


def bad_setting(key: str, message: str) -> ValueError:
    return ValueError(f"method_kwargs.{key}: {message}")


def number_setting(key: str, v: Any, minimum: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise bad_setting(key, f"must be a finite number, got {v!r}")
    if minimum is not None and float(v) < minimum:
        raise bad_setting(key, f"must be >= {minimum}, got {v!r}")
    return float(v)


def positive_int_setting(key: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise bad_setting(key, f"must be a positive integer, got {v!r}")
    return v


def bool_setting(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise bad_setting(key, f"must be true or false, got {v!r}")
    return v


class GradedLengthReward(RewardHooks):
    """Shared machinery: settings resolution, grading, lengths, metrics."""

    name = "length"
    defaults: dict[str, Any] = {}

    def __init__(self, grader: Any = None, name: str | None = None, **settings: Any) -> None:
        self.__name__ = name or self.name
        self._grader = grader
        unknown = sorted(set(settings) - set(self.defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown setting(s) {unknown}; known: {sorted(self.defaults)}")
        self._explicit = {k: v for k, v in settings.items() if v is not None}
        self._from_args: dict[str, Any] = {}
        self.max_completion_length: int | None = None
        self.eos_token_ids: set[int] = set()
        self._mlock = threading.Lock()
        self._metrics: dict[str, float] = {}
        self.settings = self._validate(self._merged())

    # --- settings --------------------------------------------------------------------------------
    def _merged(self) -> dict[str, Any]:
        return {**self.defaults, **self._from_args, **self._explicit}

    def _validate(self, s: dict[str, Any]) -> dict[str, Any]:  # overridden
        return s

    @classmethod
    def validate_method_settings(cls, method_kwargs: Any) -> None:
        """Config-time check of this reward's keys in ``method_kwargs`` (the registry reads
        ``method_settings`` = ``defaults`` for the known keys)."""
        kw = dict(method_kwargs or {})
        cls()._validate({**cls.defaults, **{k: kw[k] for k in cls.defaults if k in kw}})

    def setup(self, tokenizer: Any = None, args: Any = None) -> None:
        kwargs = getattr(args, "method_kwargs", None) or {}
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"method_kwargs: must be a mapping, got {type(kwargs).__name__}")
        self._from_args = {k: kwargs[k] for k in self.defaults if k in kwargs}
        mcl = getattr(args, "max_completion_length", None)
        self.max_completion_length = mcl if isinstance(mcl, int) and not isinstance(mcl, bool) and mcl > 0 else None
        eos = getattr(tokenizer, "eos_token_id", None)
        self.eos_token_ids = set(eos if isinstance(eos, (list, tuple, set)) else ([] if eos is None else [eos]))
        self.settings = self._validate(self._merged())

    # --- helpers ----------------------------------------------------------------------------------
    @property
    def grader(self) -> Any:
        if self._grader is None:
            self._grader = get_default_grader("math")
        return self._grader

    def _correct(self, completions: Sequence[Any], columns: Mapping[str, Any]) -> list[bool | None]:
        """Per completion: True / False, or None when the row has no ground truth."""
        n = len(completions)
        gts = ground_truths_from_columns(n, dict(columns))
        rows = [i for i in range(n) if gts[i] is not None]
        out: list[bool | None] = [None] * n
        if rows:
            results = self.grader.grade([completion_text(completions[i]) for i in rows], [gts[i] for i in rows])
            for i, r in zip(rows, results):
                out[i] = bool(r.correct)
        return out

    def _lengths(self, completion_ids: Sequence[Sequence[int]] | None, n: int) -> list[int]:
        if completion_ids is None or len(completion_ids) != n:
            got = "None" if completion_ids is None else f"{len(completion_ids)} entries"
            raise ValueError(f"reward {self.__name__!r} needs completion_ids (one per completion), got {got}")
        return [len(ids) for ids in completion_ids]

    def _count(self, key: str, k: int = 1) -> None:
        if k:
            with self._mlock:
                self._metrics[key] = self._metrics.get(key, 0.0) + k

    def pop_metrics(self) -> dict[str, float]:
        with self._mlock:
            out, self._metrics = self._metrics, {}
        return out
