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

import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from system.edge.jobs_messages import (
    JobsSubscriber,
    NotifyHandler,
    decode_reply,
    describe_payload,
    encode,
    start_next_payload,
    update_payload,
)
from system.errors import EdgesimError, JobsError
from system.ports import Message, MessageBus


class IotJobsDeviceClient(JobsSubscriber):
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
        self.timeout = timeout
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        super().__init__(bus, thing, on_notify_next, on_notify)

    # -- requests ------------------------------------------------------------------------------

    def start_next(
        self, *, status_details: Mapping[str, str] | None = None, step_timeout_minutes: int | None = None
    ) -> dict[str, Any] | None:
        """StartNextPendingJobExecution: the execution now IN_PROGRESS, or None when nothing is pending."""
        reply = self._request(f"{self.prefix}/start-next", start_next_payload(status_details, step_timeout_minutes))
        execution = reply.get("execution")
        return execution if isinstance(execution, dict) else None

    def describe(self, job_id: str, *, execution_number: int | None = None) -> dict[str, Any]:
        """DescribeJobExecution with the document; JobsError(code="ResourceNotFound") if there is none."""
        reply = self._request(f"{self.prefix}/{job_id}/get", describe_payload(execution_number))
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
        payload = update_payload(status, status_details, step_timeout_minutes, execution_number)
        return self._request(f"{self.prefix}/{job_id}/update", payload)

    def _request(self, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
        token = uuid.uuid4().hex
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._pending[token] = future
        try:
            self.bus.publish(topic, encode(payload, token), qos=1)
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

    # -- replies (on the bus's handler lane: quick, no blocking) --------------------------------

    def _on_reply(self, message: Message) -> None:
        decoded = decode_reply(message)
        if decoded is None:
            return
        token, reply = decoded
        with self._lock:
            future = self._pending.pop(token, None)
        if future is None:
            return  # another client's reply on a shared topic, or one that came after its timeout
        if isinstance(reply, JobsError):
            future.set_exception(reply)
        else:
            future.set_result(reply)
