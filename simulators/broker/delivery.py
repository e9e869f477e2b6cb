"""How the simulated broker runs deliveries: serial lanes, on a virtual clock or on worker threads.

Every client has a `Lane`: a queue whose items run one at a time, in submission order, so a
client's handlers never run concurrently and see messages in the order the broker routed them.
Two executors run lanes:

- `ClockExecutor` (given a `VirtualClock`): each item gets a clock callback at now + delay (never
  before the lane's previous item), so nothing is delivered until the test advances the clock, and
  the run is deterministic.
- `ThreadedExecutor` (wall time): a small pool of worker threads takes ready lanes and drains them
  in batches; a delayed item waits on one timer thread. No thread per message or per client: a
  fleet of a thousand clients shares the pool.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Protocol

from system.ports import Clock, Timer

log = logging.getLogger(__name__)

_BATCH = 256  # items a worker runs from one lane before giving the others a turn


class Lane:
    """One client's serial queue; `run_item(item)` is called for each item, never concurrently."""

    __slots__ = ("delayed", "last_due", "mailbox", "name", "run_item", "scheduled")

    def __init__(self, name: str, run_item: Callable[[object], None]) -> None:
        self.name = name
        self.run_item = run_item
        self.mailbox: deque[object] = deque()
        self.scheduled = False
        self.delayed = 0  # items waiting on a timer (ThreadedExecutor)
        self.last_due = 0.0  # the latest due time given to an item of this lane


class Executor(Protocol):
    def now(self) -> float: ...

    def submit(self, lane: Lane, item: object, delay: float = 0.0) -> None:
        """Run `lane.run_item(item)` after `delay` seconds, after every item submitted before."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...

    def close(self) -> None: ...


class ClockExecutor:
    """Lanes on a clock: items are clock callbacks, run by whoever advances the clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock.now()

    def submit(self, lane: Lane, item: object, delay: float = 0.0) -> None:
        with self._lock:
            now = self._clock.now()
            due = max(now + delay, lane.last_due)  # never earlier than an earlier item of the lane
            lane.last_due = due
            lane.mailbox.append(item)
            # Each callback runs the lane's oldest item, not "its" item: the clock re-adds `due - now`
            # to its own time, and a rounding ulp must not let a later item overtake.
            self._clock.call_later(due - now, partial(self._run_next, lane))

    @staticmethod
    def _run_next(lane: Lane) -> None:
        lane.run_item(lane.mailbox.popleft())

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self._clock.call_later(delay, callback)

    def close(self) -> None:
        """Nothing to stop: pending callbacks stay on the clock and find their connections closed."""


class _TimerEntry:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ThreadedExecutor:
    """Lanes on `workers` threads plus one timer thread; wall-clock time."""

    def __init__(self, workers: int = 4, name: str = "broker") -> None:
        self._name = name
        self._ready: deque[Lane] = deque()
        self._ready_cond = threading.Condition()
        self._timers: list[tuple[float, int, _TimerEntry]] = []
        self._timer_cond = threading.Condition()
        self._sequence = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-worker-{i}", daemon=True) for i in range(workers)
        ]
        self._threads.append(threading.Thread(target=self._run_timers, name=f"{name}-timers", daemon=True))
        for thread in self._threads:
            thread.start()

    def now(self) -> float:
        return time.time()

    def submit(self, lane: Lane, item: object, delay: float = 0.0) -> None:
        if delay <= 0 and not lane.delayed:
            lane.mailbox.append(item)
            if not lane.scheduled:
                self._schedule(lane)
            return
        with self._timer_cond:
            due = max(time.monotonic() + delay, lane.last_due)
            lane.last_due = due
            lane.delayed += 1
            self._push_timer(due, _TimerEntry(partial(self._release, lane, item)))

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        entry = _TimerEntry(callback)
        with self._timer_cond:
            self._push_timer(time.monotonic() + max(delay, 0.0), entry)
        return entry

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads; items not yet run are dropped."""
        with self._ready_cond:
            self._closed = True
            self._ready_cond.notify_all()
        with self._timer_cond:
            self._timer_cond.notify_all()
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(timeout)

    def _push_timer(self, due: float, entry: _TimerEntry) -> None:  # caller holds _timer_cond
        heapq.heappush(self._timers, (due, next(self._sequence), entry))
        if self._timers[0][2] is entry:
            self._timer_cond.notify()

    def _release(self, lane: Lane, item: object) -> None:
        lane.mailbox.append(item)
        with self._timer_cond:
            lane.delayed -= 1  # after the append: a fast-path submit must not overtake this item
        if not lane.scheduled:
            self._schedule(lane)

    def _schedule(self, lane: Lane) -> None:
        with self._ready_cond:
            if lane.scheduled:
                return
            lane.scheduled = True
            self._ready.append(lane)
            self._ready_cond.notify()

    def _work(self) -> None:
        while True:
            with self._ready_cond:
                while not self._ready and not self._closed:
                    self._ready_cond.wait()
                if self._closed:
                    return
                lane = self._ready.popleft()
            self._drain(lane)

    def _drain(self, lane: Lane) -> None:
        mailbox, run_item = lane.mailbox, lane.run_item
        for _ in range(_BATCH):
            try:
                item = mailbox.popleft()
            except IndexError:
                break
            try:
                run_item(item)
            except Exception:  # a worker must survive whatever an item does: report, go on
                log.exception("%s: delivery to %s failed", self._name, lane.name)
        lane.scheduled = False
        if mailbox:  # items arrived after the last pop: whoever appended them may have seen scheduled
            self._schedule(lane)

    def _run_timers(self) -> None:
        while True:
            with self._timer_cond:
                while not self._closed:
                    if self._timers and self._timers[0][0] <= time.monotonic():
                        break
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._timer_cond.wait(timeout)
                if self._closed:
                    return
                _, _, entry = heapq.heappop(self._timers)
            if entry.cancelled:
                continue
            try:
                entry.callback()
            except Exception:  # the timer thread serves every client: report, go on
                log.exception("%s: timer callback failed", self._name)
