"""The circuit breaker of :class:`rollout.http.HTTPClient` (the module docstring there says how
the client uses it, the half-open probe included). Also importable from :mod:`rollout.http`."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PROBE_WAIT", "CircuitBreaker"]

DEFAULT_PROBE_WAIT = 2.0  # seconds a caller waits for the half-open breaker's probe (the rest: background)


class CircuitBreaker:
    """Closed -> (``failures`` consecutive failures) -> open for ``cooldown`` s -> half-open (one
    probe) -> closed on success / open again on failure, for twice as long each time up to
    ``max_cooldown`` (default: ``cooldown``, no growth). Thread-safe. ``clock`` is injectable.

    ``probe_wait`` (default :data:`DEFAULT_PROBE_WAIT`, 2 s; settable on the instance): the longest
    an :class:`HTTPClient` caller waits for the probe; the probe itself runs on, in the background,
    for the request's full timeout (see the module docstring). ``None``: the caller waits for the
    whole probe (the behaviour before issue 29)."""

    def __init__(
        self,
        failures: int = 5,
        cooldown: float = 30.0,
        *,
        max_cooldown: float | None = None,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        probe_wait: float | None = DEFAULT_PROBE_WAIT,
    ) -> None:
        if probe_wait is not None and not probe_wait >= 0:
            raise ValueError(f"probe_wait must be >= 0 seconds (or None: wait for the whole probe), got {probe_wait}")
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
        self.probe_wait = None if probe_wait is None else float(probe_wait)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_out = False
        self.trips = 0  # cumulative
        self.short_circuits = 0
        self.probes = 0
        self.probes_detached = 0  # probes whose caller stopped waiting after probe_wait
        self._popped = (0, 0, 0, 0)

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
        return self.admit() is not None

    def admit(self) -> str | None:
        """:meth:`allow`, saying which: ``"closed"`` (a request as any), ``"probe"`` (the
        half-open breaker's one probe), or None (refused, counted as a short-circuit)."""
        with self._lock:
            if self._state == "closed":
                return "closed"
            if self._state == "open" and self._clock() - self._opened_at >= self.cooldown:
                self._state = "half_open"
                self._probe_out = False
            if self._state == "half_open" and not self._probe_out:
                self._probe_out = True
                self.probes += 1
                return "probe"
            self.short_circuits += 1
            return None

    def probe_detached(self) -> None:
        """Count a probe whose caller stopped waiting for it (it still ends in a record_*)."""
        with self._lock:
            self.probes_detached += 1

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
        """Since the last pop: ``breaker_trips``, ``short_circuits``, ``breaker_probes``,
        ``breaker_probes_detached`` (probes not answered within ``probe_wait``, left to the
        background); and ``breaker_open`` (1.0 while open or half-open, else 0.0)."""
        with self._lock:
            now = (self.trips, self.short_circuits, self.probes, self.probes_detached)
            d = [a - b for a, b in zip(now, self._popped)]
            self._popped = now
            is_open = self._state != "closed"
        return {"breaker_trips": float(d[0]), "short_circuits": float(d[1]), "breaker_probes": float(d[2]),
                "breaker_probes_detached": float(d[3]), "breaker_open": 1.0 if is_open else 0.0}
