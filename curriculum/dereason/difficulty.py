"""Difficulty (reasoning-intensity) scoring for DeReason's SFT/RL split.

Every scorer sits behind :class:`DifficultyScorer`: it turns rows into :class:`Score` records
(``difficulty`` 1-5, the ``raw`` scorer output, or an ``error``). :func:`score_dataset` runs one
over a dataset with an append-only cache and adds four columns:

* ``difficulty``: int 1-5, or None for a row that failed (never a default);
* ``difficulty_raw``: the scorer's raw output as a JSON string (the judge's answer text, the
  pass-rate counts, the column value);
* ``difficulty_error``: None, or why the row failed;
* ``difficulty_scorer``: the scorer's name.

The cache (``<out>.cache.jsonl`` by default) holds one JSON line per scored row, written and
flushed as soon as the row is done, keyed by ``sha256`` of the scorer's name and settings and of
the row's prompt (plus what else the scorer reads, e.g. the ground truth for ``pass_rate``). A
re-run scores only rows whose key has no successful record; an interrupted run loses at most the
rows in flight. Failed rows are written too (for the record) but are retried on the next run.

Scorers:

* ``judge`` (:class:`JudgeScorer`): an OpenAI-compatible ``/v1/chat/completions`` endpoint with the
  rubric :data:`RUBRIC`; the answer's score is read by :func:`parse_score`.
* ``pass_rate`` (:class:`rl.eval.pass_rate.PassRateScorer`, in ``rl`` because it generates with the
  evaluation code; ``curriculum`` never imports ``rl``): k sampled answers from the current model,
  graded; the pass rate maps to a difficulty by :func:`difficulty_from_pass_rate`.
* ``column`` (:class:`ColumnScorer`): an existing field, e.g. a task's ``extra_info.difficulty`` or
  MATH's ``level`` ("Level 3"), rescaled to 1-5 when its range is another.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

MIN_SCORE, MAX_SCORE = 1, 5
COLUMNS = ("difficulty", "difficulty_raw", "difficulty_error", "difficulty_scorer")


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


# --- the interface -------------------------------------------------------------------------------
def prompt_text(prompt: Any) -> str:
    """The problem as plain text: a string, or the chat messages' contents (system left out)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        return "\n\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict) and m.get("role") != "system")
    raise ValueError(f"prompt has type {type(prompt).__name__}; expected chat messages or a string")


def row_prompt(row: dict) -> Any:
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


def cache_key(scorer: DifficultyScorer, row: dict) -> str:
    blob = json.dumps({"scorer": scorer.name, "settings": scorer.settings(), "row": scorer.key_fields(row)},
                      sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- the cache -----------------------------------------------------------------------------------
class ScoreCache:
    """Append-only JSON lines ``{"key", "difficulty", "raw", "error"}``, one per finished row, flushed
    at once. On load the last successful record of a key wins; a torn last line is skipped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: dict[str, Score] = {}
        self.failed: dict[str, Score] = {}
        self.torn_lines = 0
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    key = rec["key"]
                except (ValueError, KeyError, TypeError):
                    self.torn_lines += 1
                    continue
                s = Score(rec.get("difficulty"), rec.get("raw"), rec.get("error"))
                if s.ok:
                    self.done[key] = s
                    self.failed.pop(key, None)
                elif key not in self.done:
                    self.failed[key] = s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a")
        self._lock = threading.Lock()

    def put(self, key: str, score: Score) -> None:
        line = json.dumps({"key": key, "difficulty": score.difficulty, "raw": score.raw, "error": score.error},
                          default=str, ensure_ascii=False)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()
        if score.ok:
            self.done[key] = score
            self.failed.pop(key, None)
        else:
            self.failed[key] = score

    def close(self) -> None:
        self._f.close()


@dataclass
class ScoreReport:
    scorer: str
    rows: int = 0
    cached: int = 0
    scored: int = 0
    failed: int = 0
    counts: dict[int, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)  # {"row", "error"} (first 20)

    def to_dict(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "rows": self.rows, "cached": self.cached, "scored": self.scored,
                "failed": self.failed, "counts": {str(k): v for k, v in sorted(self.counts.items())},
                "failures": self.failures}


def score_rows(
    rows: Sequence[dict], scorer: DifficultyScorer, cache_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Score], ScoreReport]:
    """Score ``rows`` (cached rows are not sent again); returns one Score per row and a report."""
    cache = ScoreCache(cache_path)
    report = ScoreReport(scorer.name, rows=len(rows))
    keys = [cache_key(scorer, r) for r in rows]
    results: list[Score | None] = [cache.done.get(k) for k in keys]
    report.cached = sum(1 for s in results if s is not None)
    # identical prompts are scored once
    first_of: dict[str, int] = {}
    todo: list[int] = []
    for i, k in enumerate(keys):
        if results[i] is None and k not in first_of:
            first_of[k] = i
            todo.append(i)
    try:
        done = 0
        for j, score in scorer.score_many([rows[i] for i in todo]):
            cache.put(keys[todo[j]], score)
            done += 1
            if progress is not None:
                progress(done, len(todo))
    finally:
        cache.close()
        scorer.close()
    for i, k in enumerate(keys):
        if results[i] is None:
            results[i] = cache.done.get(k) or cache.failed.get(k) or Score(None, None, "not scored (interrupted)")
    for i, s in enumerate(results):
        if s.ok:
            report.counts[s.difficulty] = report.counts.get(s.difficulty, 0) + 1
        else:
            report.failed += 1
            if len(report.failures) < 20:
                report.failures.append({"row": i, "error": s.error})
    report.scored = len(todo)
    return results, report  # type: ignore[return-value]


def score_dataset(dataset: Any, scorer: DifficultyScorer, cache_path: str | Path, progress=None):
    """``datasets.Dataset`` -> (the dataset with the :data:`COLUMNS` added, ScoreReport)."""
    rows = [dataset[i] for i in range(len(dataset))]
    scores, report = score_rows(rows, scorer, cache_path, progress)
    for name in COLUMNS:
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
    dataset = dataset.add_column("difficulty", [s.difficulty for s in scores])
    dataset = dataset.add_column("difficulty_raw", [json.dumps(s.raw, default=str, ensure_ascii=False) for s in scores])
    dataset = dataset.add_column("difficulty_error", [s.error for s in scores])
    dataset = dataset.add_column("difficulty_scorer", [scorer.name] * len(scores))
    return dataset, report


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


SCORERS = ("judge", "pass_rate", "column")


def iter_counts(scores: Iterable[int | None]) -> dict[int, int]:
    out: dict[int, int] = {}
    for s in scores:
        if s is not None:
            out[s] = out.get(s, 0) + 1
    return dict(sorted(out.items()))


# --- the split -----------------------------------------------------------------------------------
def split_by_difficulty(
    difficulties: Sequence[int | None], threshold: int | None = None, rl_fraction: float | None = None, seed: int = 0,
) -> tuple[list[int], list[int], dict[str, Any]]:
    """DeReason's split -> (SFT row indices, RL row indices, report). Exactly one of ``threshold``
    (difficulty >= threshold -> RL) or ``rl_fraction`` (the hardest fraction of the scored rows ->
    RL; ties at the cut broken by a seeded shuffle). Failed rows (None) go to neither."""
    import random

    if (threshold is None) == (rl_fraction is None):
        raise ValueError("give exactly one of threshold or rl_fraction")
    scored = [i for i, d in enumerate(difficulties) if d is not None]
    if threshold is not None:
        if not MIN_SCORE <= threshold <= MAX_SCORE + 1:
            raise ValueError(f"threshold must be in {MIN_SCORE}-{MAX_SCORE + 1}, got {threshold}")
        rl = [i for i in scored if difficulties[i] >= threshold]
        rule = {"threshold": threshold}
    else:
        if not 0 <= rl_fraction <= 1:
            raise ValueError(f"rl_fraction must be in [0, 1], got {rl_fraction}")
        order = list(scored)
        random.Random(seed).shuffle(order)
        order.sort(key=lambda i: -difficulties[i])  # stable: the shuffle breaks ties
        rl = sorted(order[: int(round(rl_fraction * len(scored)))])
        rule = {"rl_fraction": rl_fraction, "seed": seed}
    rl_set = set(rl)
    sft = [i for i in scored if i not in rl_set]
    report = {
        "rule": rule,
        "rows": len(difficulties),
        "failed": len(difficulties) - len(scored),
        "sft": len(sft),
        "rl": len(rl),
        "counts": {str(k): v for k, v in iter_counts(difficulties).items()},
        "sft_counts": {str(k): v for k, v in iter_counts(difficulties[i] for i in sft).items()},
        "rl_counts": {str(k): v for k, v in iter_counts(difficulties[i] for i in rl).items()},
    }
    return sft, rl, report
