"""VirtualClock: simulated time that only moves when a test moves it."""

from __future__ import annotations

import threading

import pytest

from simulators.clock import DEFAULT_START, VirtualClock
from system.errors import EdgesimError


def test_starts_at_a_fixed_epoch_and_stands_still() -> None:
    clock = VirtualClock()
    assert clock.now() == DEFAULT_START
    assert VirtualClock(start=100.0).now() == 100.0


def test_callbacks_fire_in_due_order_and_ties_in_scheduling_order() -> None:
    clock, fired = VirtualClock(start=0.0), []
    for name, delay in [("c", 3.0), ("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("b3", 2.0)]:
        clock.call_later(delay, lambda name=name: fired.append((name, clock.now())))

    assert clock.advance(2.5) == 4
    assert fired == [("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("b3", 2.0)]
    assert clock.now() == 2.5
    clock.advance(1.0)
    assert fired[-1] == ("c", 3.0)


def test_callbacks_may_schedule_more_and_those_fire_within_the_same_advance() -> None:
    clock, fired = VirtualClock(start=0.0), []

    def tick() -> None:
        fired.append(clock.now())
        clock.call_later(1.0, tick)

    clock.call_later(1.0, tick)
    clock.advance(5.0)

    assert fired == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert clock.pending == 1


def test_cancelled_timer_never_fires() -> None:
    clock, fired = VirtualClock(), []
    timer = clock.call_later(1.0, lambda: fired.append("x"))
    timer.cancel()
    assert clock.advance(2.0) == 0
    assert fired == [] and clock.pending == 0


def test_negative_delay_fires_now_and_time_never_goes_back() -> None:
    clock, fired = VirtualClock(start=10.0), []
    clock.call_later(-5.0, lambda: fired.append(clock.now()))
    clock.advance(0.0)
    assert fired == [10.0]
    with pytest.raises(EdgesimError):
        clock.advance(-1.0)


def test_run_until_idle_stops_at_the_last_callback_and_respects_its_limit() -> None:
    clock, fired = VirtualClock(start=0.0), []
    clock.call_later(5.0, lambda: fired.append(5))
    clock.call_later(50.0, lambda: fired.append(50))

    assert clock.run_until_idle(max_seconds=10.0) == 1
    assert clock.now() == 5.0 and fired == [5]
    assert clock.run_until_idle() == 1
    assert clock.now() == 50.0 and clock.next_due() is None


def test_a_zero_delay_loop_is_reported_instead_of_spinning() -> None:
    clock = VirtualClock()

    def again() -> None:
        clock.call_later(0.0, again)

    clock.call_later(0.0, again)
    with pytest.raises(EdgesimError, match="timer loop"):
        clock.advance(1.0, max_callbacks=100)


def test_a_failing_callback_propagates_and_the_rest_stay_scheduled() -> None:
    clock, fired = VirtualClock(start=0.0), []

    def boom() -> None:
        raise ValueError("callback bug")

    clock.call_later(1.0, boom)
    clock.call_later(2.0, lambda: fired.append(clock.now()))
    with pytest.raises(ValueError, match="callback bug"):
        clock.advance(3.0)
    assert clock.now() == 1.0
    clock.advance(2.0)
    assert fired == [2.0]


def test_registration_from_many_threads_is_safe() -> None:
    clock, fired = VirtualClock(start=0.0), []
    lock = threading.Lock()

    def record() -> None:
        with lock:
            fired.append(1)

    def register() -> None:
        for index in range(500):
            clock.call_later(index / 100, record)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert clock.advance(10.0) == 2000
    assert len(fired) == 2000
