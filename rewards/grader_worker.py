"""A grader worker process of :class:`rewards.grader_pool.MathGrader`: a fresh interpreter
(``python -c "from rewards.grader_worker import worker_main; worker_main(fd, parent_pid, ...)"``)
that grades the items its parent sends over a ``multiprocessing.connection`` pipe with
:func:`rewards.equivalence.grade_one`, one at a time, under a SIGALRM soft timeout.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing.connection import Connection

from rewards.equivalence import grade_one, load_math_verify

__all__ = ["MAX_REPORTED_EXTRACTED", "worker_main"]

# ``GradeResult.extracted`` is cut to this many characters (it crosses a pipe).
MAX_REPORTED_EXTRACTED = 2_000


class _SoftTimeout(BaseException):
    """Raised by SIGALRM inside a worker. BaseException: ``except Exception`` won't eat it."""


def _on_alarm(signum, frame):
    raise _SoftTimeout()


def _set_parent_death_signal() -> None:
    """Linux: the worker is SIGKILLed when the parent (thread) dies, even while stuck in C
    code. Idle workers also exit on EOF when the parent goes away."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def worker_main(fd: int, parent_pid: int, die_with_parent: bool = True) -> None:
    """Entry point of a grader worker (``python -c``). Protocol over the connection:
    parent -> ``(mode, soft_timeout_or_0, [(idx, completion, gt), ...])`` or None;
    worker -> ``("ready", pid)`` once, then ``(idx, score, extracted, status, seconds)``
    per item, in order."""
    import signal
    import warnings

    warnings.filterwarnings("ignore")
    if die_with_parent:
        _set_parent_death_signal()
    if os.getppid() != parent_pid:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    signal.signal(signal.SIGALRM, _on_alarm)
    conn = Connection(fd)
    try:
        load_math_verify()
        grade_one("so \\boxed{\\frac{1}{2}}", "0.5")  # warm sympy / latex2sympy up
        grade_one("so \\boxed{(1, 2)}", "(1,2]")
    except Exception:
        pass
    try:
        conn.send(("ready", os.getpid()))
    except (EOFError, OSError):
        return
    perf = time.perf_counter
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        mode, soft, items = msg
        for idx, completion, gt in items:
            t0 = perf()
            try:
                try:
                    if soft:
                        signal.setitimer(signal.ITIMER_REAL, soft)
                    score, extracted, status = grade_one(completion, gt, mode)
                finally:
                    if soft:
                        signal.setitimer(signal.ITIMER_REAL, 0)
            except _SoftTimeout:
                score, extracted, status = 0.0, None, "timeout"
            except Exception:
                score, extracted, status = 0.0, None, "error"
            if extracted is not None and len(extracted) > MAX_REPORTED_EXTRACTED:
                extracted = extracted[:MAX_REPORTED_EXTRACTED]
            try:
                conn.send((idx, score, extracted, status, perf() - t0))
            except (EOFError, OSError):
                return
