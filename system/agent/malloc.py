"""glibc malloc tuning for processes that move large tensors through gRPC.

By default glibc serves allocations above 128 KB-32 MB (a threshold it adapts) with fresh mmap
calls and returns them on free, so every 600 KB request or response buffer is new memory and
costs a page fault per 4 KB page on first touch: about 150 faults and 0.3-2 ms per message on
the reference machine (BENCHMARKS.md). Raising the mmap threshold keeps such buffers on the heap,
where freed memory is reused, and raising the trim threshold stops the heap from being handed
back to the kernel after every request. The cost is resident memory that stays allocated (up to
the trim threshold) after a burst.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # the largest value glibc accepts on 64-bit
TRIM_THRESHOLD_BYTES = 128 << 20


def keep_large_buffers_on_heap() -> bool:
    """Apply the tuning to this process; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.info("malloc tuning skipped: not glibc")
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
