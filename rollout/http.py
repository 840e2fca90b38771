"""One HTTP client for OpenAI-compatible servers: the vLLM rollout server and the DECS judge.

:class:`HTTPClient` wraps one ``httpx.Client`` (a connection pool, safe to share between
threads) with per-request timeouts, retries with exponential backoff, an optional overall
deadline and cancel event per request, and an optional :class:`CircuitBreaker`.

What is retried (``retries`` extra attempts, sleeping ``backoff * 2**attempt`` seconds, capped at
``max_backoff``; ``Retry-After`` is honoured for 429 / 503 up to the same cap):

* failures before the request reached the server: connection refused, connect timeout, no free
  pooled connection. Re-sending cannot duplicate work, whatever the method;
* answers 5xx and 429: the server is up but refused or failed the request.

What is **not** retried:

* 4xx other than 429 (and 3xx, which is not followed): the request itself is wrong; the error
  carries the server's text;
* a read (or write) timeout, or a connection dropped after the request was sent, on a request that
  is not idempotent (``POST`` by default). A generation request that timed out is most likely
  still running on the server: sending it again doubles the server's load and the caller's wait
  (the old loops spent 3 x 30 s per judge request on a hung server). It is surfaced at once, so
  the caller can fall back or stop. Pass ``idempotent=True`` (``GET`` does by default) to retry
  those too.

The circuit breaker (the DECS judge uses one; the rollout server client has none, since it
has no fallback and a dead server stops training anyway) counts consecutive failed attempts.
After ``failures`` of them it *opens*: every request fails at once with
:class:`CircuitOpenError`, without touching the network, for ``cooldown`` seconds. Then it is
*half-open*: one request (the probe) goes through while the others still fail fast; a probe that
succeeds closes the breaker, one that fails opens it for another cool-down. Trips and
short-circuits are counted (:meth:`CircuitBreaker.pop_stats`) so callers can log them. A
failure is a transport error, a timeout, 5xx or 429; any other answer (4xx included) proves the
server is alive and counts as a success.

The probe never holds its caller longer than the breaker's ``probe_wait`` (default
:data:`DEFAULT_PROBE_WAIT` = 2 s): it is sent from a background thread with the request's full
timeout, and the caller waits for it ``probe_wait`` seconds at most. Answered in time, it is the
caller's answer, as any request. Not answered in time, the caller gets an
``HTTPRequestError(kind="timeout", short_circuited=True)`` at once (it falls back, as for an open
breaker) while the probe goes on; its outcome, whenever it comes, closes the breaker or opens it
again. So a server that hangs (accepts connections, never answers) costs a caller whose calls are
further apart than the cool-down ``probe_wait`` per cool-down, not a full timeout (a DECS step
spent 30 s in the judge per half-open breaker before, issue 29); a live but slow server closes
the breaker from the background, and the next request goes through.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable

import httpx

from rollout.circuit_breaker import DEFAULT_PROBE_WAIT, CircuitBreaker  # re-exported: the HTTP client's one import path

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PROBE_WAIT", "CircuitBreaker", "CircuitOpenError", "HTTPClient", "HTTPRequestError"]

class HTTPRequestError(Exception):
    """A request failed for good.

    ``kind``: ``"connect"`` (never reached the server), ``"timeout"`` (no answer in time),
    ``"disconnect"`` (the connection broke after the request was sent), ``"status"`` (the server
    answered ``status``; ``body`` holds the start of its text), ``"circuit_open"`` (refused by the
    breaker, no network), ``"cancelled"`` (the caller's cancel event was set before anything was
    sent), ``"error"`` (anything else). ``attempts``: requests that were sent.
    ``short_circuited``: the breaker refused a retry (the kind is then the last real failure's).
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        body: str = "",
        attempts: int = 0,
        short_circuited: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.url = url
        self.status = status
        self.body = body
        self.attempts = attempts
        self.short_circuited = short_circuited


class CircuitOpenError(HTTPRequestError):
    """The circuit breaker is open: the request was not sent."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__("circuit_open", message, url=url, short_circuited=True)


_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def _retryable_status(code: int) -> bool:
    """429 and 5xx, except the two that no retry can fix (501 Not Implemented, 505 HTTP Version)."""
    return code == 429 or (500 <= code < 600 and code not in (501, 505))


class _Outcome:
    """One request's result: the answer (``response``), or the ``error`` it ends in (``final``: not
    worth retrying, the server answered), or ``exc``: the caller's own bug; ``verdict``: what it
    tells the breaker (``success`` | ``failure`` | ``release``)."""

    __slots__ = ("response", "error", "retryable", "verdict", "exc", "final")

    def __init__(self, response: httpx.Response | None = None, error: HTTPRequestError | None = None, *,
                 retryable: bool = False, verdict: str = "failure", exc: BaseException | None = None,
                 final: bool = False) -> None:
        self.response, self.error, self.retryable = response, error, retryable
        self.verdict, self.exc, self.final = verdict, exc, final


class HTTPClient:
    """JSON over HTTP with timeouts, retries, backoff and an optional circuit breaker.

    Args:
        base_url: prefix of every request path (``http://host:port`` or a full endpoint URL with
            ``path=""``).
        timeout: seconds per attempt (read, write and pool); ``connect_timeout`` (default
            ``min(timeout, 10)``) for opening a connection.
        retries: extra attempts for retryable failures (see the module docstring).
        backoff, max_backoff, jitter: the pause before retry ``a`` is
            ``min(backoff * 2**a, max_backoff) * (1 + U(0, jitter))``.
        headers: sent with every request (e.g. ``Authorization``); ``headers_fn`` is called per
            request and merged on top (an API key read from the environment at call time).
        breaker: a :class:`CircuitBreaker`, or None.
        max_connections: size of the connection pool (the caller's concurrency).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float | None = None,
        retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        jitter: float = 0.1,
        headers: dict[str, str] | None = None,
        headers_fn: Callable[[], dict[str, str]] | None = None,
        breaker: CircuitBreaker | None = None,
        max_connections: int = 16,
        name: str = "",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if int(retries) < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if backoff < 0 or max_backoff < 0 or jitter < 0:
            raise ValueError("backoff, max_backoff and jitter must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.connect_timeout = None if connect_timeout is None else float(connect_timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.jitter = float(jitter)
        self.headers = dict(headers or {})
        self.headers_fn = headers_fn
        self.breaker = breaker
        self.name = name or self.base_url
        self._lock = threading.Lock()
        self._requests = 0
        self._retries_done = 0
        limits = httpx.Limits(max_connections=max(1, int(max_connections)), max_keepalive_connections=max(1, int(max_connections)))
        self._client = httpx.Client(limits=limits, headers={"Content-Type": "application/json"})

    # --- counters ------------------------------------------------------------------------------
    def pop_stats(self) -> dict[str, float]:
        """Since the last pop: ``requests`` (attempts sent), ``retries``; plus the breaker's
        :meth:`CircuitBreaker.pop_stats` when there is one."""
        with self._lock:
            s = {"requests": float(self._requests), "retries": float(self._retries_done)}
            self._requests = self._retries_done = 0
        if self.breaker is not None:
            s.update(self.breaker.pop_stats())
        return s

    def _add(self, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self._requests += requests
            self._retries_done += retries

    # --- requests ------------------------------------------------------------------------------
    def _timeout(self, seconds: float) -> httpx.Timeout:
        connect = min(seconds, self.connect_timeout if self.connect_timeout is not None else 10.0)
        return httpx.Timeout(seconds, connect=connect)

    def _pause(self, attempt: int, response: httpx.Response | None) -> float:
        pause = min(self.backoff * (2**attempt), self.max_backoff)
        if response is not None and response.status_code in (429, 503):
            after = response.headers.get("Retry-After")
            try:
                pause = max(pause, min(float(after), self.max_backoff)) if after is not None else pause
            except ValueError:
                pass  # an HTTP date: keep the exponential pause
        return pause * (1.0 + random.uniform(0.0, self.jitter)) if self.jitter else pause

    def request(
        self,
        method: str,
        path: str = "",
        json: Any = None,
        *,
        idempotent: bool | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        what: str = "request",
    ) -> httpx.Response:
        """Send until a 2xx answer (returned) or a final failure (:class:`HTTPRequestError`).

        ``deadline`` (a ``time.monotonic()`` instant) bounds every attempt and pause; ``cancel``
        stops the retries as soon as it is set. ``idempotent`` defaults to True for GET/HEAD.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "OPTIONS")
        url = self.base_url + path
        per_attempt = float(timeout) if timeout is not None else self.timeout
        last: HTTPRequestError | None = None
        sent = 0
        for attempt in range(self.retries + 1):
            if cancel is not None and cancel.is_set():
                if last is None:
                    raise HTTPRequestError("cancelled", f"{what} to {url}: cancelled before it was sent", url=url)
                break
            left = per_attempt if deadline is None else min(per_attempt, deadline - time.monotonic())
            if left <= 0.01:
                last = last or HTTPRequestError("timeout", f"{what} to {url}: deadline reached", url=url, attempts=sent)
                break
            admitted = "closed" if self.breaker is None else self.breaker.admit()
            if admitted is None:
                if last is None:
                    raise CircuitOpenError(
                        f"{what} to {url}: circuit open after repeated failures (next probe in "
                        f"{self.breaker.seconds_until_probe():.1f} s)", url=url,
                    )
                last.short_circuited = True
                break
            headers = dict(self.headers)
            if self.headers_fn is not None:
                headers.update(self.headers_fn())
            sent += 1
            self._add(requests=1)
            wait = self.breaker.probe_wait if admitted == "probe" else None
            if wait is not None and wait < left:
                out = self._probe(method, url, json, headers, left, idempotent, what, wait, cancel)
                if out is None:  # not answered within probe_wait: it goes on in the background
                    last = HTTPRequestError(
                        "timeout", f"{what} to {url}: the circuit breaker's probe got no answer within {wait:g} s "
                        f"(it goes on in the background, up to {left:.1f} s)", url=url, short_circuited=True)
                    break
            else:
                out = self._attempt(method, url, json, headers, left, idempotent, what)
                self._record(out)
            if out.exc is not None:  # invalid URL, a body that is not JSON-serialisable: the caller's bug
                e = out.exc
                raise HTTPRequestError("error", f"{what} to {url}: {type(e).__name__}: {e}", url=url, attempts=sent) from e
            response, last, retryable = out.response, out.error, out.retryable
            if last is None:
                return response
            if out.final:  # 3xx (not followed) or 4xx: the server is alive, the request is wrong
                last.attempts = sent
                raise last
            if not retryable or attempt >= self.retries:
                break
            pause = self._pause(attempt, response)
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            if cancel is not None:
                if cancel.wait(pause):
                    break
            elif pause > 0:
                time.sleep(pause)
            self._add(retries=1)
        if last is None:
            last = HTTPRequestError("error", f"{what} to {url}: cancelled", url=url)
        last.attempts = sent
        raise last

    def _attempt(self, method: str, url: str, json: Any, headers: dict[str, str], left: float, idempotent: bool,
                 what: str) -> "_Outcome":
        """One request, classified; touches neither the breaker nor the counters."""
        try:
            response = self._client.request(method, url, json=json, headers=headers, timeout=self._timeout(left))
        except _CONNECT_ERRORS as e:
            return _Outcome(error=HTTPRequestError("connect", f"{what} to {url}: cannot connect ({type(e).__name__}: {e})",
                                                   url=url), retryable=True)
        except httpx.TimeoutException as e:
            return _Outcome(error=HTTPRequestError("timeout", f"{what} to {url}: no answer within {left:.1f} s "
                                                   f"({type(e).__name__})", url=url), retryable=idempotent)
        except httpx.TransportError as e:
            return _Outcome(error=HTTPRequestError("disconnect", f"{what} to {url}: connection lost ({type(e).__name__}: "
                                                   f"{e})", url=url), retryable=idempotent)
        except Exception as e:  # nothing was learnt about the server
            return _Outcome(exc=e, verdict="release")
        code = response.status_code
        if code < 300:
            return _Outcome(response=response, verdict="success")
        body = response.text[:500]
        error = HTTPRequestError("status", f"{what} to {url}: the server answered {code}: {body}", url=url, status=code,
                                 body=body)
        if not _retryable_status(code):
            return _Outcome(response=response, error=error, verdict="success", final=True)
        return _Outcome(response=response, error=error, retryable=True)

    def _record(self, out: "_Outcome") -> None:
        if self.breaker is None:
            return
        if out.verdict == "success":
            self.breaker.record_success()
        elif out.verdict == "failure":
            self.breaker.record_failure()
        else:
            self.breaker.release()

    def _probe(self, method: str, url: str, json: Any, headers: dict[str, str], left: float, idempotent: bool,
               what: str, wait: float, cancel: threading.Event | None) -> "_Outcome | None":
        """The half-open breaker's probe, sent from a background thread with the full ``left``
        seconds; the caller waits ``wait`` seconds at most (less when ``cancel`` is set). Its
        outcome when it came in time (recorded in the breaker), else None: the thread records
        the outcome in the breaker whenever it comes."""
        lock = threading.Lock()
        state: dict[str, Any] = {"out": None, "detached": False}
        done = threading.Event()

        def run() -> None:
            try:
                out = self._attempt(method, url, json, headers, left, idempotent, what)
            except BaseException as e:  # never leave the probe slot taken
                out = _Outcome(exc=e, verdict="release")
            with lock:
                state["out"] = out
                detached = state["detached"]
            done.set()
            if detached:
                self._record(out)
                if out.verdict != "release":
                    logger.info("%s: the circuit breaker's background probe ended: %s", self.name,
                                "answered" if out.verdict == "success" else out.error)

        threading.Thread(target=run, name=f"probe {self.name}"[:60], daemon=True).start()
        end = time.monotonic() + wait
        while not done.is_set():
            rest = end - time.monotonic()
            if rest <= 0 or (cancel is not None and cancel.is_set()):
                break
            done.wait(min(rest, 0.05) if cancel is not None else rest)
        with lock:
            if state["out"] is None:
                state["detached"] = True
                self.breaker.probe_detached()
                return None
        out = state["out"]
        self._record(out)
        return out

    def post_json(self, path: str, body: Any, **kw: Any) -> Any:
        """POST ``body`` as JSON; the answer's JSON (None for an empty body). A 2xx answer that is
        not JSON raises ``HTTPRequestError(kind="error")``."""
        return self._json(self.request("POST", path, body, **kw), kw.get("what", "request"))

    def get_json(self, path: str, **kw: Any) -> Any:
        return self._json(self.request("GET", path, **kw), kw.get("what", "request"))

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise HTTPRequestError(
                "error", f"{what} to {response.request.url}: the answer is not JSON: {response.text[:200]!r}",
                url=str(response.request.url), status=response.status_code, attempts=1,
            ) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HTTPClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
