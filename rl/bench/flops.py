"""How far the update is from the hardware: achieved model FLOPs/s against a matmul of the same dtype.

The update's work is counted as 6 x parameters x tokens (forward 2, backward 4 multiply-adds per
parameter and token; attention's own FLOPs are left out, a small share at these lengths), over the
real (unpadded) prompt + completion tokens of the step's batch, divided by the backward+optimizer
time of the benchmark's breakdown. The ceiling is a square matmul on this CPU with the same
threads and dtype: the best a dense layer can do here.
"""

from __future__ import annotations

import time
from typing import Any


def matmul_flops_per_s(threads: int, dtype: str = "float32", n: int = 1024, repeats: int = 10) -> float:
    """Best-of-``repeats`` FLOP/s of an [n, n] @ [n, n] matmul (2 n^3 FLOPs) with ``threads`` threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dt = getattr(torch, dtype)
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
        a @ b  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best
    finally:
        torch.set_num_threads(previous)


def update_flops(parameters: int, tokens: float, seconds: float) -> float:
    """Achieved FLOP/s of an update that processed ``tokens`` tokens in ``seconds``."""
    return 6.0 * parameters * tokens / seconds if seconds > 0 else float("nan")


def flops_report(parameters: int, ours: dict[str, Any], threads: int, dtype: str = "float32") -> dict[str, float]:
    """``ours``: a summarized benchmark entry (its breakdown and update tokens per step)."""
    achieved = update_flops(parameters, ours.get("update_tokens_per_step", float("nan")),
                            ours["breakdown"].get("backward_optimizer", float("nan")))
    peak = matmul_flops_per_s(threads, dtype)
    return {"update_gflops": achieved / 1e9, "matmul_gflops": peak / 1e9, "fraction_of_matmul": achieved / peak,
            "dtype": dtype, "threads": threads}
