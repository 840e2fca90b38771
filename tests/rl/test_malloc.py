"""rl/malloc.py: with glibc's thresholds fixed, a tensor that grows a little each step reuses the heap instead
of being mapped and faulted in afresh (the page faults are counted, not timed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

GROW = """
import json, resource, sys
import torch
from rl.malloc import tune_malloc
tuned = tune_malloc()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
n = 2_000_000  # 8 MB of float32, growing by 16 kB a step, like a KV cache one token longer per step
keep = None
for step in range(150):
    t = torch.ones(n + 4096 * step)  # written: every page is touched
    keep = t
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _grow(tune: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), PARSIMONY_MALLOC_TUNE=tune, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", GROW], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_growing_tensors_reuse_the_heap_once_tuned_and_the_setting_turns_it_off():
    off, on = _grow("0"), _grow("1")
    assert off["tuned"] is False and on["tuned"] is True
    # untuned: each new block is larger than the freed one, so it is mapped afresh: ~2,000 pages a step
    assert off["faults"] > 150 * 1000
    assert on["faults"] * 10 < off["faults"], (on, off)


def test_tune_malloc_is_called_once_per_process(monkeypatch):
    from rl import malloc

    malloc.tune_malloc.cache_clear()
    try:
        monkeypatch.setenv("PARSIMONY_MALLOC_TUNE", "0")
        assert malloc.tune_malloc() is False
        monkeypatch.setenv("PARSIMONY_MALLOC_TUNE", "1")
        assert malloc.tune_malloc() is False  # the first answer stands: the thresholds are per process
    finally:
        malloc.tune_malloc.cache_clear()
