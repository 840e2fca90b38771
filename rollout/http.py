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
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable

import httpx

logger = logging.getLogger(__name__)

__all__ = ["CircuitBreaker", "CircuitOpenError", "HTTPClient", "HTTPRequestError"]


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


class CircuitBreaker:
    """Closed -> (``failures`` consecutive failures) -> open for ``cooldown`` s -> half-open (one
    probe) -> closed on success / open again on failure, for twice as long each time up to
    ``max_cooldown`` (default: ``cooldown``, no growth). Thread-safe. ``clock`` is injectable."""

    def __init__(
        self,
        failures: int = 5,
        cooldown: float = 30.0,
        *,
        max_cooldown: float | None = None,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if int(failures) < 1:
            raise ValueError(f"failures must be >= 1, got {failures}")
        if not cooldown > 0:
            raise ValueError(f"cooldown must be > 0, got {cooldown}")
        max_cooldown = float(cooldown) if max_cooldown is None else float(max_cooldown)
        if max_cooldown < cooldown:
            raise ValueError(f"max_cooldown must be >= cooldown ({cooldown}), got {max_cooldown}")
        self.failures = int(failures)
        self.base_cooldown = float(cooldown)
        self.max_cooldown = max_cooldown
        self.cooldown = float(cooldown)  # the current one: doubles after each failed probe, up to max_cooldown
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_out = False
        self.trips = 0  # cumulative
        self.short_circuits = 0
        self.probes = 0
        self._popped = (0, 0, 0)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (an open breaker past its cool-down reads
        half-open: its next request is the probe)."""
        with self._lock:
            if self._state == "open" and self._clock() - self._opened_at >= self.cooldown:
                return "half_open"
            return self._state

    def seconds_until_probe(self) -> float:
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a request go out now? False counts a short-circuit. True for the probe marks it
        in flight: the caller must then call :meth:`record_success` or :meth:`record_failure`."""
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open" and self._clock() - self._opened_at >= self.cooldown:
                self._state = "half_open"
                self._probe_out = False
            if self._state == "half_open" and not self._probe_out:
                self._probe_out = True
                self.probes += 1
                return True
            self.short_circuits += 1
            return False

    def record_success(self) -> None:
        with self._lock:
            self._consecutive = 0
            if self._state != "closed":
                logger.warning("circuit %s: closed again (the probe succeeded)", self.name or "")
            self._state = "closed"
            self.cooldown = self.base_cooldown
            self._probe_out = False

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._state == "half_open":
                self.cooldown = min(self.cooldown * 2.0, self.max_cooldown)
                self._open("the probe failed")
            elif self._state == "closed" and self._consecutive >= self.failures:
                self._open(f"{self._consecutive} consecutive failures")
            # already open (a request sent before it opened failed late): stays open

    def release(self) -> None:
        """A request that :meth:`allow` let through ended without telling anything about the
        server (the caller's own error): a probe slot it held is freed, nothing else changes."""
        with self._lock:
            self._probe_out = False

    def _open(self, why: str) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probe_out = False
        self.trips += 1
        logger.warning(
            "circuit %s: open after %s; requests fail fast for %.1f s, then one probe", self.name or "", why, self.cooldown
        )

    def pop_stats(self) -> dict[str, float]:
        """Since the last pop: ``breaker_trips``, ``short_circuits``, ``breaker_probes``; and
        ``breaker_open`` (1.0 while open or half-open, else 0.0)."""
        with self._lock:
            now = (self.trips, self.short_circuits, self.probes)
            d = [a - b for a, b in zip(now, self._popped)]
            self._popped = now
            is_open = self._state != "closed"
        return {"breaker_trips": float(d[0]), "short_circuits": float(d[1]), "breaker_probes": float(d[2]),
                "breaker_open": 1.0 if is_open else 0.0}


_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def _retryable_status(code: int) -> bool:
    """429 and 5xx, except the two that no retry can fix (501 Not Implemented, 505 HTTP Version)."""
    return code == 429 or (500 <= code < 600 and code not in (501, 505))


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
            if self.breaker is not None and not self.breaker.allow():
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
            response: httpx.Response | None = None
            retryable = False
            try:
                response = self._client.request(method, url, json=json, headers=headers, timeout=self._timeout(left))
            except _CONNECT_ERRORS as e:
                last = HTTPRequestError("connect", f"{what} to {url}: cannot connect ({type(e).__name__}: {e})", url=url)
                retryable = True
            except httpx.TimeoutException as e:
                last = HTTPRequestError("timeout", f"{what} to {url}: no answer within {left:.1f} s ({type(e).__name__})", url=url)
                retryable = idempotent
            except httpx.TransportError as e:
                last = HTTPRequestError("disconnect", f"{what} to {url}: connection lost ({type(e).__name__}: {e})", url=url)
                retryable = idempotent
            except Exception as e:  # invalid URL, a body that is not JSON-serialisable: the caller's bug
                if self.breaker is not None:
                    self.breaker.release()  # nothing was learnt about the server
                raise HTTPRequestError("error", f"{what} to {url}: {type(e).__name__}: {e}", url=url, attempts=sent) from e
            if response is not None:
                code = response.status_code
                if code < 300:
                    if self.breaker is not None:
                        self.breaker.record_success()
                    return response
                body = response.text[:500]
                last = HTTPRequestError("status", f"{what} to {url}: the server answered {code}: {body}", url=url, status=code, body=body)
                retryable = _retryable_status(code)
                if not retryable:  # 3xx (not followed) or 4xx: the server is alive, the request is wrong
                    if self.breaker is not None:
                        self.breaker.record_success()
                    last.attempts = sent
                    raise last
            if self.breaker is not None:
                self.breaker.record_failure()
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
