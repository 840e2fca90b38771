"""The DECS reward's settings (``decs_*`` keys of ``method_kwargs``): :class:`DECSRewardSettings`.

:func:`parse_settings` turns the keys into the chunking options, the judge kind and the endpoint
judge's keyword arguments, with one clear error naming the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rewards.decs.chunking import DEFAULT_SPLIT_WORDS
from rewards.decs.judges import DEFAULT_JUDGE_MODEL, DEFAULT_JUDGE_TEMPLATE, JUDGE_URL_ENV
from rewards.settings import MethodSettings, setting

__all__ = ["DECSRewardSettings", "SETTING_KEYS", "parse_settings"]


def _split_words(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [w.strip() for w in v.split(",") if w.strip()]
    if not isinstance(v, (list, tuple)) or not all(isinstance(w, str) and w.strip() and " " not in w.strip() for w in v):
        raise ValueError(f"must be a list of single words (or a comma-separated string), got {v!r}")
    return tuple(w.strip() for w in v)


def _url(v: Any) -> str | None:
    if v is not None and (not isinstance(v, str) or not v.startswith(("http://", "https://"))):
        raise ValueError(f"must be an http(s) URL, got {v!r}")
    return v


def _template(v: Any) -> str:
    if not isinstance(v, str) or "{segment}" not in v:
        raise ValueError(f"must be a string containing the {{segment}} placeholder, got {v!r}")
    return v


@dataclass(frozen=True)
class DECSRewardSettings(MethodSettings):
    """The ``decs_redundancy`` reward's settings (the judge's and the chunking's)."""

    split_words: tuple[str, ...] = setting(
        "decs_split_words", DEFAULT_SPLIT_WORDS, "words that start a new reasoning chunk: a list of single words "
        "or a comma-separated string", parse=_split_words)
    split_inline: bool = setting("decs_split_inline", True, "also split at a split word inside a line, after . ! or ?")
    judge: str = setting("decs_judge", "rule", "the NRP judge", choices=("rule", "endpoint"))
    judge_url: str | None = setting(
        "decs_judge_url", None, f"the endpoint judge's http(s) URL (null: ${JUDGE_URL_ENV})", parse=_url)
    judge_model: str = setting("decs_judge_model", DEFAULT_JUDGE_MODEL, "the endpoint judge's model name")
    judge_template: str = setting(
        "decs_judge_template", DEFAULT_JUDGE_TEMPLATE, "the endpoint judge's prompt, with {problem}, {segment} and "
        "{ground_truth}", parse=_template)
    judge_timeout: float = setting("decs_judge_timeout", 30.0, "seconds per judge request", exclusive_minimum=0.0)
    judge_retries: int = setting("decs_judge_retries", 2, "retries of a failed judge request", minimum=0, whole_float=True)
    judge_concurrency: int = setting("decs_judge_concurrency", 16, "judge requests in flight", minimum=1, whole_float=True)
    judge_max_segment_chars: int = setting("decs_judge_max_segment_chars", 20_000,
                                           "longer segments are not sent (they count as no)", minimum=1, whole_float=True)
    judge_fallback: str = setting("decs_judge_fallback", "rule", "the verdict when a request fails: the rule judge's, or no penalty",
                                  choices=("rule", "no_penalty"))
    judge_breaker_failures: int = setting(
        "decs_judge_breaker_failures", 5, "consecutive failed requests that open the judge's circuit breaker (0: none)",
        minimum=0, whole_float=True)
    judge_breaker_cooldown: float = setting(
        "decs_judge_breaker_cooldown", 30.0, "seconds before a probe of an open breaker (doubles after each failed "
        "probe, up to 10x)", exclusive_minimum=0.0)

    def resolved_url(self) -> str | None:
        """``decs_judge_url``, else ``$PARSIMONY_DECS_JUDGE_URL`` for the endpoint judge."""
        return self.judge_url or (os.environ.get(JUDGE_URL_ENV) if self.judge == "endpoint" else None)

    def check(self) -> None:
        url = self.resolved_url()
        if self.judge == "endpoint" and (not url or not url.startswith(("http://", "https://"))):
            raise self.bad("decs_judge_url", f"must be an http(s) URL (or set ${JUDGE_URL_ENV}) for decs_judge='endpoint', "
                           f"got {url!r}")

    def endpoint_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`rewards.decs.judges.EndpointJudge` (but its rule judge)."""
        return dict(url=self.resolved_url(), model=self.judge_model, template=self.judge_template,
                    timeout=self.judge_timeout, retries=self.judge_retries, concurrency=self.judge_concurrency,
                    max_segment_chars=self.judge_max_segment_chars, fallback=self.judge_fallback,
                    breaker_failures=self.judge_breaker_failures, breaker_cooldown=self.judge_breaker_cooldown)


SETTING_KEYS = DECSRewardSettings.keys()


def parse_settings(kw: Mapping[str, Any], split_words: Sequence[str], split_inline: bool
                   ) -> tuple[tuple[str, ...], bool, str, dict]:
    """Validate ``decs_*`` settings -> (split words, split inline, judge kind, EndpointJudge kwargs).
    ``split_words`` / ``split_inline``: the values when ``kw`` does not set them (the reward's own)."""
    unknown = sorted(set(kw) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(f"unknown DECS reward settings {unknown}; known: {list(SETTING_KEYS)}")
    s = DECSRewardSettings.from_kwargs(kw)
    words = s.split_words if "decs_split_words" in kw else tuple(split_words)
    inline = s.split_inline if "decs_split_inline" in kw else split_inline
    return words, inline, s.judge, s.endpoint_kwargs()
