"""InferenceLoop: frames from an image source through the `InferenceEngine`, at a steady rate, on one thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from system.edge.image_source import ImageSource
from system.edge.inference import InferenceEngine
from system.errors import EdgesimError
from system.logs import fields

log = logging.getLogger(__name__)


class InferenceLoop:
    """A daemon thread feeding `source` frames to `engine` at `rate_hz` (0 pauses it).

    A frame is due every 1/rate seconds of `clock`; after a slow inference the next one starts at
    once rather than in a burst catching up. A failing source or engine is logged, counted in
    `errors`, and retried after a backoff that grows from 0.1 s to `max_backoff` while failures
    continue: the loop never dies silently. `stop()` returns at once, even mid-wait.
    `housekeeping` (the device's agent watch) runs on this thread before every frame and, while
    frames are far apart or paused, at least every `housekeeping_interval` seconds.
    """

    def __init__(
        self,
        engine: InferenceEngine,
        source: ImageSource,
        *,
        rate_hz: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        max_backoff: float = 5.0,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_interval: float = 1.0,
    ) -> None:
        self._engine = engine
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval
        self._source = source
        self._clock = clock
        self._max_backoff = max_backoff
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.rate_hz = rate_hz
        self.frames = 0  # frames inferred
        self.errors = 0  # frames lost to a source or engine failure
        self.last_error: str | None = None

    @property
    def rate_hz(self) -> float:
        return self._rate_hz

    @rate_hz.setter
    def rate_hz(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"rate_hz must be >= 0 (0 pauses), not {value}")
        self._rate_hz = float(value)
        self._wake.set()  # a paused or long-waiting loop picks the new rate up now

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (no-op if it is running)."""
        if self.running:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="edgesim-inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the frame in progress; True if the thread ended within `timeout`."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        rate = self._rate_hz
        next_due = self._clock()
        failures = 0
        while not self._stopping.is_set():
            self._housekeep()
            if self._rate_hz != rate:
                rate, next_due = self._rate_hz, self._clock()
            if rate <= 0:
                self._wait(None)
                continue
            delay = next_due - self._clock()
            if delay > 0:
                self._wait(delay)
                continue
            if self._step():
                failures = 0
                next_due = max(next_due + 1.0 / rate, self._clock())
            else:
                failures += 1
                backoff = min(self._max_backoff, 0.1 * 2 ** min(failures - 1, 16))
                next_due = self._clock() + max(backoff, 1.0 / rate)

    def _step(self) -> bool:
        """One frame through the engine; False (logged and counted) if the source or engine failed."""
        try:
            self._engine.infer(self._source.next_frame())
        except EdgesimError as exc:
            self._failed(exc)
            log.warning("inference loop step failed", extra=fields(error=str(exc), errors=self.errors))
            return False
        except Exception as exc:
            self._failed(exc)
            log.exception("inference loop step failed unexpectedly", extra=fields(errors=self.errors))
            return False
        self.frames += 1
        return True

    def _housekeep(self) -> None:
        if self._housekeeping is None:
            return
        try:
            self._housekeeping()
        except Exception:  # the loop outlives its housekeeping's bugs: logged, tried again next time
            log.exception("inference loop housekeeping failed")

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _wait(self, delay: float | None) -> None:
        if self._housekeeping is not None:
            delay = self._housekeeping_interval if delay is None else min(delay, self._housekeeping_interval)
        self._wake.wait(delay)
        self._wake.clear()
