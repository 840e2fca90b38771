"""NRP judges for DECS: does a reasoning chunk present the correct final answer?

DECS (arXiv 2509.25827) cuts a correct response's reasoning into chunks and asks a judge,
chunk by chunk, whether the chunk *presents the correct final answer*. The first chunk
judged "yes" closes the necessary reasoning prefix (NRP); everything after it is redundant.
This module holds the judges; :mod:`rewards.decs.reward` does the chunking and the reward.

A judge may name the chunking its verdicts are meant for (``preferred_chunking``: the endpoint
judge says ``"paper"``, the chunking its detector was trained on); ``decs_chunking: auto`` follows it.

Every judge implements one batch method (so that all chunks of all responses of a rollout
batch go out in a single call, concurrently where the judge allows; the item type and the
protocol are :mod:`rewards.decs.judge_types`', re-exported here)::

    class Judge(Protocol):
        def judge(self, items: list[JudgeItem]) -> list[bool | None]: ...
        def pop_stats(self) -> dict[str, float]: ...   # counters since the last pop

``True`` = the segment presents the correct final answer, ``False`` = it does not, ``None``
= the judge could not decide (endpoint down and ``fallback="no_penalty"``): the caller then
treats the whole response as having no redundant part.

* :class:`RuleJudge` (:mod:`rewards.decs.rule_judge`; default for the embedded tasks): extracts the chunk's candidate
  answer(s) and compares them with the ground truth through :func:`rewards.math.verify_answer`
  (in-process) or through a :class:`rewards.math.MathGrader` pool (per-item timeouts).
* :class:`EndpointJudge`: an OpenAI-compatible chat-completions server running the released
  detector (``vllm serve <path>/DECS_NRP_DETECTOR --port 10041``), asked in the detector's own
  language by default (the paper's prompt, 5 new tokens, "yes" anywhere in the reply; the prompts
  are :mod:`rewards.decs.judge_prompts`'). HTTP through the shared :class:`rollout.http.HTTPClient`;
  concurrent requests, per-request timeout, retries with exponential backoff (never of a
  request that timed out), a circuit breaker, one overall deadline per call, and a configurable
  fallback when the server cannot be reached. A dead judge never raises and never blocks
  longer than the deadline, and once the breaker is open it costs no network time at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Sequence

from rewards.decs.judge_prompts import (  # re-exported: the judges' one import path
    DEFAULT_JUDGE_PROMPT,
    DEFAULT_JUDGE_TEMPLATE,
    JUDGE_PROMPTS,
    PAPER_JUDGE_TEMPLATE,
    PARSIMONY_JUDGE_TEMPLATE,
    VERDICTS,
    parse_verdict,
    render_template,
    verdict_contains_yes,
)
from rewards.decs.judge_types import Judge, JudgeItem  # re-exported, with the rule judge and the prompts
from rewards.decs.rule_judge import RuleJudge, rule_candidates
from rewards.math import format_ground_truth

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "DEFAULT_JUDGE_PROMPT",
    "DEFAULT_JUDGE_TEMPLATE",
    "JUDGE_PROMPTS",
    "PAPER_JUDGE_TEMPLATE",
    "PARSIMONY_JUDGE_TEMPLATE",
    "VERDICTS",
    "JUDGE_URL_ENV",
    "JUDGE_API_KEY_ENV",
    "EndpointJudge",
    "Judge",
    "JudgeItem",
    "RuleJudge",
    "chat_completions_url",
    "parse_verdict",
    "render_template",
    "rule_candidates",
    "verdict_contains_yes",
]

JUDGE_URL_ENV = "PARSIMONY_DECS_JUDGE_URL"
JUDGE_API_KEY_ENV = "PARSIMONY_DECS_JUDGE_API_KEY"
DEFAULT_JUDGE_MODEL = "DECS_NRP_DETECTOR"


# ---------------------------------------------------------------------------------------
# Endpoint judge
# ---------------------------------------------------------------------------------------


def chat_completions_url(url: str) -> str:
    """``http://h:p`` / ``http://h:p/v1`` / ``.../v1/chat/completions`` -> the full endpoint."""
    u = url.strip().rstrip("/")
    if u.endswith("/chat/completions"):
        return u
    if u.endswith("/v1"):
        return u + "/chat/completions"
    return u + "/v1/chat/completions"


class _Failure(Exception):
    def __init__(self, kind: str, msg: str):
        super().__init__(msg)
        self.kind = kind  # "timeout" | "error" | "short_circuit" | "abandoned"


class EndpointJudge:
    """Judge through an OpenAI-compatible ``/v1/chat/completions`` server (the DECS NRP
    detector served by vLLM, e.g. ``vllm serve <path>/DECS_NRP_DETECTOR --port 10041``).

    Each item becomes one chat request whose single user message is ``template`` filled with
    the item (:func:`render_template`), sent with ``temperature=0`` and ``max_tokens``; ``verdict``
    reads the reply (:data:`VERDICTS`). ``prompt`` (``"paper"``, default, or ``"parsimony"``, see
    :mod:`rewards.decs.judge_prompts`) gives every one of ``template``, ``max_tokens``, ``verdict``,
    ``max_prompt_tokens`` and ``max_segment_chars`` left at None. The paper's: its detector's
    template, 5 new tokens, "yes" anywhere in the reply, prompts over 17,990 tokens not sent. A reply
    the verdict rule cannot read counts as "no" and as ``unparseable``.

    Robustness (a dead judge must not crash or hang training); the HTTP goes through the shared
    :class:`rollout.http.HTTPClient`:

    * requests run in a thread pool of ``concurrency`` threads, each with a ``timeout``;
    * a request that never reached the server (connection refused) or got 5xx / 429 is retried
      ``retries`` times, sleeping ``backoff * 2**attempt`` seconds in between; a request that
      timed out (or whose connection broke after it was sent) is **not** retried: the verdict
      is a generation, most likely still running on a hung or overloaded server, and the
      fallback is cheap. A 4xx or a malformed reply is not retried either;
    * a circuit breaker: after ``breaker_failures`` consecutive failed requests, every request
      goes straight to the fallback, without touching the network, for ``breaker_cooldown``
      seconds; then one probe request goes out (the others still fall back at once); a probe
      that succeeds closes the breaker, one that fails opens it again for twice as long, up to
      ``breaker_max_cooldown`` (default ``10 * breaker_cooldown``). When the breaker opens during
      a call, the requests still out are not waited for (they fall back). ``breaker_failures=0``
      turns the breaker off. A dead judge then
      costs about one request timeout per cool-down instead of every step's full budget;
    * one :meth:`judge` call never takes much longer than ``deadline`` seconds (default: enough
      for every request to use all its attempts once, sequentially per thread, capped at 300 s);
      requests not finished by then count as timeouts;
    * prompts longer than ``max_prompt_tokens`` tokens of ``tokenizer`` (the judge's: a tokenizer,
      or a path loaded with ``transformers.AutoTokenizer``; the reward passes the policy's, which
      is the paper code's own fallback) and segments longer than ``max_segment_chars`` characters
      are not sent and count as "no" (``skipped_long``); 0 turns a limit off. Without a tokenizer
      the token limit cannot apply (a warning says so);
    * an item whose request finally failed gets the ``fallback``: ``"rule"`` = the verdict of a
      :class:`RuleJudge` (in-process), ``"no_penalty"`` = ``None`` (the caller treats that
      response as having no redundant part).

    ``url`` defaults to ``$PARSIMONY_DECS_JUDGE_URL``; an API key, if any, is read from the
    environment variable named by ``api_key_env`` (default ``PARSIMONY_DECS_JUDGE_API_KEY``) and
    sent as ``Authorization: Bearer``. :meth:`pop_stats` returns and resets: calls (items),
    requests (HTTP attempts sent), timeouts, errors, fallbacks, unparseable, skipped_long,
    latency_s (wall time of judge calls), short_circuits (requests the open breaker refused),
    abandoned (requests not sent, or still out and not waited for, because the breaker opened
    during the call), breaker_trips (times
    it opened), breaker_probes, breaker_open (1.0 while it is not closed).
    """

    preferred_chunking = "paper"  # the chunking the released detector was trained on (decs_chunking: auto)

    def __init__(
        self,
        url: str | None = None,
        model: str = DEFAULT_JUDGE_MODEL,
        template: str | None = None,
        *,
        prompt: str = DEFAULT_JUDGE_PROMPT,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        concurrency: int = 16,
        max_segment_chars: int | None = None,
        fallback: str = "rule",
        deadline: float | None = None,
        max_tokens: int | None = None,
        verdict: str | None = None,
        max_prompt_tokens: int | None = None,
        tokenizer: Any = None,
        api_key_env: str = JUDGE_API_KEY_ENV,
        rule_judge: RuleJudge | None = None,
        breaker_failures: int = 5,
        breaker_cooldown: float = 30.0,
        breaker_max_cooldown: float | None = None,
    ):
        from rollout.http import CircuitBreaker, HTTPClient  # lazy: keeps ``import rewards`` cheap

        url = url or os.environ.get(JUDGE_URL_ENV)
        if not url:
            raise ValueError(f"EndpointJudge needs a url (argument or ${JUDGE_URL_ENV})")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"judge url must start with http:// or https://, got {url!r}")
        if prompt not in JUDGE_PROMPTS:
            raise ValueError(f"prompt must be one of {sorted(JUDGE_PROMPTS)}, got {prompt!r}")
        profile = JUDGE_PROMPTS[prompt]
        template = profile.template if template is None else template
        max_tokens = profile.max_tokens if max_tokens is None else int(max_tokens)
        verdict = profile.verdict if verdict is None else verdict
        max_prompt_tokens = profile.max_prompt_tokens if max_prompt_tokens is None else int(max_prompt_tokens)
        max_segment_chars = profile.max_segment_chars if max_segment_chars is None else int(max_segment_chars)
        if "{segment}" not in template:
            raise ValueError("judge template must contain the {segment} placeholder")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {sorted(VERDICTS)}, got {verdict!r}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        if max_prompt_tokens < 0:
            raise ValueError(f"max_prompt_tokens must be >= 0 (0 = no limit), got {max_prompt_tokens}")
        if fallback not in ("rule", "no_penalty"):
            raise ValueError(f"fallback must be 'rule' or 'no_penalty', got {fallback!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if int(retries) < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if int(concurrency) < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_segment_chars < 0:
            raise ValueError(f"max_segment_chars must be >= 0 (0 = no limit), got {max_segment_chars}")
        if backoff < 0:
            raise ValueError(f"backoff must be >= 0, got {backoff}")
        if int(breaker_failures) < 0:
            raise ValueError(f"breaker_failures must be >= 0 (0 = no circuit breaker), got {breaker_failures}")
        if not breaker_cooldown > 0:
            raise ValueError(f"breaker_cooldown must be > 0, got {breaker_cooldown}")
        if breaker_max_cooldown is None:
            breaker_max_cooldown = 10.0 * float(breaker_cooldown)
        if breaker_max_cooldown < breaker_cooldown:
            raise ValueError(f"breaker_max_cooldown must be >= breaker_cooldown, got {breaker_max_cooldown}")
        self.url = chat_completions_url(url)
        self.model = model
        self.prompt = prompt
        self.template = template
        self.strip_problem = profile.strip_problem
        self.concurrency = int(concurrency)
        self.max_segment_chars = max_segment_chars
        self.max_prompt_tokens = max_prompt_tokens
        self.verdict = verdict
        self.fallback = fallback
        self.max_tokens = max_tokens
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer  # lazy, and only for a path

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer
        if max_prompt_tokens and tokenizer is None:
            logger.warning("DECS endpoint judge: no tokenizer, so prompts over max_prompt_tokens=%d are sent anyway",
                           max_prompt_tokens)
        self.api_key_env = api_key_env
        breaker = None
        if int(breaker_failures) > 0:
            breaker = CircuitBreaker(int(breaker_failures), float(breaker_cooldown), max_cooldown=breaker_max_cooldown,
                                     name=f"DECS judge {self.url}")
        self.client = HTTPClient(
            self.url, timeout=float(timeout), retries=int(retries), backoff=float(backoff), headers_fn=self._headers,
            breaker=breaker, max_connections=self.concurrency, name=f"DECS judge {self.url}",
        )
        if deadline is None:
            per_item = (self.retries + 1) * self.timeout + sum(self.backoff * 2**a for a in range(self.retries))
            deadline = min(300.0, max(per_item, 1.0))
        if not deadline > 0:
            raise ValueError(f"deadline must be > 0, got {deadline}")
        self.deadline = float(deadline)
        self.rule_judge = rule_judge or RuleJudge()
        self._lock = threading.Lock()
        self._stats = self._zero_stats()

    # the request settings live on the client (settable, e.g. a shorter backoff in tests)
    timeout = property(lambda self: self.client.timeout, lambda self, v: setattr(self.client, "timeout", float(v)))
    retries = property(lambda self: self.client.retries, lambda self, v: setattr(self.client, "retries", int(v)))
    backoff = property(lambda self: self.client.backoff, lambda self, v: setattr(self.client, "backoff", float(v)))

    @property
    def breaker(self):
        """The :class:`rollout.http.CircuitBreaker`, or None when ``breaker_failures=0``."""
        return self.client.breaker

    @staticmethod
    def _zero_stats() -> dict[str, float]:
        keys = ("calls", "requests", "timeouts", "errors", "fallbacks", "unparseable", "skipped_long", "latency_s",
                "short_circuits", "breaker_trips", "breaker_probes", "abandoned")
        return {k: 0.0 for k in keys}

    def _count(self, key: str, n: float = 1.0) -> None:
        with self._lock:
            self._stats[key] += n

    def pop_stats(self) -> dict[str, float]:
        with self._lock:
            s, self._stats = self._stats, self._zero_stats()
        client = self.client.pop_stats()
        for k in ("requests", "short_circuits", "breaker_trips", "breaker_probes"):
            s[k] += client.get(k, 0.0)
        s["breaker_open"] = client.get("breaker_open", 0.0)
        return s

    def close(self) -> None:
        self.client.close()

    # -- one request ---------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def render(self, item: JudgeItem) -> str:
        """The user message sent for ``item``."""
        problem = item.problem.strip() if self.strip_problem else item.problem
        return render_template(self.template, problem, item.segment, format_ground_truth(item.ground_truth))

    def _too_long(self, items: list[JudgeItem], prompts: list[str]) -> list[bool]:
        """Per item, whether the rules keep it from being sent (it then counts as "no"). Prompt tokens
        are counted in one batch, and only for prompts of at least ``max_prompt_tokens`` UTF-8 bytes:
        every token covers at least one byte (byte-level BPE; SentencePiece adds at most one "▁")."""
        out = [bool(self.max_segment_chars) and len(it.segment) > self.max_segment_chars for it in items]
        limit = self.max_prompt_tokens
        if limit and self.tokenizer is not None:
            count = [i for i, p in enumerate(prompts) if not out[i] and len(p.encode("utf-8")) >= limit]
            if count:
                ids = self.tokenizer([prompts[i] for i in count], add_special_tokens=False)["input_ids"]
                for i, x in zip(count, ids):
                    out[i] = len(x) > limit
        return out

    def _ask(self, prompt: str, stop_at: float, cancelled: threading.Event) -> bool:
        """Verdict for one prompt (the client retries what is safe to retry); raises _Failure."""
        from rollout.http import CircuitOpenError, HTTPRequestError

        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }
        try:
            data = self.client.post_json("", body, deadline=stop_at, cancel=cancelled, what="DECS judge request")
        except CircuitOpenError as e:
            raise _Failure("short_circuit", str(e)) from None
        except HTTPRequestError as e:  # "cancelled": not sent, the breaker opened during this call
            raise _Failure({"timeout": "timeout", "cancelled": "abandoned"}.get(e.kind, "error"), str(e)) from None
        try:
            content = data["choices"][0]["message"]["content"]
        except Exception:
            raise _Failure("error", "malformed chat-completions response") from None
        verdict = VERDICTS[self.verdict](content if isinstance(content, str) else "")
        if verdict is None:
            self._count("unparseable")
            return False
        return verdict

    # -- the batch -----------------------------------------------------------------------

    def judge(self, items: Sequence[JudgeItem]) -> list[bool | None]:
        return self.judge_detailed(items)[0]

    def judge_detailed(self, items: Sequence[JudgeItem]) -> tuple[list[bool | None], list[bool]]:
        """(verdicts, fell_back): ``fell_back[i]`` is True when item i's request failed (or the
        circuit breaker refused it) and its verdict came from the fallback (a RuleJudge verdict,
        or None for ``"no_penalty"``)."""
        items = list(items)
        t0 = time.monotonic()
        out: list[bool | None] = [False] * len(items)
        failed: list[int] = []
        kinds = {"timeout": 0, "error": 0, "short_circuit": 0, "abandoned": 0}
        breaker_opened = False
        prompts = [self.render(it) for it in items]
        too_long = self._too_long(items, prompts)
        self._count("skipped_long", sum(too_long))
        todo = [i for i in range(len(items)) if not too_long[i]]
        stop_at = time.monotonic() + self.deadline
        if todo:
            cancelled = threading.Event()
            pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)), thread_name_prefix="decs-judge")
            futures = {pool.submit(self._ask, prompts[i], stop_at, cancelled): i for i in todo}
            pending = set(futures)
            trips0 = self.breaker.trips if self.breaker is not None else 0
            try:

                def collect(done) -> None:
                    for fut in done:
                        i = futures[fut]
                        try:
                            out[i] = fut.result()
                        except _Failure as f:
                            kinds[f.kind] += 1
                            failed.append(i)
                        except Exception as e:  # a bug must not take training down
                            logger.warning("DECS judge request failed unexpectedly: %r", e)
                            kinds["error"] += 1
                            failed.append(i)

                while pending:
                    left = stop_at - time.monotonic()
                    if left <= 0:
                        break
                    done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
                    collect(done)
                    breaker = self.breaker
                    if pending and breaker is not None and breaker.trips != trips0 and breaker.state != "closed":
                        # the breaker opened during this call (opened before, it refuses every
                        # request at once anyway): the server is down. Requests pausing between
                        # retries stop now, requests not started are not sent, and requests already
                        # out (sent just before it opened) would each cost a full timeout: not waited for
                        breaker_opened = True
                        cancelled.set()
                        done, pending = wait(pending, timeout=max(0.0, min(0.25, stop_at - time.monotonic())))
                        collect(done)
                        break
            finally:
                cancelled.set()
                for fut in pending:  # abandoned: the deadline passed or the breaker opened (threads end within `timeout`)
                    fut.cancel()
                    kinds["abandoned" if breaker_opened else "timeout"] += 1
                    failed.append(futures[fut])
                pool.shutdown(wait=False, cancel_futures=True)
        self._count("timeouts", kinds["timeout"])
        self._count("errors", kinds["error"])
        self._count("abandoned", kinds["abandoned"])
        if failed:
            failed.sort()
            self._count("fallbacks", len(failed))
            if kinds["short_circuit"] == len(failed):
                logger.info("DECS judge at %s: circuit open, %d/%d items fell back (fallback=%s)",
                            self.url, len(failed), len(items), self.fallback)
            else:
                logger.warning("DECS judge at %s: %d/%d requests failed (%d timeouts, %d errors, %d refused by the open "
                               "circuit, %d abandoned when it opened); fallback=%s", self.url, len(failed), len(items),
                               kinds["timeout"], kinds["error"], kinds["short_circuit"], kinds["abandoned"], self.fallback)
            if self.fallback == "rule":
                for i, v in zip(failed, self.rule_judge.judge([items[i] for i in failed])):
                    out[i] = v
            else:
                for i in failed:
                    out[i] = None
        self._count("calls", len(items))
        self._count("latency_s", time.monotonic() - t0)
        fell_back = [False] * len(items)
        for i in failed:
            fell_back[i] = True
        return out, fell_back
