"""glibc's allocator settings for CPU training and decoding.

glibc serves a large request (above a threshold) with its own ``mmap`` and returns it with ``munmap`` when freed;
after such a free it raises the threshold to the freed size. A tensor that grows by a little each step, as a
KV cache does (one token longer per decoding step, every layer), is always a little larger than the last freed
block, so it is mapped fresh every time and every page of it is faulted in and zeroed by the kernel. Measured on
SmolLM2-135M (32 sequences x 192 sampled tokens, one thread, two runs each, ``scripts/bench_malloc.py`` and
``docs/performance.md``): 4.8-10.7 M page faults and 15-33 s of system time in a 145-158-s decode; with the
thresholds fixed, 0.15 M faults, 0.5 s and 120-129 s, with the same tokens. The faults also slow the other core: a
trainer beside such a decode ran 20x slower.

:func:`tune_malloc` fixes the mmap threshold at 32 MiB (the largest glibc accepts; larger blocks are still mapped)
and keeps up to 1 GiB of freed memory at the top of the heap instead of returning it. The parsimony commands, the
trainers and ``parsimony eval`` call it; ``PARSIMONY_MALLOC_TUNE=0`` turns it off. It does nothing where the C
library is not glibc.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper bound for a fixed threshold on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.cache
def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once); True when they are set."""
    if os.environ.get("PARSIMONY_MALLOC_TUNE", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt ignores these parameters
    except (OSError, AttributeError):
        return False
    return libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
