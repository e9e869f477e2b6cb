"""SimulatedBroker: an in-process MQTT 3.1.1 broker with AWS IoT's habits and fault injection.

What it does: topic filters with `+` and `#` (`$` topics are not matched by a leading wildcard),
QoS 0 and 1, retained messages (an empty retained payload deletes), last will on an abnormal
disconnect, clean and persistent sessions (subscriptions kept; QoS 1 messages queued while the
client is away; unacknowledged ones re-sent with DUP on reconnect), per-client ordering, a maximum
message size, an IoT-policy-like authorization (`ThingPolicy`; a denied action raises
`NotAuthorizedError` and is recorded), fault injection (`broker.faults`, see `faults.py`), a broker
restart, and a traffic record (`broker.record`). Clients are `InMemoryMessageBus` instances.

A server-side component (the IoT Jobs data plane) attaches as a service: `attach_service(filter,
handler)` hands it every matching publish with the publisher's client id and identity, and
`deliver_to(client_id, ...)` sends a reply to that one client only, subscribed or not, as AWS IoT
does for jobs replies (iot-jobs-mqtt.md section 0).

Time: given a `VirtualClock`, every delivery is a clock callback (latency is clock time) and
nothing moves until the clock is advanced; the run is deterministic for a given seed. Without a
clock, deliveries run on a small pool of dispatcher threads in wall time.

Limits: no QoS 2 (refused, as AWS IoT Core does; a QoS 2 subscription is granted QoS 1); no
network listener (in-process clients only); no keepalive (a lost link is noticed at once); one copy
per client when its filters overlap (highest QoS); a live delivery of a retained publish has
RETAIN 0 (MQTT 3.1.1 3.3.1.3); no `$SYS` topics, no shared subscriptions, no MQTT 5; QoS 0
messages to an absent client are dropped; a broker restart sends no wills; a denied publish is
refused to the publisher instead of closing its connection (AWS IoT disconnects it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from simulators.broker.admission import Admission
from simulators.broker.authorization import AllowAll, Policy
from simulators.broker.delivery import ClockExecutor, Executor, Lane, ThreadedExecutor
from simulators.broker.faults import Faults
from simulators.broker.index import SubscriptionIndex
from simulators.broker.services import Service, ServiceRequest
from simulators.broker.sessions import Connection, Delivery, Endpoint, Session, SessionInfo, snapshot
from simulators.broker.topics import matches, validate_filter
from simulators.broker.traffic import (
    BROKER,
    Connected,
    Delivered,
    Disconnected,
    Dropped,
    Event,
    Published,
    Refused,
    TrafficRecord,
)
from system.clock import WallClock
from system.errors import MessageBusError
from system.ports import Clock, Message

MAX_MESSAGE_BYTES = 128 * 1024  # AWS IoT Core's payload limit
ABNORMAL = frozenset({"forced", "partition", "takeover", "killed"})  # these publish the will


class SimulatedBroker:
    """See the module docstring. Thread-safe; close() it when done (it may own threads)."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        seed: int = 0,
        policy: Policy | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_inflight: int = 100,
        max_queued_messages: int = 10_000,
        persistence: bool = True,
        record_traffic: bool = True,
        workers: int = 4,
        name: str = "broker",
    ) -> None:
        self.name = name
        self.max_inflight = max_inflight  # unacknowledged QoS 1 messages per session (AWS IoT: 100)
        self.max_queued_messages = max_queued_messages  # per session, waiting for the window or a reconnect
        self.persistence = persistence  # whether persistent sessions and retained messages survive restart()
        self.record = TrafficRecord()
        self.record_traffic = record_traffic
        self.executor: Executor = (
            ThreadedExecutor(workers, name) if clock is None or isinstance(clock, WallClock) else ClockExecutor(clock)
        )
        self.admission = Admission(policy or AllowAll(), max_message_bytes, self._add, self.executor.now)
        self.faults = Faults(seed, self.executor.now, self.executor.call_later, self._force_disconnect)
        self._lock = threading.RLock()
        self._sessions: dict[str, Session] = {}
        self._index: SubscriptionIndex[Session] = SubscriptionIndex()
        self._services: SubscriptionIndex[Service] = SubscriptionIndex()
        self._retained: dict[str, Message] = {}
        self._down_until = float("-inf")
        self._closed = False

    @property
    def policy(self) -> Policy:
        return self.admission.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        """Swap the authorization policy (decisions are cached: change it through this setter)."""
        with self._lock:
            self.admission.policy = policy

    # -- connections (used by InMemoryMessageBus) ------------------------------------------------

    def open(
        self,
        client_id: str,
        lane: Lane,
        endpoint: Endpoint,
        *,
        identity: str | None = None,
        clean_session: bool = True,
        will: Message | None = None,
    ) -> tuple[Connection, bool]:
        """CONNECT: returns the connection and the session-present flag; raises if refused."""
        identity = client_id if identity is None else identity
        with self._lock:
            now = self.executor.now()
            refusal = self._connect_refusal(client_id, now)
            if refusal:
                self._add(Refused(now, client_id, "connect", "", refusal))
                raise MessageBusError(f"{self.name}: connection refused to {client_id}: {refusal}")
            if will is not None:
                self.admission.check_publish(client_id, identity, will.topic, will.payload, will.qos, "will")
            session = self._sessions.get(client_id)
            if session is not None and session.connection is not None:
                self._drop(session.connection, "takeover")
                session = self._sessions.get(client_id)
            present = session is not None and session.persistent and not clean_session
            if session is not None and not present:
                self._discard(session, "clean session")
            if session is None or not present:
                session = self._sessions[client_id] = Session(client_id, persistent=not clean_session)
            connection = session.connection = Connection(client_id, identity, session, lane, endpoint, will)
            self._add(Connected(now, client_id, identity, clean_session, present))
            if present:
                self._resume(session, connection)
            return connection, present

    def close_connection(self, connection: Connection, reason: str = "client") -> None:
        """End a connection: "client" is a DISCONNECT (no will), "killed" a crash (will sent)."""
        with self._lock:
            if connection.live:
                self._drop(connection, reason, notify=False)

    def publish(self, connection: Connection, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """PUBLISH from a client; returns once the broker has taken it (its PUBACK for QoS 1)."""
        with self._lock:
            if not connection.live:
                raise MessageBusError(f"{connection.client_id} is not connected")
            self.admission.check_publish(connection.client_id, connection.identity, topic, payload, qos, "publish")
            self._accept(connection.client_id, connection.identity, topic, payload, qos, retain)

    def subscribe(self, connection: Connection, topic_filter: str, qos: int = 1) -> int:
        """SUBSCRIBE one filter; returns the granted QoS (0 or 1); retained messages follow."""
        with self._lock:
            if not connection.live:
                raise MessageBusError(f"{connection.client_id} is not connected")
            granted = self.admission.check_subscribe(connection.client_id, connection.identity, topic_filter, qos)
            session = connection.session
            session.subscriptions[topic_filter] = granted
            self._index.add(topic_filter, session, granted)
            for topic, message in self._retained.items():
                if matches(topic_filter, topic):
                    self._send(session, Message(topic, message.payload, min(message.qos, granted), True), BROKER)
            return granted

    def unsubscribe(self, connection: Connection, topic_filter: str) -> None:
        with self._lock:
            if connection.session.subscriptions.pop(topic_filter, None) is not None:
                self._index.remove(topic_filter, connection.session)

    def delivered(self, delivery: Delivery) -> None:
        """The client ran its handlers for `delivery`: record it and, for QoS 1, take its PUBACK."""
        message = delivery.message
        if self.record_traffic:
            self.record.add(
                Delivered(
                    self.executor.now(),
                    delivery.connection.client_id,
                    message.topic,
                    message.payload,
                    message.qos,
                    message.retain,
                    delivery.dup,
                )
            )
        if delivery.packet_id and delivery.connection.live:
            with self._lock:
                session = delivery.connection.session
                if session.inflight.pop(delivery.packet_id, None) is not None and session.queued:
                    self._release(session)

    # -- server side -----------------------------------------------------------------------------

    def attach_service(
        self, topic_filter: str, handler: Callable[[ServiceRequest], None], name: str = "$service"
    ) -> Service:
        """Hand every client publish matching the filter to `handler`, in order, one at a time."""
        validate_filter(topic_filter)
        service = Service(name, topic_filter, handler, self._detach_service)
        with self._lock:
            self._services.add(topic_filter, service, 1)
        return service

    def deliver_to(self, client_id: str, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Send a message to one client session only (AWS IoT's reply to a jobs request).

        Other subscribers never see it; the client gets it once even if it also subscribes. An
        absent client's persistent session queues it at QoS 1; otherwise it is dropped. Returns
        whether a session took it.
        """
        with self._lock:
            self.admission.check_publish(BROKER, BROKER, topic, payload, qos, "deliver", authorize=False)
            now = self.executor.now()
            payload = bytes(payload)
            self._add(Published(now, BROKER, topic, payload, qos, False, to=client_id))
            session = self._sessions.get(client_id)
            if session is None:
                self._add(Dropped(now, client_id, topic, "offline"))
                return False
            return self._send(session, Message(topic, payload, qos, False), BROKER)

    def publish_as_broker(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Publish with no client and no policy check (a privileged cloud-side component)."""
        with self._lock:
            self.admission.check_publish(BROKER, BROKER, topic, payload, qos, "publish", authorize=False)
            self._accept(BROKER, BROKER, topic, payload, qos, retain)

    # -- lifecycle and inspection ----------------------------------------------------------------

    def restart(self, downtime: float = 0.0) -> None:
        """Crash and restart: every connection drops (no wills) and connects fail for `downtime` s.

        Clean sessions are lost; persistent sessions (subscriptions, queued and unacknowledged
        messages) and retained messages survive only if `persistence` is on. Fault rules stay.
        """
        with self._lock:
            for session in list(self._sessions.values()):
                if session.connection is not None:
                    self._drop(session.connection, "broker restart")
            if not self.persistence:
                for session in list(self._sessions.values()):
                    self._discard(session, "broker restart")
                self._retained.clear()
            self._down_until = self.executor.now() + downtime

    def close(self) -> None:
        """Drop every connection (no reconnect will succeed) and stop the dispatcher threads."""
        with self._lock:
            self._closed = True
            for session in list(self._sessions.values()):
                if session.connection is not None:
                    self._drop(session.connection, "broker closed")
        self.executor.close()

    def now(self) -> float:
        return self.executor.now()

    def connected_clients(self) -> list[str]:
        with self._lock:
            return sorted(cid for cid, session in self._sessions.items() if session.connection is not None)

    def session(self, client_id: str) -> SessionInfo | None:
        with self._lock:
            session = self._sessions.get(client_id)
            return None if session is None else snapshot(session)

    def retained(self, topic: str) -> Message | None:
        with self._lock:
            return self._retained.get(topic)

    # -- internals -------------------------------------------------------------------------------

    def _add(self, event: Event) -> None:
        if self.record_traffic:
            self.record.add(event)

    def _connect_refusal(self, client_id: str, now: float) -> str:
        if self._closed:
            return "broker closed"
        if now < self._down_until:
            return "broker unavailable (restarting)"
        if self.faults.partitioned(client_id):
            return "network partition"
        return ""

    def _accept(self, client_id: str, identity: str, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        payload = bytes(payload)
        if self.record_traffic:
            self.record.add(Published(self.executor.now(), client_id, topic, payload, qos, retain))
        if retain:
            if payload:
                self._retained[topic] = Message(topic, payload, qos, True)
            else:
                self._retained.pop(topic, None)
        live: list[Message | None] = [None, None]  # one Message per delivered QoS, made on first use
        for session, granted in self._index.match(topic):
            delivered_qos = qos if qos < granted else granted
            message = live[delivered_qos]
            if message is None:
                message = live[delivered_qos] = Message(topic, payload, delivered_qos, False)
            self._send(session, message, client_id)
        if len(self._services):
            for service, _ in self._services.match(topic):
                self.executor.submit(service.lane, ServiceRequest(client_id, identity, topic, payload, qos, retain))

    def _send(self, session: Session, message: Message, publisher: str) -> bool:
        """Route one message to one session: now, or queued behind the in-flight window (in order)."""
        connection = session.connection
        if connection is None or session.queued or (message.qos and len(session.inflight) >= self.max_inflight):
            return self._hold(session, message, publisher)
        self._transmit(session, connection, message, publisher)
        return True

    def _transmit(
        self, session: Session, connection: Connection, message: Message, publisher: str, packet_id: int = 0
    ) -> None:
        dup = bool(packet_id)  # a packet id given back means a re-send (MQTT 3.1.1 4.4)
        if message.qos and not packet_id:
            packet_id = session.packet_id()
            session.inflight[packet_id] = message
        delay = 0.0
        if self.faults.active:
            decision = self.faults.decide(publisher, session.client_id, message.topic, message.qos)
            if decision.drop:  # QoS 1 stays in flight: re-sent on the next connection
                self._add(Dropped(self.executor.now(), session.client_id, message.topic, "fault"))
                return
            delay = decision.delay
            if decision.duplicate:
                self.executor.submit(connection.lane, Delivery(connection, message, dup, packet_id), delay)
                dup = True
        self.executor.submit(connection.lane, Delivery(connection, message, dup, packet_id), delay)

    def _hold(self, session: Session, message: Message, publisher: str) -> bool:
        now = self.executor.now()
        if session.connection is None and message.qos == 0:
            self._add(Dropped(now, session.client_id, message.topic, "offline"))
            return False
        if len(session.queued) >= self.max_queued_messages:
            self._add(Dropped(now, session.client_id, message.topic, "queue full"))
            return False
        session.queued.append((message, publisher))
        return True

    def _release(self, session: Session) -> None:
        """Send queued messages while the session is connected and its in-flight window has room."""
        connection = session.connection
        while connection is not None and session.queued:
            message, publisher = session.queued[0]
            if message.qos and len(session.inflight) >= self.max_inflight:
                return
            session.queued.popleft()
            self._transmit(session, connection, message, publisher)

    def _resume(self, session: Session, connection: Connection) -> None:
        # MQTT 3.1.1 4.4: re-send unacknowledged PUBLISHes with their packet ids and DUP, then the queue.
        for packet_id, message in list(session.inflight.items()):
            self._transmit(session, connection, message, BROKER, packet_id)
        self._release(session)

    def _drop(self, connection: Connection, reason: str, notify: bool = True) -> None:
        connection.live = False
        session = connection.session
        session.connection = None
        abnormal = reason in ABNORMAL
        self._add(Disconnected(self.executor.now(), connection.client_id, reason, abnormal))
        if abnormal and connection.will is not None:
            will = connection.will
            self._accept(connection.client_id, connection.identity, will.topic, will.payload, will.qos, will.retain)
        if not session.persistent:
            self._discard(session, "clean session")
        if notify:
            connection.endpoint.connection_lost(connection, reason)

    def _discard(self, session: Session, reason: str) -> None:
        """End a session; what it still held for its client (sent but unacknowledged, or waiting) is lost."""
        # MQTT 3.1.1 3.1.2.4: the session state goes with it. Those messages were accepted from their
        # publishers, so each loss is recorded, as every other drop is: none may vanish unrecorded.
        now = self.executor.now()
        for message in [*session.inflight.values(), *(message for message, _ in session.queued)]:
            self._add(Dropped(now, session.client_id, message.topic, reason))
        session.inflight.clear()
        session.queued.clear()
        for topic_filter in session.subscriptions:
            self._index.remove(topic_filter, session)
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]

    def _force_disconnect(self, client_id: str, reason: str) -> None:
        with self._lock:
            session = self._sessions.get(client_id)
            if session is not None and session.connection is not None:
                self._drop(session.connection, reason)

    def _detach_service(self, service: Service) -> None:
        with self._lock:
            self._services.remove(service.topic_filter, service)
