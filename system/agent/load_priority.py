"""While a model loads, the GIL changes hands every 0.5 ms instead of every 5 ms.

Why: loading a SavedModel is mostly Python (rebuilding the object graph, importing function
graphs) on a thread of the agent's process. A Predict needs the GIL several times on its way
through gRPC, the servicer and TensorFlow, and a thread that wants the GIL from a busy one waits
up to the switch interval (5 ms by default) each time. Under steady traffic a load raised Predict
p99 3.3-4.4x on the reference machine; with the interval at 0.5 ms during loads, 2-3x, which is
what the same load costs when it runs in another process (BENCHMARKS.md, "Swap under load": the
rest is competition for the two cores, which no change inside the agent removes).
Tried and dropped: a loading thread that naps while Predicts are in flight (no better once the
hand-off is fast, and loads took 1.8x longer), a lower OS priority for the loading thread.

The interval is process-wide: it is set when the first of any concurrent loads starts and put
back when the last one ends, so between loads the process runs with the interval it had.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_loads = 0
_saved_interval: float | None = None  # the interval to put back, when a load lowered it


@contextmanager
def fast_gil_handoff(interval_s: float) -> Iterator[None]:
    """Run the block with the GIL switch interval at `interval_s` (0: leave it as it is)."""
    if interval_s <= 0:
        yield
        return
    _enter(interval_s)
    try:
        yield
    finally:
        _leave()


def _enter(interval_s: float) -> None:
    global _loads, _saved_interval
    with _lock:
        if _loads == 0:
            current = sys.getswitchinterval()
            _saved_interval = None
            if interval_s < current:  # never raise an interval someone already lowered
                _saved_interval = current
                sys.setswitchinterval(interval_s)
        _loads += 1


def _leave() -> None:
    global _loads
    with _lock:
        _loads -= 1
        if _loads == 0 and _saved_interval is not None:
            # Python keeps whole microseconds and truncates: half a microsecond more restores the value exactly.
            sys.setswitchinterval(_saved_interval + 0.5e-6)
