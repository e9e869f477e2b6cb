"""The device side of the AWS IoT Jobs MQTT API with callbacks: no thread waits for a reply.

`system/edge/jobs_client.py` blocks its caller until the reply comes, which costs a worker thread
per device; a light device has no thread of its own, so here each request takes a `done` callback
that receives the accepted payload or a `JobsError` (the rejection's AWS code, `Timeout` when no
reply came within `timeout` clock seconds, `Unavailable` when the bus refused the publish). The
topics, payloads, client tokens and reply decoding are the blocking client's
(`system/edge/jobs_messages.py`).

`done` runs on the bus's lane or on the clock (a timeout); exactly once per request.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping

from system.edge.jobs_messages import (
    JobsSubscriber,
    NotifyHandler,
    Reply,
    decode_reply,
    describe_payload,
    encode,
    start_next_payload,
    update_payload,
)
from system.errors import EdgesimError, JobsError
from system.ports import Clock, Message, MessageBus, Timer

Done = Callable[[Reply], None]


class AsyncJobsClient(JobsSubscriber):
    """Start-next, describe and update of one thing's executions; replies and timeouts as callbacks."""

    def __init__(
        self,
        bus: MessageBus,
        thing: str,
        clock: Clock,
        *,
        timeout: float = 10.0,
        on_notify_next: NotifyHandler | None = None,
        on_notify: NotifyHandler | None = None,
    ) -> None:
        self.clock = clock
        self.timeout = timeout
        self._pending: dict[str, tuple[Done, Timer]] = {}
        self._lock = threading.Lock()
        self._closed = False
        super().__init__(bus, thing, on_notify_next, on_notify)

    # -- requests ------------------------------------------------------------------------------

    def start_next(
        self, done: Done, *, status_details: Mapping[str, str] | None = None, step_timeout_minutes: int | None = None
    ) -> None:
        """StartNextPendingJobExecution; `done` gets the reply (its `execution` is absent when nothing is pending)."""
        self._request(f"{self.prefix}/start-next", start_next_payload(status_details, step_timeout_minutes), done)

    def describe(self, job_id: str, done: Done, *, execution_number: int | None = None) -> None:
        """DescribeJobExecution with the document."""
        self._request(f"{self.prefix}/{job_id}/get", describe_payload(execution_number), done)

    def update(
        self,
        job_id: str,
        status: str,
        done: Done,
        *,
        status_details: Mapping[str, str] | None = None,
        step_timeout_minutes: int | None = None,
        execution_number: int | None = None,
    ) -> None:
        """UpdateJobExecution; a refusal reaches `done` as JobsError with the AWS code."""
        payload = update_payload(status, status_details, step_timeout_minutes, execution_number)
        self._request(f"{self.prefix}/{job_id}/update", payload, done)

    def _request(self, topic: str, payload: dict[str, object], done: Done) -> None:
        if self._closed:
            done(JobsError(f"cannot publish {topic}: the client is closed", code="Unavailable"))
            return
        token = uuid.uuid4().hex
        timer = self.clock.call_later(self.timeout, lambda: self._expire(token, topic))
        with self._lock:
            self._pending[token] = (done, timer)
        try:
            self.bus.publish(topic, encode(payload, token), qos=1)
        except EdgesimError as exc:  # disconnected, or the policy refused it
            if self._take(token) is not None:
                timer.cancel()
                done(JobsError(f"cannot publish {topic}: {exc}", code="Unavailable"))

    def _expire(self, token: str, topic: str) -> None:
        taken = self._take(token)
        if taken is not None:
            taken[0](JobsError(f"no reply to {topic} within {self.timeout:.0f} s", code="Timeout"))

    def _take(self, token: str) -> tuple[Done, Timer] | None:
        with self._lock:
            return self._pending.pop(token, None)

    # -- replies (on the bus's lane) -------------------------------------------------------------

    def _on_reply(self, message: Message) -> None:
        decoded = decode_reply(message)
        taken = self._take(decoded[0]) if decoded is not None else None
        if decoded is None or taken is None:
            return  # another client's reply on a shared topic, or one that came after its timeout
        done, timer = taken
        timer.cancel()
        done(decoded[1])

    def close(self) -> None:
        """Unsubscribe; requests still pending get no callback."""
        self._closed = True
        super().close()
        with self._lock:
            pending, self._pending = self._pending, {}
        for _, timer in pending.values():
            timer.cancel()
