"""Device telemetry: structured entries published in batches on `edgesim/<thing>/telemetry/<kind>`.

The seed's logger published from the caller's thread, silently dropped entries when its lock was
busy, and deadlocked forever after two failed publishes. Here the caller's `record()` only appends
to a bounded buffer under a short lock and never waits for the network; one daemon thread publishes.
When the buffer is full the oldest entry goes and `dropped` says how many went, so loss is visible
(every batch carries `dropped_total`). A failed publish keeps its batch and is retried with
exponential backoff; the worker thread survives any error the bus raises.

Topic: `edgesim/<thing>/telemetry/<kind>` (kind: "logs", "metrics", "ota", "inference"...). Payload,
JSON: {"thing", "kind", "sent_at" (epoch s), "entries": [...], "dropped_total"}. Each entry gets a
"ts" (epoch s) when it has none. A payload stays under `max_payload_bytes` (AWS IoT Core's 128 KiB
message limit) by sending fewer entries; a single entry too big alone is replaced by a stub.
"""

from __future__ import annotations

import json
import logging
import reprlib
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from system.errors import EdgesimError
from system.logs import record_entry
from system.ports import Clock, MessageBus

log = logging.getLogger(__name__)

TOPIC_PREFIX = "edgesim"
MAX_PAYLOAD_BYTES = 128 * 1024  # AWS IoT Core: maximum MQTT message payload
_FORBIDDEN = ("/", "+", "#", "\0")  # MQTT 3.1.1 section 4.7: separators and wildcards

# (sequence number, monotonic time queued, entry): the sequence orders entries across kinds, so
# "oldest" is well defined for dropping and `flush()` knows which entries it waits for.
_Entry = tuple[int, float, dict[str, Any]]


def telemetry_topic(thing: str, kind: str) -> str:
    return f"{TOPIC_PREFIX}/{thing}/telemetry/{kind}"


def validate_topic_level(value: str, what: str) -> str:
    """One MQTT topic level: not empty, no '/', no wildcard. Raises ValueError otherwise."""
    if not value or any(char in value for char in _FORBIDDEN):
        raise ValueError(f"{what} {value!r} is not a single MQTT topic level (empty, '/', '+', '#')")
    return value


class TelemetryPublisher:
    """Buffers telemetry entries and publishes them in batches from its own daemon thread.

    A kind's entries are published when `batch_size` of them wait, when its oldest has waited
    `flush_interval` seconds, or on `flush()`/`close()`. At most `buffer_size` entries wait (plus
    the one batch being published); beyond that the oldest entry of any kind is dropped. Retries
    wait `retry_delay[0]` seconds, doubling up to `retry_delay[1]`; `flush()` cuts a wait short.
    The thread starts in the constructor; `close()` stops it. Thread-safe.
    """

    def __init__(
        self,
        bus: MessageBus,
        thing: str,
        *,
        buffer_size: int = 1000,
        batch_size: int = 50,
        flush_interval: float = 5.0,
        qos: int = 1,
        retry_delay: tuple[float, float] = (0.5, 30.0),
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        clock: Clock | None = None,
    ) -> None:
        if not 1 <= batch_size <= buffer_size or flush_interval <= 0 or qos not in (0, 1):
            raise ValueError("need 1 <= batch_size <= buffer_size, flush_interval > 0, qos 0 or 1")
        self.thing = validate_topic_level(thing, "thing")
        self._bus = bus
        self._buffer_size = buffer_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._qos = qos
        self._retry_delay = retry_delay
        self._max_payload_bytes = max_payload_bytes
        self._clock = clock
        self._kinds: set[str] = set()  # validated kinds (validation is off record()'s fast path)
        self._cond = threading.Condition(threading.Lock())
        self._queues: dict[str, deque[_Entry]] = {}  # only non-empty queues, in first-use order
        self._size = 0
        self._seq = 0
        self._inflight: list[_Entry] = []
        self._flush_target = 0  # entries with a lower sequence number are due now
        self._flush_requests = 0  # bumped by flush(): cuts a retry wait short
        self._closing = False
        self._stopped = False
        self._published = 0
        self._failures = 0
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"telemetry-{thing}", daemon=True)
        self._thread.start()

    # -- the caller's side ---------------------------------------------------------------------

    def record(self, kind: str, entry: Mapping[str, Any]) -> None:
        """Queue a (shallow) copy of `entry`; never blocks on the bus, never raises for it.

        Raises ValueError only for an invalid `kind`: that is a bug in the caller, not a failure.
        After `close()` the entry is counted as dropped.
        """
        if kind not in self._kinds:
            self._kinds.add(validate_topic_level(kind, "telemetry kind"))
        data = dict(entry)
        if "ts" not in data:
            data["ts"] = self._now()
        queued_at = time.monotonic()
        with self._cond:
            if self._stopped:
                self._dropped += 1
                return
            queue = self._queues.get(kind)
            if queue is None:
                queue = self._queues[kind] = deque()
            queue.append((self._seq, queued_at, data))
            self._seq += 1
            self._size += 1
            if self._size > self._buffer_size:
                self._drop_oldest()
            # Wake the worker only when it has something new to decide: a first entry starts the
            # flush_interval clock, a full batch is due now.
            if self._size == 1 or len(queue) == self._batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Publish everything recorded before this call; True once it is out (or dropped).

        False when `timeout` passed first (the bus is down, say): the entries stay buffered.
        """
        with self._cond:
            target = self._seq
            self._flush_target = max(self._flush_target, target)
            self._flush_requests += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._stopped or self._settled(target), timeout)
            return self._settled(target)

    def close(self, timeout: float = 5.0) -> bool:
        """Publish what can be published within `timeout`, then stop the thread.

        Returns whether everything got out; what did not is counted as dropped. Idempotent.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            done = self._size == 0 and not self._inflight
            if not self._stopped:
                self._closing = True
                self._flush_target = self._seq
                self._flush_requests += 1
                self._cond.notify_all()
                done = self._cond.wait_for(lambda: self._size == 0 and not self._inflight, timeout)
                self._stopped = True  # from here the worker exits and a failed in-flight batch is dropped
                self._dropped += self._size
                self._queues.clear()
                self._size = 0
                self._cond.notify_all()
        # The thread may be inside a bus.publish() that blocks: it is a daemon, do not wait past timeout.
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        return done

    # -- counters --------------------------------------------------------------------------------

    @property
    def published(self) -> int:
        """Entries the bus accepted (QoS 1: acknowledged by the broker)."""
        return self._published

    @property
    def publish_failures(self) -> int:
        """Publish attempts that failed, a disconnected bus included (one per batch attempt)."""
        return self._failures

    @property
    def dropped(self) -> int:
        """Entries that will never be published: pushed out of a full buffer, or left at close."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Entries waiting, plus the batch being published."""
        with self._cond:
            return self._size + len(self._inflight)

    @property
    def worker_thread(self) -> threading.Thread:
        """The publishing thread: logs emitted on it must not become telemetry (feedback loop)."""
        return self._thread

    # -- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        delay: float | None = None
        while True:
            with self._cond:
                kind = self._wait_for_batch()
                if kind is None:
                    return
                batch = self._take(kind, self._batch_size)
            try:
                payload, batch = self._encode_within_limit(kind, batch)
            except Exception:  # it would fail the same way forever: report, drop it, go on
                log.exception("a telemetry batch for %s cannot be encoded; it is dropped", kind)
                with self._cond:
                    self._dropped += len(self._inflight)
                    self._inflight = []
                    self._cond.notify_all()
                continue
            ok = self._send(kind, payload, delay is not None)
            with self._cond:
                self._inflight = []
                if ok:
                    self._published += len(batch)
                    delay = None
                else:
                    self._failures += 1
                    self._requeue(kind, batch)
                    low, high = self._retry_delay
                    delay = low if delay is None else min(delay * 2, high)
                self._cond.notify_all()
                if delay is not None:
                    self._back_off(delay)

    def _back_off(self, delay: float) -> None:  # under the lock
        """Wait before a retry; a `flush()` or `close()` ends the wait at once (shutdown must not sit it out)."""
        requests = self._flush_requests
        self._cond.wait_for(lambda: self._stopped or self._flush_requests != requests, delay)

    def _wait_for_batch(self) -> str | None:  # under the lock
        """The kind to publish next (the due kind with the oldest entry); None once stopped."""
        while not self._stopped:
            now = time.monotonic()
            due: list[tuple[int, str]] = []
            next_due: float | None = None
            for kind, queue in self._queues.items():
                seq, queued_at, _ = queue[0]
                if (
                    self._closing
                    or len(queue) >= self._batch_size
                    or seq < self._flush_target
                    or now - queued_at >= self._flush_interval
                ):
                    due.append((seq, kind))
                else:
                    wait = queued_at + self._flush_interval - now
                    next_due = wait if next_due is None else min(next_due, wait)
            if due:
                return min(due)[1]
            self._cond.wait(next_due)
        return None

    def _take(self, kind: str, count: int) -> list[_Entry]:  # under the lock
        queue = self._queues[kind]
        batch = [queue.popleft() for _ in range(min(count, len(queue)))]
        if not queue:
            del self._queues[kind]
        self._size -= len(batch)
        self._inflight = batch
        return batch

    def _requeue(self, kind: str, entries: list[_Entry]) -> None:  # under the lock
        """Put entries back in front of their kind (they are its oldest); trim to the cap."""
        if self._stopped:  # close() gave up on it: the entries will never be published
            self._dropped += len(entries)
            return
        if not entries:
            return
        queue = self._queues.setdefault(kind, deque())
        queue.extendleft(reversed(entries))
        self._size += len(entries)
        while self._size > self._buffer_size:
            self._drop_oldest()

    def _drop_oldest(self) -> None:  # under the lock
        kind = min(self._queues.items(), key=lambda item: item[1][0][0])[0]
        queue = self._queues[kind]
        queue.popleft()
        if not queue:
            del self._queues[kind]
        self._size -= 1
        self._dropped += 1

    def _settled(self, target: int) -> bool:  # under the lock
        """Whether no entry numbered below `target` is still waiting or in flight."""
        if self._inflight and self._inflight[0][0] < target:
            return False
        return all(queue[0][0] >= target for queue in self._queues.values())

    def _encode_within_limit(self, kind: str, batch: list[_Entry]) -> tuple[bytes, list[_Entry]]:
        """Encode the batch; halve it (the rest goes back) until it fits the payload limit."""
        payload = self._encode(kind, batch)
        while len(payload) > self._max_payload_bytes and len(batch) > 1:
            keep = len(batch) // 2
            with self._cond:
                self._requeue(kind, batch[keep:])
                batch = self._inflight = batch[:keep]
            payload = self._encode(kind, batch)
        if len(payload) > self._max_payload_bytes:
            seq, queued_at, data = batch[0]
            keys = sorted(map(str, data))[:20]
            stub = {"ts": data.get("ts"), "truncated": True, "bytes": len(payload), "keys": keys}
            batch = [(seq, queued_at, stub)]
            payload = self._encode(kind, batch)
        return payload, batch

    def _encode(self, kind: str, batch: list[_Entry]) -> bytes:
        entries: list[Any] = [data for _, _, data in batch]
        # dropped_total is read without the lock: the count at about send time is what it promises.
        body = {"thing": self.thing, "kind": kind, "sent_at": self._now(), "entries": entries}
        body["dropped_total"] = self._dropped
        try:
            return _dumps(body)
        except Exception:  # noqa: BLE001 - e.g. a circular reference: _encodable finds and replaces the culprits
            body["entries"] = [_encodable(data) for data in entries]
            return _dumps(body)

    def _send(self, kind: str, payload: bytes, retrying: bool) -> bool:
        """Publish one batch; False on failure (logged on this thread, which the log handler skips)."""
        topic = telemetry_topic(self.thing, kind)
        report = log.debug if retrying else log.warning
        if not self._bus.connected:
            report("telemetry to %s waits: the bus is not connected", topic)
            return False
        try:
            self._bus.publish(topic, payload, qos=self._qos)
        except EdgesimError as error:
            report("publishing telemetry to %s failed, will retry: %s", topic, error)
            return False
        except Exception:  # a bus bug must not kill telemetry: report it and retry like a failure
            log.exception("publishing telemetry to %s raised unexpectedly, will retry", topic)
            return False
        if retrying:
            log.info("telemetry to %s published again after failures", topic)
        return True

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else time.time()


def _dumps(body: Any) -> bytes:
    return json.dumps(body, default=str, separators=(",", ":")).encode("utf-8")


def _encodable(data: dict[str, Any]) -> dict[str, Any]:
    """`data`, or a marker saying why it cannot be sent (one bad entry must not sink its batch)."""
    try:
        _dumps(data)
    except Exception as error:  # noqa: BLE001 - a value's own __str__ may raise anything; the marker reports it
        # reprlib: bounded, survives cycles and a failing __repr__.
        return {"ts": data.get("ts"), "unencodable": f"{type(error).__name__}: {error}", "repr": reprlib.repr(data)}
    return data


_FORMATTER = logging.Formatter()


class TelemetryLogHandler(logging.Handler):
    """Records log records as "logs" telemetry entries: ts, level, logger, msg, `fields`, exc.

    Never raises (the logging.Handler contract: errors go to `handleError`) and never feeds back:
    it ignores records of this module's logger, records emitted on the publisher's own thread
    (the bus adapters log there when a publish fails), and records emitted while it is already
    handling one on the same thread (e.g. a `__str__` that logs).
    """

    def __init__(self, publisher: TelemetryPublisher, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._publisher = publisher
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if (
            getattr(self._local, "busy", False)
            or record.name == __name__
            or record.name.startswith(__name__ + ".")
            or threading.current_thread() is self._publisher.worker_thread
        ):
            return
        self._local.busy = True
        try:
            self._publisher.record("logs", self._entry(record))
        except Exception:  # noqa: BLE001 - logging.Handler contract: report through handleError, never raise
            self.handleError(record)
        finally:
            self._local.busy = False

    def _entry(self, record: logging.LogRecord) -> dict[str, Any]:
        return record_entry(record, record.created, self.formatter or _FORMATTER)
