"""VirtualClock: the `Clock` port on simulated time that tests and scenarios move by hand.

Nothing happens until someone calls `advance()` or `run_until_idle()`: due callbacks then fire on
that caller's thread, in due-time order (ties in scheduling order), and `now()` reads each
callback's due time while it runs, so a callback that schedules `call_later(d, ...)` gets a
deadline relative to its own firing time. Simulated hours take as long as their callbacks.

Limits: callbacks never run concurrently and never on a thread of their own (a callback that
blocks waiting for another callback deadlocks); an exception raised by a callback propagates out
of `advance()` with the clock standing at that callback's due time (the remaining callbacks stay
scheduled); `call_later` from any thread is safe, `advance` from several threads is serialised.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

from system.errors import EdgesimError

DEFAULT_START = 1_700_000_000.0  # 2023-11-14T22:13:20Z: a fixed epoch, so runs are reproducible


class VirtualTimer:
    """A callback scheduled on a `VirtualClock`; `cancel()` before it fires and it never will."""

    __slots__ = ("_callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self._callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def _fire(self) -> None:
        self._callback()


class VirtualClock:
    """Simulated epoch time (starts at `start`), advanced explicitly; implements `Clock`."""

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)
        self._heap: list[tuple[float, int, VirtualTimer]] = []
        self._sequence = itertools.count()
        self._lock = threading.Lock()  # guards _now and _heap
        self._advancing = threading.RLock()  # one advance at a time; a callback may advance again

    def now(self) -> float:
        with self._lock:
            return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> VirtualTimer:
        """Schedule `callback` at now + max(delay, 0); it runs inside a later `advance()`."""
        with self._lock:
            timer = VirtualTimer(self._now + max(delay, 0.0), callback)
            heapq.heappush(self._heap, (timer.due, next(self._sequence), timer))
        return timer

    @property
    def pending(self) -> int:
        """How many scheduled callbacks have neither fired nor been cancelled."""
        with self._lock:
            return sum(1 for _, _, timer in self._heap if not timer.cancelled)

    def next_due(self) -> float | None:
        """The due time of the earliest pending callback, or None when nothing is scheduled."""
        with self._lock:
            self._drop_cancelled()
            return self._heap[0][0] if self._heap else None

    def advance(self, seconds: float, *, max_callbacks: int = 1_000_000) -> int:
        """Move time forward by `seconds`, firing every callback due by then; returns how many fired.

        Callbacks scheduled by callbacks fire too if they fall due within the window. More than
        `max_callbacks` firings means a callback keeps rescheduling itself at zero delay: that
        raises `EdgesimError` rather than spinning forever.
        """
        if seconds < 0:
            raise EdgesimError(f"a VirtualClock cannot go backwards ({seconds} s)")
        with self._advancing:
            with self._lock:
                target = self._now + seconds
            fired = 0
            while (timer := self._pop_due(target)) is not None:
                fired += 1
                if fired > max_callbacks:
                    raise EdgesimError(f"more than {max_callbacks} callbacks in one advance: a timer loop?")
                timer._fire()
            with self._lock:
                self._now = max(self._now, target)
            return fired

    def run_until_idle(self, max_seconds: float = 3600.0, *, max_callbacks: int = 1_000_000) -> int:
        """Fire callbacks in order until none is left, moving at most `max_seconds` ahead.

        Time stops at the last fired callback's due time (not at `max_seconds`) when the clock goes
        idle earlier; returns how many callbacks fired.
        """
        with self._advancing:
            with self._lock:
                limit = self._now + max_seconds
            fired = 0
            while (due := self.next_due()) is not None and due <= limit:
                fired += self.advance(max(due - self.now(), 0.0), max_callbacks=max_callbacks - fired)
            return fired

    def _pop_due(self, target: float) -> VirtualTimer | None:
        with self._lock:
            self._drop_cancelled()
            if not self._heap or self._heap[0][0] > target:
                return None
            due, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, due)
            return timer

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
