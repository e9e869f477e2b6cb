"""The simulated MQTT broker (`SimulatedBroker`) and its in-process client (`InMemoryMessageBus`).

Modules: `topics` (MQTT 3.1.1 topic rules), `index` (subscription trie), `sessions`, `authorization`
(IoT-policy-like), `admission` (what the broker accepts), `faults`, `traffic` (the record),
`delivery` (serial lanes on a clock or on threads), `services` (server-side components such as the
IoT Jobs data plane), `broker`, `client`.

    broker = SimulatedBroker(clock=VirtualClock(), seed=7, policy=ThingPolicy(shared_prefixes=["fleet/"]))
    device = InMemoryMessageBus(broker, "thing-1", will=Message("fleet/status/thing-1", b"offline"))
    broker.faults.add(client_id="thing-1", latency=0.2, drop_rate=0.1)
"""

from simulators.broker.authorization import AllowAll, Policy, ThingPolicy
from simulators.broker.broker import MAX_MESSAGE_BYTES, SimulatedBroker
from simulators.broker.client import InMemoryMessageBus
from simulators.broker.services import Service, ServiceRequest
from simulators.broker.topics import InvalidTopicError, TopicFilter, matches, validate_filter, validate_topic
from simulators.broker.traffic import TrafficRecord

__all__ = [
    "MAX_MESSAGE_BYTES",
    "AllowAll",
    "InMemoryMessageBus",
    "InvalidTopicError",
    "Policy",
    "Service",
    "ServiceRequest",
    "SimulatedBroker",
    "ThingPolicy",
    "TopicFilter",
    "TrafficRecord",
    "matches",
    "validate_filter",
    "validate_topic",
]
