"""PahoMessageBus: the `MessageBus` port on paho-mqtt 2.x, for Mosquitto and other plain brokers.

MQTT 3.1.1 over TCP, or TLS with a client certificate (`TlsFiles`). What it adds to paho:

- TCP_NODELAY on every (re)connected socket: without it a QoS 1 request/response pays Nagle plus
  delayed ACK, 44-88 ms per round trip instead of 0.4 ms (feasibility.md section 5);
- handlers run on a dispatcher thread of the bus, one message at a time in arrival order, so a slow
  handler never stalls paho's network thread (keepalive, PUBACKs); a QoS 1 message is acknowledged
  (manual ack) only after its handlers returned, so a crash in between means redelivery, not loss;
- reconnect with exponential backoff (paho's `reconnect_delay_set` and `loop_start`), then
  re-subscribe (unless the broker kept a persistent session) and, once the SUBACKs are in, call the
  connect listeners on the dispatcher thread;
- blocking QoS 1 publish (PUBACK or `MessageBusError` after `operation_timeout`) and subscribe
  (SUBACK; a refused subscription, 0x80, raises `NotAuthorizedError`); paho's exceptions and error
  codes become `MessageBusError`.

Limits: QoS 2 is refused (AWS IoT has none); `publish` needs a live connection; a subscription made
while disconnected is sent at the next connect, where a refusal is only logged; when two
filters of the bus overlap, the broker may send one copy per filter (Mosquitto does) and each copy
goes to every matching handler; a broker that denies a publish silently (Mosquitto's ACLs, MQTT
3.1.1 has no negative PUBACK) cannot be detected; Mosquitto's ACLs also grant every SUBSCRIBE.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from system.adapters.mqtt_handlers import Dispatcher, HandlerEntry, HandlerRegistry, HandlerSubscription
from system.adapters.tls import TlsFiles
from system.errors import MessageBusError, NotAuthorizedError
from system.ports import Message, MessageHandler

log = logging.getLogger(__name__)

_NOT_AUTHORIZED = (0x86, 0x87)  # CONNACK "bad user name or password", "not authorized" (3.1.1 codes 4, 5)


class _Acks:
    """SUBACKs by message id; a SUBACK may arrive before `subscribe()` has returned the id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[int, threading.Event] = {}
        self._results: dict[int, list[ReasonCode]] = {}

    def arrived(self, mid: int, codes: list[ReasonCode]) -> None:
        with self._lock:
            if len(self._results) > 1000:  # answers nobody waited for (timed out): forget them
                self._results.clear()
            self._results[mid] = codes
            event = self._events.pop(mid, None)
        if event is not None:
            event.set()

    def wait(self, mid: int, timeout: float) -> list[ReasonCode] | None:
        with self._lock:
            if mid not in self._results:
                event = self._events[mid] = threading.Event()
            else:
                event = None
        if event is not None and not event.wait(timeout):
            with self._lock:
                self._events.pop(mid, None)
        with self._lock:
            return self._results.pop(mid, None)


class PahoMessageBus:
    """A `MessageBus` over paho-mqtt; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        tls: TlsFiles | None = None,
        keepalive: int = 60,
        *,
        clean_session: bool = True,
        will: Message | None = None,
        reconnect_delay: tuple[float, float] = (1.0, 30.0),
        operation_timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.keepalive = host, port, keepalive
        self.operation_timeout = operation_timeout
        self.handlers = HandlerRegistry(client_id, mqtt.topic_matches_sub)  # `.errors`: what handlers raised
        self._client_id = client_id
        self._clean_session = clean_session
        self._lock = threading.RLock()  # subscriptions, listeners, state
        self._unsent: set[str] = set()  # filters registered while disconnected
        self._listeners: list[Callable[[], None]] = []
        self._acks = _Acks()
        self._resubscriptions: dict[int, str] = {}
        self._connack = threading.Event()  # a CONNACK (or a refusal) arrived
        self._ready = threading.Event()  # ... and the subscriptions sent on connect were acknowledged
        self._listeners_due: list[Callable[[], None]] = []
        self._connect_error: MessageBusError | None = None
        self._dispatcher = Dispatcher(client_id, self._run)
        self._loop_started = False
        self._closed = False
        self._client = self._make_client(tls, will, reconnect_delay)

    def _make_client(
        self, tls: TlsFiles | None, will: Message | None, reconnect_delay: tuple[float, float]
    ) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=self._clean_session,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        client.reconnect_delay_set(reconnect_delay[0], reconnect_delay[1])  # type: ignore[arg-type]
        if tls is not None:
            try:
                client.tls_set(
                    ca_certs=str(tls.ca),
                    certfile=str(tls.cert) if tls.cert else None,
                    keyfile=str(tls.key) if tls.key else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ValueError) as error:
                raise MessageBusError(f"{self._client_id}: cannot use TLS files {tls}: {error}") from error
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        return bool(self._client.is_connected())

    def connect(self, timeout: float = 10.0) -> None:
        """Connect; wait for the CONNACK and the SUBACKs of earlier subscriptions. Paho reconnects later."""
        with self._lock:
            if self._closed:
                raise MessageBusError(f"{self._client_id}: the bus is closed")
            if self.connected:
                return
            self._dispatcher.start()
            self._connack.clear()
            self._ready.clear()
            self._connect_error = None
            try:
                result = self._client.connect(self.host, self.port, self.keepalive)
            except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
                raise MessageBusError(
                    f"{self._client_id}: cannot connect to {self.host}:{self.port}: {error}"
                ) from error
            if result != mqtt.MQTT_ERR_SUCCESS:  # e.g. a TLS server that wants a client certificate
                raise self._connect_error or MessageBusError(
                    f"{self._client_id}: connecting to {self.host}:{self.port} failed: {mqtt.error_string(result)}"
                )
            if not self._loop_started:
                self._client.loop_start()
                self._loop_started = True
        deadline = time.monotonic() + timeout
        if not self._connack.wait(timeout):
            self._abandon()
            raise MessageBusError(f"{self._client_id}: no CONNACK from {self.host}:{self.port} within {timeout} s")
        if self._connect_error is not None:
            self._abandon()
            raise self._connect_error
        if not self._ready.wait(max(deadline - time.monotonic(), 0.0)):
            raise MessageBusError(f"{self._client_id}: no SUBACK for the subscriptions made before connect()")

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        if qos not in (0, 1):
            raise MessageBusError(f"QoS {qos} is not supported (QoS 0 and 1 only, like AWS IoT Core)")
        if not self.connected:
            raise MessageBusError(f"{self._client_id} is not connected")
        try:
            info = self._client.publish(topic, payload, qos, retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise MessageBusError(f"{self._client_id}: publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
            if qos:
                info.wait_for_publish(self.operation_timeout)
        except (ValueError, RuntimeError) as error:
            raise MessageBusError(f"{self._client_id}: publish to {topic!r} failed: {error}") from error
        if qos and not info.is_published():
            raise MessageBusError(f"{self._client_id}: no PUBACK for {topic!r} within {self.operation_timeout} s")

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> HandlerSubscription:
        """Subscribe now (SUBACK awaited) or, while disconnected, at the next (re)connect.

        Subscribing before `connect()` is how a persistent session gets the messages the broker
        kept for it: they arrive right after the CONNACK, to the handlers registered by then.
        """
        with self._lock:
            # Registered before SUBSCRIBE: the retained messages it triggers must find the handler.
            entry, new_filter = self.handlers.add(topic_filter, handler, min(qos, 1))
            subscription = HandlerSubscription(entry, self._cancel)
            if not new_filter:
                return subscription
            if not self.connected:
                self._unsent.add(topic_filter)
                return subscription
        try:
            result, mid = self._client.subscribe(topic_filter, min(qos, 1))
        except ValueError as error:
            self.handlers.remove(entry)
            raise MessageBusError(f"{self._client_id}: invalid topic filter {topic_filter!r}: {error}") from error
        codes = self._acks.wait(mid, self.operation_timeout) if result == mqtt.MQTT_ERR_SUCCESS and mid else None
        if not codes or codes[0].is_failure:
            self.handlers.remove(entry)
            if codes:
                raise NotAuthorizedError(f"{self._client_id}: the broker refused a subscription to {topic_filter}")
            raise MessageBusError(f"{self._client_id}: no SUBACK for {topic_filter} ({mqtt.error_string(result)})")
        return subscription

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` runs on the dispatcher thread after every (re)connect from now on."""
        with self._lock:
            self._listeners.append(listener)

    def close(self) -> None:
        """DISCONNECT (no will), stop paho's thread and the dispatcher."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._client.disconnect()
        self._client.loop_stop()
        self._dispatcher.stop(self.operation_timeout)

    # -- paho callbacks (network thread) ----------------------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if isinstance(sock, socket.socket):  # ssl.SSLSocket too
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if reason.is_failure:
            error_type = NotAuthorizedError if reason.value in _NOT_AUTHORIZED else MessageBusError
            self._connect_error = error_type(f"{self._client_id}: connection refused by the broker: {reason}")
            self._connack.set()
            return
        with self._lock:
            present = flags.session_present
            filters = [(f, q) for f, q in self.handlers.filters().items() if not present or f in self._unsent]
            self._unsent.clear()
            listeners = list(self._listeners)
        self._resubscriptions.clear()  # SUBACKs of an earlier connection will never come
        self._listeners_due = listeners
        for topic_filter, qos in filters:  # no waiting here: the SUBACKs arrive on this very thread
            result, mid = client.subscribe(topic_filter, qos)
            if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._resubscriptions[mid] = topic_filter
        self._connack.set()
        if not self._resubscriptions:
            self._subscriptions_ready()

    def _subscriptions_ready(self) -> None:
        # Listeners run once every subscription is in place again: a device re-asking for its
        # pending jobs must be subscribed to the replies, and other clients may publish right away.
        listeners, self._listeners_due = self._listeners_due, []
        for listener in listeners:
            self._dispatcher.put(listener)
        self._ready.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if not self._connack.is_set():  # closed before any CONNACK: e.g. a TLS client without a certificate
            self._connect_error = MessageBusError(f"{self._client_id}: the broker closed the connection: {reason}")
            self._connack.set()
        elif not self._closed:
            log.warning(
                "%s: connection to %s:%s lost (%s); reconnecting", self._client_id, self.host, self.port, reason
            )

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
        topic_filter = self._resubscriptions.pop(mid, None)
        if topic_filter is None:
            self._acks.arrived(mid, codes)
            return
        if any(code.is_failure for code in codes):
            log.error("%s: the broker refused the subscription to %s on connect", self._client_id, topic_filter)
        if not self._resubscriptions:
            self._subscriptions_ready()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._dispatcher.put(message)

    # -- dispatcher thread -------------------------------------------------------------------------

    def _run(self, item: object) -> None:
        if isinstance(item, mqtt.MQTTMessage):
            self.handlers.dispatch(Message(item.topic, bytes(item.payload), item.qos, bool(item.retain)))
            if item.qos:
                self._client.ack(item.mid, item.qos)  # manual ack: only after the handlers ran
        elif callable(item):
            self.handlers.call(item)

    def _cancel(self, entry: HandlerEntry) -> None:
        self.handlers.deactivate(entry)  # outside self._lock: a running handler may be waiting for it
        with self._lock:
            last = self.handlers.remove(entry)
            if last:
                self._unsent.discard(entry.topic_filter)
        if last and self.connected:
            self._client.unsubscribe(entry.topic_filter)

    def _abandon(self) -> None:
        """After a failed first connect: stop paho's retries until connect() is called again."""
        self._client.disconnect()
        self._client.loop_stop()
        self._loop_started = False
