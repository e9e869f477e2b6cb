"""Front-ends: how the jobs data plane meets a message transport.

- `BrokerJobsFrontend`: a service of the simulated broker. It sees who published each request
  and answers that connection only, as AWS IoT does (iot-jobs-mqtt.md section 0).
- `BusJobsFrontend`: an ordinary client of any MessageBus (Mosquitto on the `local` profile). A
  plain broker cannot say who published, so replies are published on the reply topic and reach
  every subscriber of it, not only the requester: the `local` profile's documented limit
  (DESIGN.md section 3.2). The client needs the right to read and write `$aws/things/+/jobs/#`.

Both publish notifications and replies at QoS 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulators.broker import ServiceRequest, SimulatedBroker
from simulators.iot_jobs.dataplane import JobsDataPlane
from system.ports import Clock, Message, MessageBus, Subscription

JOBS_FILTER = "$aws/things/+/jobs/#"
PlaneFactory = Callable[..., JobsDataPlane]


def _thing_of(topic: str) -> str:
    """`$aws/things/<thing>/jobs/...` -> thing (the protocol layer validates the rest)."""
    parts = topic.split("/")
    return parts[2] if len(parts) > 2 else ""


class BrokerJobsFrontend:
    """The data plane attached to a SimulatedBroker; `close()` detaches it and stops its timers."""

    def __init__(self, broker: SimulatedBroker, clock: Clock, **plane_options: Any) -> None:
        self._broker = broker
        self.plane = JobsDataPlane(clock, publish=self._publish, reply=self._reply, **plane_options)
        self._service = broker.attach_service(JOBS_FILTER, self._on_request, name="iot-jobs")

    def _on_request(self, request: ServiceRequest) -> None:
        # The requester is the connection (client id), which gets the reply; the thing acted on
        # is the topic's. The broker's policy decides whether this client may use that topic.
        self.plane.handle(request.client_id, request.topic, request.payload)

    def _publish(self, topic: str, payload: bytes) -> None:
        self._broker.publish_as_broker(topic, payload, qos=1)

    def _reply(self, requester: str, topic: str, payload: bytes) -> None:
        self._broker.deliver_to(requester, topic, payload, qos=1)

    def close(self) -> None:
        self._service.cancel()
        self.plane.close()


class BusJobsFrontend:
    """The data plane as a client of `bus` (connected by the caller, with jobs-wide rights)."""

    def __init__(self, bus: MessageBus, clock: Clock, **plane_options: Any) -> None:
        self._bus = bus
        self.plane = JobsDataPlane(clock, publish=self._publish, reply=None, **plane_options)
        self._subscription: Subscription = bus.subscribe(JOBS_FILTER, self._on_message, qos=1)

    def _on_message(self, message: Message) -> None:
        # Replies and notifications the plane itself published come back here too; the protocol
        # layer ignores `/accepted`, `/rejected`, `notify` and `notify-next`.
        self.plane.handle(_thing_of(message.topic), message.topic, message.payload)

    def _publish(self, topic: str, payload: bytes) -> None:
        self._bus.publish(topic, payload, qos=1)

    def close(self) -> None:
        self._subscription.cancel()
        self.plane.close()
