"""Sessions and connections of the simulated broker (MQTT 3.1.1 sections 3.1.2.4 and 4.1).

A `Session` outlives its connections when the client connected with CleanSession = 0: it keeps the
subscriptions, the QoS 1 messages sent but not acknowledged (`inflight`, re-sent with DUP on the
next connection) and the QoS 1 messages that arrived while the client was away (`queued`, up to a
limit; QoS 0 messages for an absent client are dropped, as Mosquitto does by default). While
connected, `queued` holds what waits for room in the in-flight window (QoS 0 too, to keep the
order). A clean session ends with its connection. A `Connection` is one network connection; once it is closed
(`live` False) deliveries still queued for it are skipped by the client.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, NamedTuple, Protocol

from system.errors import MessageBusError
from system.ports import Message

if TYPE_CHECKING:
    from simulators.broker.delivery import Lane


class Endpoint(Protocol):
    """The client side of a connection, told when the broker ends it."""

    def connection_lost(self, connection: Connection, reason: str) -> None:
        """Called with the broker's lock held: record the loss, schedule work, never call back in."""
        ...


class Connection:
    """One live network connection of one client."""

    __slots__ = ("client_id", "endpoint", "identity", "lane", "live", "session", "will")

    def __init__(
        self,
        client_id: str,
        identity: str,
        session: Session,
        lane: Lane,
        endpoint: Endpoint,
        will: Message | None,
    ) -> None:
        self.client_id = client_id
        self.identity = identity
        self.session = session
        self.lane = lane
        self.endpoint = endpoint
        self.will = will
        self.live = True


class Delivery(NamedTuple):
    """A message on its way to one connection's handlers; `packet_id` is 0 for QoS 0."""

    connection: Connection
    message: Message
    dup: bool
    packet_id: int


class Session:
    """Broker-side state of one client id (see the module docstring)."""

    __slots__ = ("_next_packet_id", "client_id", "connection", "inflight", "persistent", "queued", "subscriptions")

    def __init__(self, client_id: str, persistent: bool) -> None:
        self.client_id = client_id
        self.persistent = persistent
        self.subscriptions: dict[str, int] = {}  # filter -> granted QoS
        self.inflight: dict[int, Message] = {}  # packet id -> QoS 1 message awaiting PUBACK, in send order
        # (message, publisher) waiting for a slot in the in-flight window, or QoS 1 for an absent client
        self.queued: deque[tuple[Message, str]] = deque()
        self.connection: Connection | None = None
        self._next_packet_id = 0

    def packet_id(self) -> int:
        """The next packet identifier, 1 to 65535, skipping ids still in flight (MQTT 3.1.1 2.3.1)."""
        for _ in range(65535):
            self._next_packet_id = self._next_packet_id % 65535 + 1
            if self._next_packet_id not in self.inflight:
                return self._next_packet_id
        raise MessageBusError(f"{self.client_id}: 65535 QoS 1 messages in flight")


class SessionInfo(NamedTuple):
    """A snapshot of a session, for tests."""

    client_id: str
    persistent: bool
    connected: bool
    subscriptions: dict[str, int]
    inflight: int
    queued: int
    queued_topics: tuple[str, ...] = ()  # of the queued messages, oldest first


def snapshot(session: Session) -> SessionInfo:
    return SessionInfo(
        session.client_id,
        session.persistent,
        session.connection is not None,
        dict(session.subscriptions),
        len(session.inflight),
        len(session.queued),
        tuple(message.topic for message, _ in session.queued),
    )
