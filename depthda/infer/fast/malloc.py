"""Keep freed memory inside the process, so the next frame's tensors do not fault it in again.

glibc hands blocks above its mmap threshold straight back to the kernel when they are freed, and
trims the top of its heaps whenever more than the trim threshold is free. A network's activations
are a few MB each and are freed every layer, so every frame faulted its pages in again: thousands
of page faults per frame (tests/test_fast.py counts them), a large share of the networks' CPU
time. Raising both thresholds keeps those blocks in malloc's heaps for reuse; the cost is up to the
trim threshold of idle memory held per heap, so only inference sets it
(depthda.infer.fast.prepare_cpu_process), not every command.

mallopt through ctypes rather than jemalloc/tcmalloc: those need LD_PRELOAD before the interpreter
starts, which a pip-installed CLI cannot arrange.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's upper limit on 64-bit systems (half its 64 MB heap size)
TRIM_THRESHOLD = 256 << 20

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (once per process); False where that is not possible
    (not Linux, or a C library without mallopt, e.g. musl)."""
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
                mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                # glibc returns 1 on success; musl's mallopt is a stub returning 0.
                _applied = (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                            and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
            except (OSError, AttributeError):
                _applied = False
    return _applied
