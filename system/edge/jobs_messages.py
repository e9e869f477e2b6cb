"""The device side of the AWS IoT Jobs MQTT API as messages (iot-jobs-mqtt.md sections 1 and 4).

What both device clients share: the blocking `IotJobsDeviceClient` (jobs_client.py, one worker
thread per device) and the callback one of light devices (simulators/fleet/jobs_requests.py).
Request payloads, the topics a client subscribes to, and how a reply is matched (its clientToken)
and decoded (accepted payload, or `JobsError` with the rejection's AWS code).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from system.errors import JobsError
from system.ports import Message, MessageBus, Subscription

_log = logging.getLogger(__name__)
Reply = dict[str, Any] | JobsError
# Update refusals meaning the execution is no longer the device's to change.
ENDED_CODES = ("InvalidStateTransition", "TerminalStateReached", "ResourceNotFound")
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED")
# AWS delivers replies to the requester even unsubscribed; a plain broker (Mosquitto on `local`) only
# to subscribers, so a client subscribes to these before it connects.
REPLY_TOPICS = (
    "start-next/accepted",
    "start-next/rejected",
    "+/get/accepted",
    "+/get/rejected",
    "+/update/accepted",
    "+/update/rejected",
)


NotifyHandler = Callable[[dict[str, Any]], None]


class JobsSubscriber:
    """A thing's jobs topics: replies go to `_on_reply`, notifications to the handlers given.

    Subscribed in the constructor, so before the bus connects: no reply or notification slips past.
    """

    def __init__(
        self,
        bus: MessageBus,
        thing: str,
        on_notify_next: NotifyHandler | None = None,
        on_notify: NotifyHandler | None = None,
    ) -> None:
        self.bus = bus
        self.thing = thing
        self.prefix = f"$aws/things/{thing}/jobs"
        self._on_notify_next = on_notify_next
        self._on_notify = on_notify
        self._subscriptions: list[Subscription] = [
            bus.subscribe(f"{self.prefix}/{suffix}", self._on_reply, qos=1) for suffix in REPLY_TOPICS
        ]
        self._subscriptions.append(bus.subscribe(f"{self.prefix}/notify-next", self._notify_next, qos=1))
        self._subscriptions.append(bus.subscribe(f"{self.prefix}/notify", self._notify, qos=1))

    def _on_reply(self, message: Message) -> None:
        raise NotImplementedError

    def _notify_next(self, message: Message) -> None:
        payload = json_payload(message)
        if payload is not None and self._on_notify_next is not None:
            self._on_notify_next(payload)

    def _notify(self, message: Message) -> None:
        payload = json_payload(message)
        if payload is not None and self._on_notify is not None:
            self._on_notify(payload)

    def close(self) -> None:
        """Unsubscribe from every jobs topic."""
        for subscription in self._subscriptions:
            subscription.cancel()
        self._subscriptions.clear()


def start_next_payload(status_details: Mapping[str, str] | None, step_timeout_minutes: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if status_details:
        payload["statusDetails"] = dict(status_details)
    if step_timeout_minutes is not None:
        payload["stepTimeoutInMinutes"] = step_timeout_minutes
    return payload


def describe_payload(execution_number: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"includeJobDocument": True}
    if execution_number is not None:
        payload["executionNumber"] = execution_number
    return payload


def update_payload(
    status: str,
    status_details: Mapping[str, str] | None,
    step_timeout_minutes: int | None,
    execution_number: int | None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": status, "includeJobExecutionState": True}
    payload.update(start_next_payload(status_details, step_timeout_minutes))
    if execution_number is not None:
        payload["executionNumber"] = execution_number
    return payload


def encode(payload: dict[str, Any], token: str) -> bytes:
    return json.dumps({**payload, "clientToken": token}).encode()


def decode_reply(message: Message) -> tuple[str, Reply] | None:
    """(clientToken, the accepted payload or the rejection as JobsError); None without a token."""
    reply = json_payload(message)
    token = reply.get("clientToken") if reply is not None else None
    if reply is None or not isinstance(token, str):
        return None
    if message.topic.endswith("/rejected"):
        code = str(reply.get("code", "InternalError"))
        return token, JobsError(f"{code}: {reply.get('message', '')}", code=code)
    return token, reply


def json_payload(message: Message) -> dict[str, Any] | None:
    try:
        value = json.loads(message.payload)
    except ValueError:
        _log.warning("ignoring a non-JSON jobs message", extra={"fields": {"topic": message.topic}})
        return None
    return value if isinstance(value, dict) else None
