"""InMemoryMessageBus: the `MessageBus` port as a client of a `SimulatedBroker`, in the same process.

It behaves like `PahoMessageBus` (the same contract tests run on both): handlers run one message at
a time in arrival order on the bus's lane (a broker dispatcher thread, or the thread advancing the
`VirtualClock`), a lost connection is retried with exponential backoff on the broker's clock, and
after each (re)connect the bus re-subscribes (unless the broker kept its persistent session) and
then calls its connect listeners on the lane.

Limits: `connect()` fails at once when the broker refuses (partition, restart downtime) instead of
waiting out `timeout`; `publish()` needs a live connection (`MessageBusError`); a subscription made
while disconnected is sent at the next connect, where a refusal is only logged;
a second handler on a filter the bus already subscribes to does not get retained messages again;
the DUP flag is not visible to handlers (the port's `Message` has no such field; the traffic record
has it). `kill()` simulates the device process dying (the will is published, no reconnect).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial

from simulators.broker.broker import SimulatedBroker
from simulators.broker.delivery import Lane
from simulators.broker.sessions import Connection, Delivery
from simulators.broker.topics import matches, validate_filter
from system.adapters.mqtt_handlers import HandlerEntry, HandlerRegistry, HandlerSubscription
from system.errors import MessageBusError
from system.ports import Message, MessageHandler, Timer

log = logging.getLogger(__name__)

_NO_RECONNECT = frozenset({"broker closed"})


class InMemoryMessageBus:
    """A `MessageBus` on a `SimulatedBroker`; see the module docstring."""

    def __init__(
        self,
        broker: SimulatedBroker,
        client_id: str,
        *,
        identity: str | None = None,
        clean_session: bool = True,
        will: Message | None = None,
        reconnect_delay: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self._broker = broker
        self._client_id = client_id
        self.identity = client_id if identity is None else identity
        self.clean_session = clean_session
        self.will = will
        self.reconnect_delay = reconnect_delay
        self.handlers = HandlerRegistry(client_id, matches)  # `.errors`: what handlers raised
        self._lane = Lane(client_id, self._run_item)
        self._lock = threading.RLock()  # connection state, subscriptions, listeners
        self._connection: Connection | None = None
        self._unsent: set[str] = set()  # filters registered while disconnected
        self._listeners: list[Callable[[], None]] = []
        self._backoff: float | None = None
        self._timer: Timer | None = None
        self._closed = False

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        connection = self._connection
        return connection is not None and connection.live

    def connect(self, timeout: float = 10.0) -> None:
        """Connect now (the broker answers at once, so `timeout` is unused); raises if refused."""
        with self._lock:
            if self._closed:
                raise MessageBusError(f"{self._client_id}: the bus is closed")
            if not self.connected:
                self._open()

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        connection = self._connection
        if connection is None or not connection.live:
            raise MessageBusError(f"{self._client_id} is not connected")
        self._broker.publish(connection, topic, payload, qos, retain)

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> HandlerSubscription:
        """Subscribe now (the broker answers at once) or, while disconnected, at the next connect.

        Subscribing before `connect()` is how a persistent session gets the messages the broker
        kept for it: they are delivered at connect time, to the handlers registered by then.
        """
        validate_filter(topic_filter)
        with self._lock:
            # Registered before SUBSCRIBE: the retained messages it triggers must find the handler.
            entry, new_filter = self.handlers.add(topic_filter, handler, qos)
            subscription = HandlerSubscription(entry, self._cancel)
            if not new_filter:
                return subscription
            connection = self._connection
            if connection is None or not connection.live:
                self._unsent.add(topic_filter)
                return subscription
            try:
                self._broker.subscribe(connection, topic_filter, qos)
            except MessageBusError:
                self.handlers.remove(entry)
                raise
        return subscription

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` runs on the bus's lane after every (re)connect from now on."""
        with self._lock:
            self._listeners.append(listener)

    def close(self) -> None:
        """Disconnect cleanly (no will); a persistent session stays on the broker."""
        self._shut("client")

    def kill(self) -> None:
        """Simulate the client process dying: the connection breaks, the will is published."""
        self._shut("killed")

    # -- broker side -----------------------------------------------------------------------------

    def connection_lost(self, connection: Connection, reason: str) -> None:
        """Endpoint callback, under the broker's lock: only schedule the reconnect."""
        if self._closed or reason in _NO_RECONNECT or connection is not self._connection:
            return
        self._schedule_reconnect()

    # -- internals -------------------------------------------------------------------------------

    def _open(self) -> None:  # caller holds _lock
        connection, present = self._broker.open(
            self._client_id,
            self._lane,
            self,
            identity=self.identity,
            clean_session=self.clean_session,
            will=self.will,
        )
        self._connection = connection
        self._backoff = None
        if not connection.live:  # dropped by another thread before the line above: connection_lost skipped it
            self._schedule_reconnect()
            return
        filters = {f: q for f, q in self.handlers.filters().items() if not present or f in self._unsent}
        self._unsent.clear()
        for topic_filter, qos in filters.items():
            try:
                self._broker.subscribe(connection, topic_filter, qos)
            except MessageBusError as error:  # e.g. the policy changed: report, keep the rest
                log.error("%s: subscribing to %s on connect failed: %s", self._client_id, topic_filter, error)
        broker = self._broker
        for listener in self._listeners:
            broker.executor.submit(self._lane, partial(self.handlers.call, listener))

    def _schedule_reconnect(self) -> None:
        low, high = self.reconnect_delay
        self._backoff = low if self._backoff is None else min(self._backoff * 2, high)
        self._timer = self._broker.executor.call_later(self._backoff, self._reconnect)

    def _reconnect(self) -> None:
        with self._lock:
            if self._closed or self.connected:
                return
            try:
                self._open()
            except MessageBusError as error:
                self._schedule_reconnect()
                log.info("%s: reconnect failed (%s); retrying in %.2f s", self._client_id, error, self._backoff)

    def _shut(self, reason: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._connection is not None:
                self._broker.close_connection(self._connection, reason)

    def _cancel(self, entry: HandlerEntry) -> None:
        self.handlers.deactivate(entry)  # outside self._lock: a running handler may be waiting for it
        with self._lock:
            if self.handlers.remove(entry):
                self._unsent.discard(entry.topic_filter)
                if self._connection is not None and self._connection.live:
                    self._broker.unsubscribe(self._connection, entry.topic_filter)

    def _run_item(self, item: object) -> None:
        if type(item) is not Delivery:
            item()  # type: ignore[operator]  # a connect listener, wrapped by handlers.call
            return
        delivery: Delivery = item
        connection = delivery.connection
        if connection is not self._connection or not connection.live:
            return  # sent on a connection that is gone; QoS 1 stays unacknowledged in the session
        self.handlers.dispatch(delivery.message)
        self._broker.delivered(delivery)
