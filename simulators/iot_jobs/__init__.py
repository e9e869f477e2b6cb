"""The AWS IoT Jobs data plane simulator (DESIGN.md §3.2, reference/iot-jobs-mqtt.md).

Layers, moto style (a thin transport over a plain model):
- `configs`: CreateJob input validation (targets, document, rollout/abort/timeout/retry configs).
- `records`, `payloads`, `views`: value types, device JSON shapes, control-plane (boto3) shapes.
- `state`, `device`, `control`, `model`: the plain model `JobsModel` (no MQTT, threads or timers).
- `protocol`: `JobsProtocol.handle(thing_name, topic, payload) -> list[Outgoing]`.
- `dataplane`: `JobsDataPlane`, the thread-safe facade with Clock timers and delivery callbacks;
  its docstring lists the fake's limits.
"""

from simulators.iot_jobs.dataplane import JobsDataPlane
from simulators.iot_jobs.model import JobsModel
from simulators.iot_jobs.protocol import JobsProtocol, Outgoing
from simulators.iot_jobs.records import Behaviour, ExecutionView, Notification, Outcome, RequestRejected, StateChange

__all__ = [
    "Behaviour",
    "ExecutionView",
    "JobsDataPlane",
    "JobsModel",
    "JobsProtocol",
    "Notification",
    "Outcome",
    "Outgoing",
    "RequestRejected",
    "StateChange",
]
