"""The DECS reward's settings (``decs_*`` keys of ``method_kwargs``): defaults and validation.

:func:`parse_settings` turns the keys into the chunking options, the judge kind and the
endpoint judge's keyword arguments, with one clear error naming the key.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from rewards.decs.chunking import DEFAULT_SPLIT_WORDS
from rewards.decs.judges import DEFAULT_JUDGE_MODEL, DEFAULT_JUDGE_TEMPLATE, JUDGE_URL_ENV

# the reward's ``method_kwargs`` keys, with their defaults
SETTINGS: dict[str, Any] = {
    "decs_split_words": list(DEFAULT_SPLIT_WORDS),
    "decs_split_inline": True,
    "decs_judge": "rule",
    "decs_judge_url": None,
    "decs_judge_model": DEFAULT_JUDGE_MODEL,
    "decs_judge_template": DEFAULT_JUDGE_TEMPLATE,
    "decs_judge_timeout": 30.0,
    "decs_judge_retries": 2,
    "decs_judge_concurrency": 16,
    "decs_judge_max_segment_chars": 20_000,
    "decs_judge_fallback": "rule",
    "decs_judge_breaker_failures": 5,
    "decs_judge_breaker_cooldown": 30.0,
}
SETTING_KEYS = tuple(SETTINGS)


def _bad(key: str, msg: str) -> ValueError:
    return ValueError(f"method_kwargs[{key!r}] {msg}")


def _num(kw: dict, key: str, default: float, minimum: float, integer: bool, strict: bool = False) -> float:
    v = kw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise _bad(key, f"must be {'an integer' if integer else 'a number'}, got {v!r}")
    if (v <= minimum) if strict else (v < minimum):
        raise _bad(key, f"must be {'>' if strict else '>='} {minimum}, got {v!r}")
    return int(v) if integer else float(v)


def _split_words_setting(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [w.strip() for w in v.split(",") if w.strip()]
    if not isinstance(v, (list, tuple)) or not all(isinstance(w, str) and w.strip() and " " not in w.strip() for w in v):
        raise _bad("decs_split_words", f"must be a list of single words (or a comma-separated string), got {v!r}")
    return tuple(w.strip() for w in v)


def parse_settings(kw: dict, split_words: Sequence[str], split_inline: bool) -> tuple[tuple[str, ...], bool, str, dict]:
    """Validate ``decs_*`` settings -> (split words, split inline, judge kind, EndpointJudge kwargs)."""
    unknown = sorted(set(kw) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(f"unknown DECS reward settings {unknown}; known: {list(SETTING_KEYS)}")
    split_words = _split_words_setting(kw["decs_split_words"]) if "decs_split_words" in kw else tuple(split_words)
    split_inline = kw.get("decs_split_inline", split_inline)
    if not isinstance(split_inline, bool):
        raise _bad("decs_split_inline", f"must be true or false, got {split_inline!r}")
    kind = kw.get("decs_judge", "rule")
    if kind not in ("rule", "endpoint"):
        raise _bad("decs_judge", f"must be 'rule' or 'endpoint', got {kind!r}")
    timeout = _num(kw, "decs_judge_timeout", 30.0, 0.0, False, strict=True)
    retries = _num(kw, "decs_judge_retries", 2, 0, True)
    concurrency = _num(kw, "decs_judge_concurrency", 16, 1, True)
    max_chars = _num(kw, "decs_judge_max_segment_chars", 20_000, 1, True)
    fallback = kw.get("decs_judge_fallback", "rule")
    if fallback not in ("rule", "no_penalty"):
        raise _bad("decs_judge_fallback", f"must be 'rule' or 'no_penalty', got {fallback!r}")
    breaker_failures = _num(kw, "decs_judge_breaker_failures", 5, 0, True)
    breaker_cooldown = _num(kw, "decs_judge_breaker_cooldown", 30.0, 0.0, False, strict=True)
    model = kw.get("decs_judge_model", DEFAULT_JUDGE_MODEL)
    if not isinstance(model, str) or not model:
        raise _bad("decs_judge_model", f"must be a non-empty string, got {model!r}")
    template = kw.get("decs_judge_template", DEFAULT_JUDGE_TEMPLATE)
    if not isinstance(template, str) or "{segment}" not in template:
        raise _bad("decs_judge_template", f"must be a string containing the {{segment}} placeholder, got {template!r}")
    url = kw.get("decs_judge_url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise _bad("decs_judge_url", f"must be an http(s) URL, got {url!r}")
    if kind == "endpoint":
        url = url or os.environ.get(JUDGE_URL_ENV)
        if not url or not url.startswith(("http://", "https://")):
            raise _bad("decs_judge_url", f"must be an http(s) URL (or set ${JUDGE_URL_ENV}) for decs_judge='endpoint', got {url!r}")
    endpoint = dict(url=url, model=model, template=template, timeout=timeout, retries=retries,
                    concurrency=concurrency, max_segment_chars=max_chars, fallback=fallback,
                    breaker_failures=breaker_failures, breaker_cooldown=breaker_cooldown)
    return split_words, split_inline, kind, endpoint
