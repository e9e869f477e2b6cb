"""The wall clock behind the `Clock` port (simulators/clock.py has the virtual one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class _ThreadTimer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self._timer = threading.Timer(max(delay, 0.0), callback)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


class WallClock:
    """Real time: `time.time()`, and one daemon timer thread per pending callback."""

    def now(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> _ThreadTimer:
        return _ThreadTimer(delay, callback)
