"""The device side of the AWS IoT Jobs MQTT API (DESIGN.md section 3.2, iot-jobs-mqtt.md).

Requests are published to `$aws/things/<thing>/jobs/...` with a fresh `clientToken`; the reply on
`.../accepted` or `.../rejected` carrying the same token completes the call. The client subscribes
to the reply topics itself: AWS delivers replies to the requester even unsubscribed, but on a
plain broker (the `local` profile's Mosquitto) only subscribers receive them.

Calls block until the reply comes, so they must never run on the bus's handler lane (the reply
would queue behind the caller): `OtaDriver` calls them from its own worker thread, and the
`notify`/`notify-next` handlers only hand events to that thread.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from system.errors import EdgesimError, JobsError
from system.ports import Message, MessageBus, Subscription

_log = logging.getLogger(__name__)
NotifyHandler = Callable[[dict[str, Any]], None]


class IotJobsDeviceClient:
    """Start-next, describe and update job executions of one thing; hear notify and notify-next."""

    def __init__(
        self,
        bus: MessageBus,
        thing: str,
        *,
        timeout: float = 10.0,
        on_notify_next: NotifyHandler | None = None,
        on_notify: NotifyHandler | None = None,
    ) -> None:
        self.bus = bus
        self.thing = thing
        self.timeout = timeout
        self.prefix = f"$aws/things/{thing}/jobs"
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._on_notify_next = on_notify_next
        self._on_notify = on_notify
        self._subscriptions: list[Subscription] = []
        # Subscribed before the bus connects, so no reply or notification can slip past.
        for suffix in (
            "start-next/accepted",
            "start-next/rejected",
            "+/get/accepted",
            "+/get/rejected",
            "+/update/accepted",
            "+/update/rejected",
        ):
            self._subscriptions.append(bus.subscribe(f"{self.prefix}/{suffix}", self._on_reply, qos=1))
        self._subscriptions.append(bus.subscribe(f"{self.prefix}/notify-next", self._notify_next, qos=1))
        self._subscriptions.append(bus.subscribe(f"{self.prefix}/notify", self._notify, qos=1))

    # -- requests ------------------------------------------------------------------------------

    def start_next(
        self, *, status_details: Mapping[str, str] | None = None, step_timeout_minutes: int | None = None
    ) -> dict[str, Any] | None:
        """StartNextPendingJobExecution: the execution now IN_PROGRESS, or None when nothing is pending."""
        payload: dict[str, Any] = {}
        if status_details:
            payload["statusDetails"] = dict(status_details)
        if step_timeout_minutes is not None:
            payload["stepTimeoutInMinutes"] = step_timeout_minutes
        reply = self._request(f"{self.prefix}/start-next", payload)
        execution = reply.get("execution")
        return execution if isinstance(execution, dict) else None

    def describe(self, job_id: str, *, execution_number: int | None = None) -> dict[str, Any]:
        """DescribeJobExecution with the document; JobsError(code="ResourceNotFound") if there is none."""
        payload: dict[str, Any] = {"includeJobDocument": True}
        if execution_number is not None:
            payload["executionNumber"] = execution_number
        reply = self._request(f"{self.prefix}/{job_id}/get", payload)
        execution = reply.get("execution")
        if not isinstance(execution, dict):
            raise JobsError(f"DescribeJobExecution of {job_id} returned no execution", code="InternalError")
        return execution

    def update(
        self,
        job_id: str,
        status: str,
        *,
        status_details: Mapping[str, str] | None = None,
        step_timeout_minutes: int | None = None,
        execution_number: int | None = None,
    ) -> dict[str, Any]:
        """UpdateJobExecution; JobsError carrying the AWS code (e.g. InvalidStateTransition) if refused."""
        payload: dict[str, Any] = {"status": status, "includeJobExecutionState": True}
        if status_details:
            payload["statusDetails"] = dict(status_details)
        if step_timeout_minutes is not None:
            payload["stepTimeoutInMinutes"] = step_timeout_minutes
        if execution_number is not None:
            payload["executionNumber"] = execution_number
        return self._request(f"{self.prefix}/{job_id}/update", payload)

    def _request(self, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
        token = uuid.uuid4().hex
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._pending[token] = future
        try:
            self.bus.publish(topic, json.dumps({**payload, "clientToken": token}).encode(), qos=1)
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            raise JobsError(f"no reply to {topic} within {self.timeout:.0f} s", code="Timeout") from None
        except JobsError:
            raise
        except EdgesimError as exc:  # the bus refused the publish (disconnected, not authorized)
            raise JobsError(f"cannot publish {topic}: {exc}", code="Unavailable") from exc
        finally:
            with self._lock:
                self._pending.pop(token, None)

    # -- replies and notifications (on the bus's handler lane: quick, no blocking) -------------

    def _on_reply(self, message: Message) -> None:
        reply = json_payload(message)
        token = reply.get("clientToken") if reply is not None else None
        with self._lock:
            future = self._pending.pop(token, None) if isinstance(token, str) else None
        if future is None or reply is None:
            return  # another client's reply on a shared topic, or one that came after its timeout
        if message.topic.endswith("/rejected"):
            code = str(reply.get("code", "InternalError"))
            future.set_exception(JobsError(f"{code}: {reply.get('message', '')}", code=code))
        else:
            future.set_result(reply)

    def _notify_next(self, message: Message) -> None:
        payload = json_payload(message)
        if payload is not None and self._on_notify_next is not None:
            self._on_notify_next(payload)

    def _notify(self, message: Message) -> None:
        payload = json_payload(message)
        if payload is not None and self._on_notify is not None:
            self._on_notify(payload)

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.cancel()
        self._subscriptions.clear()


def json_payload(message: Message) -> dict[str, Any] | None:
    try:
        value = json.loads(message.payload)
    except ValueError:
        _log.warning("ignoring a non-JSON jobs message", extra={"fields": {"topic": message.topic}})
        return None
    return value if isinstance(value, dict) else None
