"""Server-side services on the simulated broker: components that see who published, like AWS IoT's own.

The IoT Jobs data plane is one: AWS IoT answers `$aws/things/<thing>/jobs/...` requests on the
requesting connection only (iot-jobs-mqtt.md section 0), so it must know which client sent each
request. A service gets every matching publish as a `ServiceRequest` (publisher's client id and
identity included), in order, one at a time, on its own lane; it answers with
`SimulatedBroker.deliver_to(request.client_id, ...)`. Faults and the policy do not apply to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from simulators.broker.delivery import Lane


class ServiceRequest(NamedTuple):
    """A client's publish as a service sees it."""

    client_id: str
    identity: str
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Service:
    """One attached service; `cancel()` detaches it (no handler call starts afterwards)."""

    def __init__(
        self,
        name: str,
        topic_filter: str,
        handler: Callable[[ServiceRequest], None],
        detach: Callable[[Service], None],
    ) -> None:
        self.name = name
        self.topic_filter = topic_filter
        self.handler = handler
        self.active = True
        self.lane = Lane(name, self._run)
        self._detach = detach

    def _run(self, item: object) -> None:
        if self.active and isinstance(item, ServiceRequest):
            self.handler(item)

    def cancel(self) -> None:
        self.active = False
        self._detach(self)
