"""What the simulated broker lets in: valid topics, QoS 0 or 1, the size limit, and the policy.

Every refusal is recorded before it is raised: a `Refused` event and `MessageBusError` (or its
`InvalidTopicError` subclass) for a malformed or oversized request, a `Denied` event and
`NotAuthorizedError` for one the policy forbids. Policy decisions and valid topic names are
cached (the broker's hot path); swap the policy through `policy = ...`, which clears the cache.
Not thread-safe on its own: the broker calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Callable

from simulators.broker.authorization import Action, Policy
from simulators.broker.topics import validate_filter, validate_topic
from simulators.broker.traffic import Denied, Event, Refused
from system.errors import MessageBusError, NotAuthorizedError

_CACHE_LIMIT = 100_000


class Admission:
    def __init__(
        self, policy: Policy, max_message_bytes: int, record: Callable[[Event], None], now: Callable[[], float]
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self._policy = policy
        self._record = record
        self._now = now
        self._decisions: dict[tuple[str, Action, str], bool] = {}
        self._valid_topics: set[str] = set()

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self._policy = policy
        self._decisions.clear()

    def check_publish(
        self, client_id: str, identity: str, topic: str, payload: bytes, qos: int, action: str, authorize: bool = True
    ) -> None:
        """A PUBLISH (or a will, `action` "will"): raise unless the broker may take it."""
        problem = ""
        if topic not in self._valid_topics:
            try:
                validate_topic(topic)
            except MessageBusError as error:
                problem = str(error)
            else:
                if len(self._valid_topics) < _CACHE_LIMIT:
                    self._valid_topics.add(topic)
        if not problem and qos not in (0, 1):
            problem = f"QoS {qos} is not supported (QoS 0 and 1 only, like AWS IoT Core)"
        if not problem and len(payload) > self.max_message_bytes:
            problem = f"message of {len(payload)} bytes is over the {self.max_message_bytes}-byte limit"
        if problem:
            self._record(Refused(self._now(), client_id, action, topic, problem))
            raise MessageBusError(f"{client_id}: {action} to {topic!r} refused: {problem}")
        if authorize and not self._allows(identity, "publish", topic):
            self._record(Denied(self._now(), client_id, identity, action, topic))
            raise NotAuthorizedError(f"{identity} may not publish to {topic}")

    def check_subscribe(self, client_id: str, identity: str, topic_filter: str, qos: int) -> int:
        """A SUBSCRIBE: raise unless allowed; returns the granted QoS (2 is granted as 1)."""
        try:
            validate_filter(topic_filter)
            if qos not in (0, 1, 2):
                raise MessageBusError(f"invalid QoS {qos}")
        except MessageBusError as error:
            self._record(Refused(self._now(), client_id, "subscribe", topic_filter, str(error)))
            raise
        if not self._allows(identity, "subscribe", topic_filter):
            self._record(Denied(self._now(), client_id, identity, "subscribe", topic_filter))
            raise NotAuthorizedError(f"{identity} may not subscribe to {topic_filter}")
        return min(qos, 1)

    def _allows(self, identity: str, action: Action, topic: str) -> bool:
        key = (identity, action, topic)
        allowed = self._decisions.get(key)
        if allowed is None:
            if len(self._decisions) >= _CACHE_LIMIT:
                self._decisions.clear()
            allowed = self._decisions[key] = self._policy.allows(identity, action, topic)
        return allowed
