"""The grader pool: :class:`MathGrader` grades many (completion, ground truth) pairs in
worker processes with a hard per-item timeout.

Workers are fresh interpreters (the spawn model: nothing is forked from the caller, which
may hold torch/CUDA state, and unlike ``multiprocessing``'s spawn the caller's ``__main__`` is
*not* re-imported in them, so a training script's top-level ``import torch`` is not paid per
worker). Each runs :func:`rewards.grader_worker.worker_main`, which grades with
:func:`rewards.equivalence.grade_one`.
They talk to the parent over ``multiprocessing.connection`` pipes, start lazily once and are
reused. :func:`get_default_grader` is the process-wide shared pool per grading mode.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait as _mp_wait
from typing import Any, Sequence

from rewards.answers import completion_text, normalize_ground_truth

# workers spawned by code loaded before the worker moved to rewards.grader_worker run
# ``from rewards.grader_pool import _worker_main``: keep that import working
from rewards.grader_worker import worker_main as _worker_main  # noqa: F401

logger = logging.getLogger(__name__)

__all__ = ["STATUSES", "GradeResult", "MathGrader", "get_default_grader"]

STATUSES = ("correct", "wrong", "no_answer", "timeout", "error")


# ---------------------------------------------------------------------------------------
# The pool
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradeResult:
    score: float
    extracted: str | None
    status: str  # correct | wrong | no_answer | timeout | error
    seconds: float = 0.0  # time the item held a worker

    @property
    def correct(self) -> bool:
        return self.status == "correct"


class _Worker:
    __slots__ = ("proc", "conn", "ready", "inflight", "item_started", "spawned_at")

    def __init__(self, proc: subprocess.Popen, conn: Connection):
        self.proc = proc
        self.conn = conn
        self.ready = False
        self.inflight: collections.deque = collections.deque()  # (idx, completion, gt)
        self.item_started = 0.0
        self.spawned_at = time.monotonic()


_LIVE_GRADERS: "weakref.WeakSet[MathGrader]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False
_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _close_all_graders() -> None:
    for g in list(_LIVE_GRADERS):
        try:
            g.close()
        except Exception:
            pass


class MathGrader:
    """Grades completions against ground truths in a pool of worker processes.

    Each item gets ``timeout`` seconds: a SIGALRM inside the worker interrupts sympy at
    ``timeout`` (status ``"timeout"``, the worker lives on), and a worker that has not
    answered by ``timeout + kill_grace`` (stuck in C code, or ``soft_timeout=False``) is
    killed and replaced; its item is a ``"timeout"`` and the rest of its chunk goes to
    another worker. A worker that dies marks its current item ``"error"``. ``grade`` never
    raises for bad inputs and never waits longer than the per-item limits allow (plus
    worker start-up).

    Items go to workers in chunks (one pipe message per chunk, one small reply per item).
    Workers start on the first ``grade`` (or :meth:`start`) and are reused; ``close()``
    (also on ``with`` exit, garbage collection and interpreter exit) stops them.
    ``stats`` counts spawned / killed workers and the longest time an item held one.
    """

    def __init__(
        self,
        num_workers: int = 2,
        timeout: float = 1.0,
        mode: str = "math",
        *,
        chunk_size: int | None = None,
        soft_timeout: bool = True,
        kill_grace: float = 0.5,
        startup_timeout: float = 120.0,
    ):
        if mode not in ("math", "choice"):
            raise ValueError(f"mode must be 'math' or 'choice', got {mode!r}")
        if num_workers < 1:
            raise ValueError("num_workers must be >= 1")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.num_workers = int(num_workers)
        self.timeout = float(timeout)
        self.mode = mode
        self.chunk_size = chunk_size
        self.soft_timeout = bool(soft_timeout)
        self.kill_grace = float(kill_grace) if soft_timeout else 0.0
        self.startup_timeout = float(startup_timeout)
        self.stats: dict[str, float] = {"spawned": 0, "killed": 0, "died": 0, "max_item_seconds": 0.0}
        self._workers: list[_Worker] = []
        self._lock = threading.RLock()
        self._closed = False
        self._owner_pid = os.getpid()
        self._startup_failures = 0

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> "MathGrader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _spawn(self) -> _Worker:
        global _ATEXIT_REGISTERED
        parent_sock, child_sock = socket.socketpair()
        child_fd = child_sock.fileno()
        env = dict(os.environ)
        env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # PR_SET_PDEATHSIG fires when the *thread* that started the worker ends: only the
        # main thread lives as long as the process (others: EOF on the pipe ends workers)
        die_with_parent = threading.current_thread() is threading.main_thread()
        code = f"from rewards.grader_worker import worker_main; worker_main({child_fd}, {os.getpid()}, {die_with_parent})"
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                pass_fds=(child_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            child_sock.close()
        w = _Worker(proc, Connection(parent_sock.detach()))
        self._workers.append(w)
        self.stats["spawned"] += 1
        _LIVE_GRADERS.add(self)
        if not _ATEXIT_REGISTERED:
            atexit.register(_close_all_graders)
            _ATEXIT_REGISTERED = True
        return w

    def _discard(self, w: _Worker, kill: bool = True) -> None:
        if w in self._workers:
            self._workers.remove(w)
        try:
            w.conn.close()
        except Exception:
            pass
        if kill and w.proc.poll() is None:
            try:
                w.proc.kill()
            except Exception:
                pass
        try:
            w.proc.wait(timeout=5)
        except Exception:
            pass

    def _check_owner(self) -> None:
        if os.getpid() != self._owner_pid:  # we are a fork of the owner: its workers aren't ours
            self._workers = []
            self._owner_pid = os.getpid()
            self._closed = False

    def start(self, wait: bool = True) -> "MathGrader":
        """Starts the workers now (otherwise the first ``grade`` does); ``wait`` for them."""
        with self._lock:
            self._check_owner()
            if self._closed:
                raise RuntimeError("MathGrader is closed")
            while len(self._workers) < self.num_workers:
                self._spawn()
            if wait:
                deadline = time.monotonic() + self.startup_timeout
                while any(not w.ready for w in self._workers) and time.monotonic() < deadline:
                    if self._startup_failures >= 3:
                        logger.error("grader workers fail to start (see their stderr above)")
                        break
                    pending = [w for w in self._workers if not w.ready]
                    for c in _mp_wait([w.conn for w in pending], timeout=0.5):
                        w = next(x for x in pending if x.conn is c)
                        self._read(w, None)
        return self

    def close(self) -> None:
        with self._lock:
            if os.getpid() != self._owner_pid:
                self._workers = []
                return
            self._closed = True
            workers, self._workers = self._workers, []
            for w in workers:
                try:
                    w.conn.close()  # idle workers see EOF and exit
                except Exception:
                    pass
            deadline = time.monotonic() + 1.0
            for w in workers:
                try:
                    w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:
                    pass
                if w.proc.poll() is None:
                    try:
                        w.proc.kill()
                        w.proc.wait(timeout=5)
                    except Exception:
                        pass
            _LIVE_GRADERS.discard(self)

    # -- grading -----------------------------------------------------------------------

    def grade(
        self, completions: Sequence[Any], ground_truths: Sequence[Any], *, timeout: float | None = None
    ) -> list[GradeResult]:
        """One :class:`GradeResult` per (completion, ground truth), in order. ``timeout``
        overrides the grader's per-item timeout for this call."""
        if len(completions) != len(ground_truths):
            raise ValueError(f"{len(completions)} completions but {len(ground_truths)} ground truths")
        n = len(completions)
        if n == 0:
            return []
        items = []
        for i, (c, g) in enumerate(zip(completions, ground_truths)):
            if not isinstance(c, str):
                c = completion_text(c)
            items.append((i, c, normalize_ground_truth(g)))  # a str, a list of accepted answers, or None
        with self._lock:
            self._check_owner()
            if self._closed:
                raise RuntimeError("MathGrader is closed")
            return self._grade_items(items, self.timeout if timeout is None else float(timeout))

    def _read(self, w: _Worker, batch: "_Batch | None") -> None:
        """Drains ``w``'s pipe; on EOF the worker is dead and handled as such."""
        try:
            while w.conn.poll(0):
                msg = w.conn.recv()
                if msg[0] == "ready":
                    w.ready = True
                    self._startup_failures = 0
                    continue
                idx, score, extracted, status, secs = msg
                if w.inflight and w.inflight[0][0] == idx:
                    w.inflight.popleft()
                w.item_started = time.monotonic()
                if batch is not None:
                    batch.set(idx, GradeResult(score, extracted, status, secs))
                if secs > self.stats["max_item_seconds"]:
                    self.stats["max_item_seconds"] = secs
        except (EOFError, OSError):
            if not w.ready:
                self._startup_failures += 1
            self.stats["died"] += 1
            self._fail_head(w, batch, "error")

    def _fail_head(self, w: _Worker, batch: "_Batch | None", status: str) -> None:
        """Current item of ``w`` gets ``status``, the rest of its chunk is requeued, ``w`` is
        replaced."""
        if w.inflight:
            idx = w.inflight.popleft()[0]
            held = time.monotonic() - w.item_started
            if batch is not None:
                batch.set(idx, GradeResult(0.0, None, status, held))
            self.stats["max_item_seconds"] = max(self.stats["max_item_seconds"], held)
        if w.inflight:
            if batch is not None:
                batch.pending.appendleft(list(w.inflight))
            w.inflight.clear()
        self._discard(w)
        if not self._closed and len(self._workers) < self.num_workers:
            self._spawn()

    def _grade_items(self, items: list[tuple[int, str, str | None]], timeout: float) -> list[GradeResult]:
        n = len(items)
        size = self.chunk_size or max(1, min(64, -(-n // (self.num_workers * 4))))
        batch = _Batch(n, [items[i : i + size] for i in range(0, n, size)])
        for w in list(self._workers):  # workers that died while idle (killed from outside)
            if w.proc.poll() is not None:
                self.stats["died"] += 1
                self._discard(w, kill=False)
        while len(self._workers) < self.num_workers:
            self._spawn()
        hard = timeout + self.kill_grace
        soft = timeout if self.soft_timeout else 0.0
        while batch.remaining > 0:
            if self._startup_failures >= 3:
                logger.error("grader workers fail to start; %d items marked as errors", batch.remaining)
                for w in list(self._workers):
                    self._discard(w)
                self._startup_failures = 0
                break
            # dispatch to idle ready workers (never to a busy one: a big message could block
            # us on a worker that is stuck and about to be killed)
            for w in list(self._workers):
                if w.ready and not w.inflight and batch.pending:
                    if w.proc.poll() is not None:  # died while idle: nothing of ours was lost
                        self.stats["died"] += 1
                        self._fail_head(w, batch, "error")
                        continue
                    chunk = batch.pending.popleft()
                    w.inflight.extend(chunk)
                    w.item_started = time.monotonic()
                    try:
                        w.conn.send((self.mode, soft, chunk))
                    except (OSError, EOFError, ValueError):
                        w.inflight.clear()
                        batch.pending.appendleft(chunk)
                        self.stats["died"] += 1
                        self._fail_head(w, batch, "error")
            # sleep until a message, the next item deadline or a start-up deadline
            now = time.monotonic()
            wake = now + 1.0
            for w in self._workers:
                if w.inflight:
                    wake = min(wake, w.item_started + hard)
                elif not w.ready:
                    wake = min(wake, w.spawned_at + self.startup_timeout)
            conns = [w.conn for w in self._workers]
            if not conns:
                break
            for c in _mp_wait(conns, timeout=max(0.0, wake - now)):
                w = next((x for x in self._workers if x.conn is c), None)
                if w is not None:
                    self._read(w, batch)
            now = time.monotonic()
            for w in list(self._workers):
                if w.inflight and now >= w.item_started + hard:
                    self._read(w, batch)  # it may have answered just now
                    if w in self._workers and w.inflight and time.monotonic() >= w.item_started + hard:
                        self.stats["killed"] += 1
                        self._fail_head(w, batch, "timeout")
                elif not w.ready and now >= w.spawned_at + self.startup_timeout:
                    self._startup_failures += 1
                    self._discard(w)
                    self._spawn()
        return [r if r is not None else GradeResult(0.0, None, "error") for r in batch.results]


class _Batch:
    __slots__ = ("results", "remaining", "pending")

    def __init__(self, n: int, chunks: list):
        self.results: list[GradeResult | None] = [None] * n
        self.remaining = n
        self.pending: collections.deque = collections.deque(chunks)

    def set(self, idx: int, result: GradeResult) -> None:
        if self.results[idx] is None:
            self.results[idx] = result
            self.remaining -= 1


_DEFAULT_GRADERS: dict[str, MathGrader] = {}
_DEFAULT_LOCK = threading.Lock()


def get_default_grader(mode: str = "math") -> MathGrader:
    """The process-wide shared grader for ``mode`` (created on first use). Workers and
    timeout come from ``PARSIMONY_GRADER_WORKERS`` (default 2) and
    ``PARSIMONY_GRADER_TIMEOUT`` (default 1.0 s)."""
    with _DEFAULT_LOCK:
        g = _DEFAULT_GRADERS.get(mode)
        if g is None or g._closed or g._owner_pid != os.getpid():
            g = MathGrader(
                num_workers=int(os.environ.get("PARSIMONY_GRADER_WORKERS", "2")),
                timeout=float(os.environ.get("PARSIMONY_GRADER_TIMEOUT", "1.0")),
                mode=mode,
            )
            _DEFAULT_GRADERS[mode] = g
        return g
