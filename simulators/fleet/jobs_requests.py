"""The device side of the AWS IoT Jobs MQTT API with callbacks: no thread waits for a reply.

`system/edge/jobs_client.py` blocks its caller until the reply comes, which costs a worker thread
per device; a light device has no thread of its own, so here each request takes a `done` callback
that receives the accepted payload or a `JobsError` (the rejection's AWS code, `Timeout` when no
reply came within `timeout` clock seconds, `Unavailable` when the bus refused the publish). The
topics, payloads and client tokens are those of the blocking client (iot-jobs-mqtt.md), and the
client subscribes to its reply topics for the same reason (a plain broker only delivers to
subscribers).

`done` runs on the bus's lane or on the clock (a timeout); exactly once per request.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from system.edge.jobs_client import json_payload
from system.errors import EdgesimError, JobsError
from system.ports import Clock, Message, MessageBus, Subscription, Timer

Reply = dict[str, Any] | JobsError
Done = Callable[[Reply], None]
NotifyHandler = Callable[[dict[str, Any]], None]
_REPLY_TOPICS = (
    "start-next/accepted",
    "start-next/rejected",
    "+/get/accepted",
    "+/get/rejected",
    "+/update/accepted",
    "+/update/rejected",
)


class AsyncJobsClient:
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
        self.bus = bus
        self.thing = thing
        self.clock = clock
        self.timeout = timeout
        self.prefix = f"$aws/things/{thing}/jobs"
        self._pending: dict[str, tuple[Done, Timer]] = {}
        self._lock = threading.Lock()
        self._on_notify_next = on_notify_next
        self._on_notify = on_notify
        self._subscriptions: list[Subscription] = [
            bus.subscribe(f"{self.prefix}/{suffix}", self._on_reply, qos=1) for suffix in _REPLY_TOPICS
        ]
        self._subscriptions.append(bus.subscribe(f"{self.prefix}/notify-next", self._notify_next, qos=1))
        self._subscriptions.append(bus.subscribe(f"{self.prefix}/notify", self._notify, qos=1))

    # -- requests ------------------------------------------------------------------------------

    def start_next(
        self, done: Done, *, status_details: Mapping[str, str] | None = None, step_timeout_minutes: int | None = None
    ) -> None:
        """StartNextPendingJobExecution; `done` gets the reply (its `execution` is absent when nothing is pending)."""
        payload: dict[str, Any] = {}
        if status_details:
            payload["statusDetails"] = dict(status_details)
        if step_timeout_minutes is not None:
            payload["stepTimeoutInMinutes"] = step_timeout_minutes
        self._request(f"{self.prefix}/start-next", payload, done)

    def describe(self, job_id: str, done: Done, *, execution_number: int | None = None) -> None:
        """DescribeJobExecution with the document."""
        payload: dict[str, Any] = {"includeJobDocument": True}
        if execution_number is not None:
            payload["executionNumber"] = execution_number
        self._request(f"{self.prefix}/{job_id}/get", payload, done)

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
        payload: dict[str, Any] = {"status": status, "includeJobExecutionState": True}
        if status_details:
            payload["statusDetails"] = dict(status_details)
        if step_timeout_minutes is not None:
            payload["stepTimeoutInMinutes"] = step_timeout_minutes
        if execution_number is not None:
            payload["executionNumber"] = execution_number
        self._request(f"{self.prefix}/{job_id}/update", payload, done)

    def _request(self, topic: str, payload: dict[str, Any], done: Done) -> None:
        token = uuid.uuid4().hex
        timer = self.clock.call_later(self.timeout, lambda: self._expire(token, topic))
        with self._lock:
            self._pending[token] = (done, timer)
        try:
            self.bus.publish(topic, json.dumps({**payload, "clientToken": token}).encode(), qos=1)
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

    # -- replies and notifications (on the bus's lane) -----------------------------------------

    def _on_reply(self, message: Message) -> None:
        reply = json_payload(message)
        token = reply.get("clientToken") if reply is not None else None
        taken = self._take(token) if isinstance(token, str) else None
        if taken is None or reply is None:
            return  # another client's reply on a shared topic, or one that came after its timeout
        done, timer = taken
        timer.cancel()
        if message.topic.endswith("/rejected"):
            code = str(reply.get("code", "InternalError"))
            done(JobsError(f"{code}: {reply.get('message', '')}", code=code))
        else:
            done(reply)

    def _notify_next(self, message: Message) -> None:
        payload = json_payload(message)
        if payload is not None and self._on_notify_next is not None:
            self._on_notify_next(payload)

    def _notify(self, message: Message) -> None:
        payload = json_payload(message)
        if payload is not None and self._on_notify is not None:
            self._on_notify(payload)

    def close(self) -> None:
        """Unsubscribe; requests still pending get no callback."""
        for subscription in self._subscriptions:
            subscription.cancel()
        self._subscriptions.clear()
        with self._lock:
            pending, self._pending = self._pending, {}
        for _, timer in pending.values():
            timer.cancel()
