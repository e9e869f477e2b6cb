"""Fault injection for the simulated broker: bad links per client or topic, disconnects, partitions.

A `FaultRule` acts on the broker -> subscriber leg of every delivery it selects: the delivery's
receiving client or its publisher equals `client_id` (None: any), and its topic matches
`topic_filter` (None: any). Selected deliveries get `latency` seconds (+ uniform `jitter`) of delay,
are lost with probability `drop_rate`, and are sent twice with probability `duplicate_rate`.
Every random draw comes from one `random.Random(seed)` in routing order, so a run on a
`VirtualClock` is reproducible. Per-client order survives latency: a delayed delivery also holds
back the later ones to that client (a TCP connection does not reorder).

What a drop means (the way MQTT over TCP loses messages): a QoS 0 delivery is gone; a QoS 1
delivery stays unacknowledged in the session and is sent again, with DUP, when a persistent
session reconnects (lost for a clean session). Duplicates apply to QoS 1 only (the at-least-once
duplicate; QoS 0 is never duplicated by a real broker) and carry DUP.

`disconnect(client_id)` ends a connection abnormally (the will is published; the client's own
reconnect logic brings it back); `partition(client_ids, duration)` does the same and refuses those
clients' connection attempts until the window closes. (A real broker notices a dead link only after
1.5 x keepalive; here it is immediate.)
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from simulators.broker.topics import TopicFilter


@dataclass(frozen=True, eq=False)
class FaultRule:
    client_id: str | None = None
    topic_filter: TopicFilter | None = None
    latency: float = 0.0
    jitter: float = 0.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0

    def selects(self, publisher: str, receiver: str, topic: str) -> bool:
        if self.client_id is not None and self.client_id not in (publisher, receiver):
            return False
        return self.topic_filter is None or self.topic_filter.matches(topic)


class Decision(NamedTuple):
    drop: bool
    duplicate: bool
    delay: float


NO_FAULT = Decision(False, False, 0.0)


class Faults:
    """The fault plan of one broker (`broker.faults`); rules and partitions survive a broker restart."""

    def __init__(
        self,
        seed: int,
        now: Callable[[], float],
        call_later: Callable[[float, Callable[[], None]], object],
        disconnect: Callable[[str, str], None],
    ) -> None:
        self._rng = random.Random(seed)
        self._now = now
        self._call_later = call_later
        self._disconnect = disconnect
        self._rules: list[FaultRule] = []
        self._partitioned_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.active = False  # read without the lock on the broker's hot path

    def add(
        self,
        *,
        client_id: str | None = None,
        topic_filter: str | None = None,
        latency: float = 0.0,
        jitter: float = 0.0,
        drop_rate: float = 0.0,
        duplicate_rate: float = 0.0,
    ) -> FaultRule:
        """Add a rule (see the module docstring); `remove(rule)` takes it away."""
        if latency < 0 or jitter < 0 or not 0 <= drop_rate <= 1 or not 0 <= duplicate_rate <= 1:
            raise ValueError("latency and jitter must be >= 0, rates within [0, 1]")
        rule = FaultRule(
            client_id, TopicFilter(topic_filter) if topic_filter else None, latency, jitter, drop_rate, duplicate_rate
        )
        with self._lock:
            self._rules.append(rule)
            self.active = True
        return rule

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]
            self.active = bool(self._rules)

    def clear(self) -> None:
        """Remove every rule and end every partition."""
        with self._lock:
            self._rules = []
            self._partitioned_until.clear()
            self.active = False

    def decide(self, publisher: str, receiver: str, topic: str, qos: int) -> Decision:
        """The fate of one delivery; called by the broker (under its lock) for every delivery."""
        rules = [r for r in self._rules if r.selects(publisher, receiver, topic)]
        if not rules:
            return NO_FAULT
        delay = 0.0
        drop = duplicate = False
        for rule in rules:
            delay += rule.latency + (self._rng.uniform(0.0, rule.jitter) if rule.jitter else 0.0)
            if rule.drop_rate and self._rng.random() < rule.drop_rate:
                drop = True
            if qos == 1 and rule.duplicate_rate and self._rng.random() < rule.duplicate_rate:
                duplicate = True
        return Decision(drop, duplicate, delay)

    def disconnect(self, client_id: str) -> None:
        """Drop the client's connection abnormally now (its will is published); it may reconnect."""
        self._disconnect(client_id, "forced")

    def partition(self, client_ids: Iterable[str], duration: float, *, start_in: float = 0.0) -> None:
        """Cut these clients off for `duration` seconds, starting `start_in` seconds from now."""
        clients = tuple(client_ids)
        if start_in > 0:
            self._call_later(start_in, lambda: self.partition(clients, duration))
            return
        until = self._now() + duration
        with self._lock:
            for client_id in clients:
                self._partitioned_until[client_id] = max(until, self._partitioned_until.get(client_id, 0.0))
        for client_id in clients:
            self._disconnect(client_id, "partition")

    def partitioned(self, client_id: str) -> bool:
        """Whether the client is inside a partition window now (its connection attempts fail)."""
        with self._lock:
            until = self._partitioned_until.get(client_id)
            if until is None:
                return False
            if self._now() < until:
                return True
            del self._partitioned_until[client_id]
            return False
