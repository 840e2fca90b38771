"""The DECS reward's settings (``decs_*`` keys of ``method_kwargs``): :class:`DECSRewardSettings`.

:func:`parse_settings` turns the keys into the chunking options, the judge kind and the endpoint
judge's keyword arguments, with one clear error naming the key.

The endpoint judge speaks the released detector's language by default (``decs_judge_prompt: paper``:
its prompt, 5 new tokens, "yes" anywhere in the reply, prompts over 17,990 tokens not sent);
``decs_judge_prompt: parsimony`` is our prompt (128 tokens, the last ``\\boxed{yes|no}``). The
decoding settings left at null take the chosen prompt's values (:mod:`rewards.decs.judge_prompts`).
``decs_chunking: auto`` (default) chunks at line starts for the rule judge and by the paper code's
rules for the endpoint judge (:mod:`rewards.decs.paper_chunking`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from rewards.decs.chunking import DEFAULT_SPLIT_WORDS, THINK_END
from rewards.decs.judges import DEFAULT_JUDGE_MODEL, DEFAULT_JUDGE_PROMPT, JUDGE_PROMPTS, JUDGE_URL_ENV, VERDICTS
from rewards.decs.nrp import CHUNKINGS
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


def _template(v: Any) -> str | None:
    if v is not None and (not isinstance(v, str) or "{segment}" not in v):
        raise ValueError(f"must be null or a string containing the {{segment}} placeholder, got {v!r}")
    return v


def _by_prompt(what: str) -> str:
    p, o = JUDGE_PROMPTS["paper"], JUDGE_PROMPTS["parsimony"]
    return f"(null: the prompt's, paper {getattr(p, what)!r}, parsimony {getattr(o, what)!r})"


@dataclass(frozen=True)
class DECSRewardSettings(MethodSettings):
    """The ``decs_redundancy`` reward's settings (the judge's and the chunking's)."""

    split_words: tuple[str, ...] = setting(
        "decs_split_words", DEFAULT_SPLIT_WORDS, "words that start a new reasoning chunk: a list of single words "
        "or a comma-separated string", parse=_split_words)
    split_inline: bool = setting("decs_split_inline", True, "lines chunking: also split at a split word inside a "
                                 "line, after . ! or ?")
    chunking: str = setting("decs_chunking", "auto", "how reasoning is cut into chunks: lines (split words at line "
                            "starts), paper (the released code's: split words anywhere, on tokens), auto (lines for "
                            "the rule judge, paper for the endpoint judge)", choices=CHUNKINGS)
    think_end: str = setting("decs_think_end", THINK_END, "the end-of-reasoning marker: what follows it is in no chunk")
    judge: str = setting("decs_judge", "rule", "the NRP judge", choices=("rule", "endpoint"))
    judge_url: str | None = setting(
        "decs_judge_url", None, f"the endpoint judge's http(s) URL (null: ${JUDGE_URL_ENV})", parse=_url)
    judge_model: str = setting("decs_judge_model", DEFAULT_JUDGE_MODEL, "the endpoint judge's model name")
    judge_prompt: str = setting(
        "decs_judge_prompt", DEFAULT_JUDGE_PROMPT, "the endpoint judge's prompt and decoding: paper (the released "
        "detector's) or parsimony (ours)", choices=tuple(JUDGE_PROMPTS))
    judge_template: str | None = setting(
        "decs_judge_template", None, "the endpoint judge's prompt text, with {problem}, {segment} and {ground_truth} "
        "(null: decs_judge_prompt's)", parse=_template)
    judge_max_tokens: int | None = setting("decs_judge_max_tokens", None, "new tokens per judge reply "
                                           + _by_prompt("max_tokens"), minimum=1, whole_float=True)
    judge_verdict: str | None = setting("decs_judge_verdict", None, "how a reply is read: contains_yes (yes anywhere) "
                                        "or boxed (the last \\boxed{yes|no}) " + _by_prompt("verdict"),
                                        choices=tuple(VERDICTS))
    judge_max_prompt_tokens: int | None = setting(
        "decs_judge_max_prompt_tokens", None, "longer judge prompts (tokens) are not sent and count as no; 0: no limit "
        + _by_prompt("max_prompt_tokens"), minimum=0, whole_float=True)
    judge_tokenizer: str | None = setting("decs_judge_tokenizer", None, "the tokenizer counting judge prompt tokens, a "
                                          "path or hub id (null: the policy's)")
    judge_timeout: float = setting("decs_judge_timeout", 30.0, "seconds per judge request", exclusive_minimum=0.0)
    judge_retries: int = setting("decs_judge_retries", 2, "retries of a failed judge request", minimum=0, whole_float=True)
    judge_concurrency: int = setting("decs_judge_concurrency", 16, "judge requests in flight", minimum=1, whole_float=True)
    judge_max_segment_chars: int | None = setting(
        "decs_judge_max_segment_chars", None, "longer segments (characters) are not sent and count as no; 0: no limit "
        + _by_prompt("max_segment_chars"), minimum=0, whole_float=True)
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
        # a URL given must be http(s); a missing one is the real run's concern (require_endpoint, run before the
        # model loads), so that `--dry_run` resolves a paper-scale recipe without a live judge
        url = self.resolved_url()
        if self.judge == "endpoint" and url and not url.startswith(("http://", "https://")):
            raise self.bad("decs_judge_url", f"must be an http(s) URL for decs_judge='endpoint', got {url!r}")

    def require_endpoint(self) -> None:
        """The endpoint judge needs its URL: ``decs_judge_url`` or ``$PARSIMONY_DECS_JUDGE_URL``."""
        if self.judge == "endpoint" and not self.resolved_url():
            raise self.bad("decs_judge_url", f"decs_judge='endpoint' needs the judge's http(s) URL: set "
                           f"decs_judge_url or ${JUDGE_URL_ENV}")

    def endpoint_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`rewards.decs.judges.EndpointJudge` (but its rule judge)."""
        return dict(url=self.resolved_url(), model=self.judge_model, template=self.judge_template,
                    prompt=self.judge_prompt, max_tokens=self.judge_max_tokens, verdict=self.judge_verdict,
                    max_prompt_tokens=self.judge_max_prompt_tokens, tokenizer=self.judge_tokenizer,
                    timeout=self.judge_timeout, retries=self.judge_retries, concurrency=self.judge_concurrency,
                    max_segment_chars=self.judge_max_segment_chars, fallback=self.judge_fallback,
                    breaker_failures=self.judge_breaker_failures, breaker_cooldown=self.judge_breaker_cooldown)


SETTING_KEYS = DECSRewardSettings.keys()


# the chunking settings: method_kwargs key -> the reward's attribute (and DECSRewardSettings field)
CHUNK_KEYS = {"decs_split_words": "split_words", "decs_split_inline": "split_inline", "decs_chunking": "chunking",
              "decs_think_end": "think_end"}


def parse_settings(kw: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[dict[str, Any], str, dict]:
    """Validate ``decs_*`` settings -> (chunking options ``{split_words, split_inline, chunking,
    think_end}``, judge kind, EndpointJudge kwargs). ``current``: the chunking options' values when
    ``kw`` does not set them (the reward's own)."""
    unknown = sorted(set(kw) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(f"unknown DECS reward settings {unknown}; known: {list(SETTING_KEYS)}")
    s = DECSRewardSettings.from_kwargs(kw)
    s.require_endpoint()  # the reward is being set up for a run: the endpoint judge needs its URL now
    chunk = {attr: getattr(s, attr) if key in kw else current[attr] for key, attr in CHUNK_KEYS.items()}
    return chunk, s.judge, s.endpoint_kwargs()
