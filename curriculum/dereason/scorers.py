"""The built-in difficulty scorers of DeReason's split, and what they read scores with:

* ``judge`` (:class:`JudgeScorer`): an OpenAI-compatible chat endpoint rates each problem with
  :data:`RUBRIC`; :func:`parse_score` reads its answer;
* ``column`` (:class:`ColumnScorer`): an existing field, rescaled to 1-5 when its range is another;
* ``pass_rate`` lives in ``rl`` (:class:`rl.eval.pass_rate.PassRateScorer`); its pass rate maps to
  a difficulty by :func:`difficulty_from_pass_rate`, here.

They implement :class:`curriculum.dereason.scorer_base.DifficultyScorer`;
:mod:`curriculum.dereason.difficulty` runs them over a dataset and re-exports these names.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Iterator, Sequence

from curriculum.dereason.scorer_base import (
    MAX_SCORE,
    MIN_SCORE,
    DifficultyScorer,
    Score,
    ScoreParseError,
    prompt_text,
    row_prompt,
)

__all__ = ["RUBRIC", "ColumnScorer", "JudgeScorer", "difficulty_from_pass_rate", "parse_score"]


# --- the rubric and the parser -------------------------------------------------------------------
RUBRIC = """You rate how much multi-step reasoning a problem needs, not how obscure its facts are.

Score the PROBLEM (do not solve it) on this 1-5 scale of reasoning intensity:
1 = recall or a single lookup: the answer is a known fact, a definition, or one direct operation.
2 = one routine step: apply one standard formula or procedure once; no planning.
3 = a few routine steps (about 2-4) in an obvious order; no case analysis or search.
4 = several dependent steps that need a plan: intermediate results feed later steps, or a choice
    of method, a case split, or checking of candidates is needed.
5 = long or creative reasoning: a non-obvious idea, a proof, a search over many possibilities,
    or many interacting constraints; a careful solver needs a long derivation.

Judge by the shortest correct solution a strong student would write. Difficulty of the
arithmetic alone (big numbers) is not reasoning; the number of dependent steps is.
Answer with one short sentence of justification, then a last line exactly of the form
Score: N
where N is 1, 2, 3, 4 or 5."""

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_LABELLED = re.compile(
    r"(?:score|rating|difficulty|intensity)\W{0,6}(?:is|of|=|:)?\W{0,6}(-?\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+))?",
    re.I,
)
_NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w.])")


def parse_score(text: Any) -> int:
    """A judge answer -> its 1-5 score, or :class:`ScoreParseError`.

    Read in this order: a JSON object with ``score`` (or ``difficulty``); the LAST labelled score
    (``Score: 4``, ``**Score**: 4``, ``rating = 4/5``, ``difficulty is 4``); otherwise the answer
    must hold exactly one number. ``<think>`` blocks are dropped first. A score outside 1-5, a
    non-integer one, a "N/M" with M != 5, or an answer with several unlabelled numbers is an error:
    nothing is guessed."""
    if not isinstance(text, str) or not text.strip():
        raise ScoreParseError("empty answer")
    body = _THINK.sub(" ", text).strip()
    if "<think>" in body.lower():  # an unterminated reasoning block: only the text before it counts
        body = body[: body.lower().index("<think>")]
    value: str | None = None
    stripped = body.strip().strip("`")
    if stripped.startswith("json"):
        stripped = stripped[4:]
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
            v = obj.get("score", obj.get("difficulty")) if isinstance(obj, dict) else None
            if v is not None:
                value = str(v)
        except ValueError:
            pass
    if value is None:
        labelled = list(_LABELLED.finditer(body))
        if labelled:
            m = labelled[-1]
            if m.group(2) is not None and m.group(2) != str(MAX_SCORE):
                raise ScoreParseError(f"score {m.group(1)}/{m.group(2)} is not on the 1-{MAX_SCORE} scale")
            value = m.group(1)
        else:
            numbers = _NUMBER.findall(body)
            if len(numbers) != 1:
                raise ScoreParseError(
                    f"no labelled score and {len(numbers)} numbers in the answer: {body[:120]!r}"
                )
            value = numbers[0]
    try:
        f = float(value)
    except ValueError:
        raise ScoreParseError(f"score {value!r} is not a number") from None
    if not f.is_integer():
        raise ScoreParseError(f"score {value} is not an integer")
    if not MIN_SCORE <= int(f) <= MAX_SCORE:
        raise ScoreParseError(f"score {int(f)} is outside {MIN_SCORE}-{MAX_SCORE}")
    return int(f)


def difficulty_from_pass_rate(p: float) -> int:
    """Pass rate -> difficulty, in five equal bands: p >= 0.8 -> 1, [0.6, 0.8) -> 2, [0.4, 0.6) -> 3,
    [0.2, 0.4) -> 4, p < 0.2 (never or almost never solved) -> 5."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"pass rate must be in [0, 1], got {p}")
    return MAX_SCORE - min(4, math.floor(p * 5 + 1e-9))


# --- judge ---------------------------------------------------------------------------------------
class JudgeScorer(DifficultyScorer):
    """An OpenAI-compatible chat endpoint rates each problem with :data:`RUBRIC`.

    ``base_url``: the server (``http://host:8000``) or its ``/v1`` prefix; requests go to
    ``/v1/chat/completions``. ``concurrency`` requests at a time, each with ``timeout`` seconds per
    attempt and ``retries`` HTTP retries (connection failures, 5xx, 429; see :mod:`rollout.http`);
    a circuit breaker opens after ``breaker_failures`` consecutive failures, and then the rows fail
    fast (marked ``circuit open``) for ``breaker_cooldown`` s instead of each waiting for a timeout.
    An answer without a usable score is asked again up to ``parse_retries`` times (at
    ``temperature`` 0 the same answer is likely, so the default is 1), then the row fails with the
    parse error and the raw answers kept."""

    name = "judge"

    def __init__(
        self, base_url: str, model: str = "judge", *, rubric: str = RUBRIC, temperature: float = 0.0,
        max_tokens: int = 256, concurrency: int = 8, timeout: float = 60.0, retries: int = 2,
        parse_retries: int = 1, breaker_failures: int = 5, breaker_cooldown: float = 30.0,
        api_key: str | None = None, backoff: float = 0.5,
    ) -> None:
        from rollout.http import CircuitBreaker, HTTPClient

        base = base_url.rstrip("/")
        self.path = "/chat/completions" if base.endswith("/v1") else "/v1/chat/completions"
        self.model, self.rubric, self.temperature, self.max_tokens = model, rubric, temperature, max_tokens
        self.concurrency, self.parse_retries = max(1, int(concurrency)), max(0, int(parse_retries))
        self.breaker = CircuitBreaker(failures=breaker_failures, cooldown=breaker_cooldown, name="difficulty-judge")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self.client = HTTPClient(base, timeout=timeout, retries=retries, backoff=backoff, breaker=self.breaker,
                                 max_connections=self.concurrency, headers=headers, name="difficulty judge")

    def settings(self) -> dict[str, Any]:
        return {"model": self.model, "rubric": hashlib.sha256(self.rubric.encode()).hexdigest()[:16],
                "temperature": self.temperature, "max_tokens": self.max_tokens}

    def messages(self, row: dict) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.rubric},
                {"role": "user", "content": "PROBLEM:\n" + prompt_text(row_prompt(row))}]

    def score_one(self, row: dict) -> Score:
        from rollout.http import HTTPRequestError

        body = {"model": self.model, "messages": self.messages(row), "temperature": self.temperature,
                "max_tokens": self.max_tokens}
        answers: list[str] = []
        error = ""
        for _ in range(self.parse_retries + 1):
            try:
                out = self.client.post_json(self.path, body, what="difficulty judge request")
            except HTTPRequestError as e:
                return Score(None, {"answers": answers}, f"request failed ({e.kind}): {e}")
            try:
                text = out["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                text = None
            if not isinstance(text, str):
                answers.append(json.dumps(out, default=str)[:2000])
                error = "the answer has no choices[0].message.content"
                continue
            answers.append(text)
            try:
                return Score(parse_score(text), {"answer": text, "attempts": len(answers)})
            except ScoreParseError as e:
                error = f"unparseable score: {e}"
        return Score(None, {"answers": answers}, error)

    def score_many(self, rows: Sequence[dict]) -> Iterator[tuple[int, Score]]:
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="judge")
        try:
            futures = {pool.submit(self.score_one, r): i for i, r in enumerate(rows)}
            for fut in as_completed(futures):
                try:
                    score = fut.result()
                except Exception as e:  # a bug for one row must not cost the others
                    score = Score(None, None, f"{type(e).__name__}: {e}")
                yield futures[fut], score
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.client.close()


# --- an existing column --------------------------------------------------------------------------
_INT = re.compile(r"-?\d+(?:\.\d+)?")


class ColumnScorer(DifficultyScorer):
    """An existing field (dotted path, e.g. ``extra_info.difficulty`` or ``level``) as the difficulty.
    Values may be numbers or text holding one ("Level 3"). With ``low``/``high`` the range
    [low, high] is mapped linearly onto 1-5 (rounded); without them a value must already be 1-5."""

    name = "column"

    def __init__(self, column: str = "extra_info.difficulty", low: float | None = None, high: float | None = None) -> None:
        if (low is None) != (high is None) or (low is not None and not high > low):
            raise ValueError("column scorer: give both low and high (low < high), or neither")
        self.column, self.low, self.high = column, low, high

    def settings(self) -> dict[str, Any]:
        return {"column": self.column, "low": self.low, "high": self.high}

    def key_fields(self, row: dict) -> Any:
        from curriculum.data import get_field

        return {"prompt": row_prompt(row), "value": get_field(row, self.column)}

    def value_to_score(self, value: Any) -> int:
        if isinstance(value, bool) or value is None:
            raise ScoreParseError(f"field {self.column!r} is {value!r}")
        if isinstance(value, (int, float)):
            v = float(value)
        else:
            m = _INT.findall(str(value))
            if len(m) != 1:
                raise ScoreParseError(f"field {self.column!r} = {value!r} holds no single number")
            v = float(m[0])
        if self.low is not None:
            v = MIN_SCORE + (min(max(v, self.low), self.high) - self.low) / (self.high - self.low) * (MAX_SCORE - MIN_SCORE)
            v = float(math.floor(v + 0.5))
        if not v.is_integer() or not MIN_SCORE <= v <= MAX_SCORE:
            raise ScoreParseError(f"field {self.column!r} = {value!r} is not an integer in 1-5 (set low/high to rescale)")
        return int(v)

    def score_many(self, rows: Sequence[dict]) -> Iterator[tuple[int, Score]]:
        from curriculum.data import get_field

        for i, r in enumerate(rows):
            value = get_field(r, self.column)
            try:
                yield i, Score(self.value_to_score(value), {"value": value})
            except ScoreParseError as e:
                yield i, Score(None, {"value": value}, str(e))
