"""AwsIotMessageBus: the `MessageBus` port on the AWS IoT Device SDK (awscrt MQTT 3.1.1 over mutual TLS).

The bus a device uses on the `aws` profile, against AWS IoT Core: `awsiot.mqtt_connection_builder.
mtls_from_path` with the thing's certificate and key (IoT Core accepts no other direct MQTT login);
tests run it against a Mosquitto with `require_certificate true` (its certificate's subjectAltName
must name `endpoint`). It behaves like `PahoMessageBus`, sharing its handler registry:

- handlers run on a dispatcher thread of the bus, one message at a time in arrival order, never on
  awscrt's event-loop thread; every message comes through the connection-wide `on_message` callback
  (once per PUBLISH packet) and goes to the handlers whose filter matches its topic by the MQTT
  rules. That match also guards against an awscrt MQTT3 quirk: its own per-subscription dispatch
  hands `$aws/...` messages to a `#` callback, which MQTT-3.1.1 section 4.7.2 forbids;
- reconnect with exponential backoff (awscrt's, in whole seconds, at least 1 s); after a reconnect
  without a session the bus re-subscribes each filter it holds in its own SUBSCRIBE (awscrt's
  `resubscribe_existing_topics()` sends them all in one, and IoT Core disconnects a client asking
  for more than 8 per SUBSCRIBE), then calls the connect listeners on the dispatcher thread;
- blocking QoS 1 publish (PUBACK, or `MessageBusError` after `operation_timeout`) and subscribe
  (SUBACK; a refused subscription, 0x80 as IoT Core sends for a policy denial, raises
  `NotAuthorizedError`); awscrt's exceptions become `MessageBusError`.

Limits: awscrt cannot set TCP_NODELAY, so a request/response whose reply the device receives at
QoS 1 costs ~44 ms (Nagle plus delayed ACK; 0.6 ms when the reply is subscribed at QoS 0,
feasibility.md section 5). QoS 0 and 1 only (IoT Core has no QoS 2). awscrt acknowledges a QoS 1
message when it reaches the bus, before the handlers ran (no manual ack in awscrt MQTT3), so a crash
in between loses it. `publish` needs a live connection; a subscription made while disconnected is
sent at the next connect, where a refusal is only logged; an unsubscribe is not awaited. A broker
that refuses a connection by hanging up (IoT Core does for a policy denial) gives `MessageBusError`,
not `NotAuthorizedError`. Mosquitto's ACLs grant every SUBSCRIBE and drop denied publishes silently.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

import paho.mqtt.client as paho
from awscrt import mqtt
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt_connection_builder

from system.adapters.mqtt_handlers import Dispatcher, HandlerEntry, HandlerRegistry, HandlerSubscription
from system.adapters.tls import TlsFiles
from system.errors import ConfigError, MessageBusError, NotAuthorizedError
from system.ports import Message, MessageHandler

log = logging.getLogger(__name__)

_REFUSED_QOS = 0x80  # SUBACK "Failure" (MQTT 3.1.1 section 3.9.3)
_NOT_AUTHORIZED = (mqtt.ConnectReturnCode.BAD_USERNAME_OR_PASSWORD, mqtt.ConnectReturnCode.NOT_AUTHORIZED)
# What awscrt raises: AwsCrtError from its callbacks, RuntimeError ("5128 (AWS_ERROR_MQTT_INVALID_TOPIC)")
# when the native call refuses at once, ValueError for a QoS it cannot encode.
_CRT_ERRORS = (AwsCrtError, RuntimeError, ValueError)


def _whole_seconds(delay: float) -> int:
    """awscrt counts reconnect delays in whole seconds; 0 would retry in a busy loop."""
    return max(1, math.ceil(delay))


class _Countdown:
    """Runs `then()` once `count` SUBACKs (or failures) came in; at once when there are none."""

    def __init__(self, count: int, then: Callable[[], None]) -> None:
        self._left = count
        self._then = then
        self._lock = threading.Lock()
        if count == 0:
            then()

    def one_done(self) -> None:
        with self._lock:
            self._left -= 1
            finished = self._left == 0
        if finished:
            self._then()


class AwsIotMessageBus:
    """A `MessageBus` over awscrt's MQTT 3.1.1 client with mutual TLS; see the module docstring."""

    def __init__(
        self,
        endpoint: str,
        port: int,
        client_id: str,
        tls: TlsFiles,
        *,
        keepalive: int = 60,
        clean_session: bool = True,
        will: Message | None = None,
        reconnect_delay: tuple[float, float] = (1.0, 30.0),
        operation_timeout: float = 10.0,
    ) -> None:
        if tls.cert is None or tls.key is None:
            raise ConfigError(f"{client_id}: AWS IoT Core needs mutual TLS: give a client certificate and key")
        self.endpoint, self.port = endpoint, port
        self.operation_timeout = operation_timeout
        self.handlers = HandlerRegistry(client_id, paho.topic_matches_sub)  # `.errors`: what handlers raised
        self._client_id = client_id
        self._lock = threading.RLock()  # subscriptions, listeners, state
        self._unsent: set[str] = set()  # filters registered while disconnected
        self._listeners: list[Callable[[], None]] = []
        self._connected = False
        self._started = False  # a first connect succeeded: awscrt reconnects by itself from then on
        self._attempt = 0  # first connects tried, so a CONNACK after connect() timed out changes nothing
        self._closed = False
        self._ready = threading.Event()  # connected, and the subscriptions sent on connect acknowledged
        self._generation = 0  # counts connections, so a late SUBACK of an old one changes nothing
        self._dispatcher = Dispatcher(client_id, self._run)
        self._connection = self._make_connection(tls, keepalive, clean_session, will, reconnect_delay)

    def _make_connection(
        self,
        tls: TlsFiles,
        keepalive: int,
        clean_session: bool,
        will: Message | None,
        reconnect_delay: tuple[float, float],
    ) -> mqtt.Connection:
        low, high = _whole_seconds(reconnect_delay[0]), _whole_seconds(reconnect_delay[1])
        try:
            connection = mqtt_connection_builder.mtls_from_path(
                endpoint=self.endpoint,
                port=self.port,
                cert_filepath=str(tls.cert),
                pri_key_filepath=str(tls.key),
                ca_filepath=str(tls.ca),
                client_id=self._client_id,
                clean_session=clean_session,
                keep_alive_secs=keepalive,
                ping_timeout_ms=min(3000, max(keepalive, 1) * 500),  # must stay below the keepalive
                reconnect_min_timeout_secs=low,
                reconnect_max_timeout_secs=max(low, high),
                # awscrt gives up on an unacknowledged QoS 1 PUBLISH too, instead of retrying it forever
                protocol_operation_timeout_ms=int(self.operation_timeout * 1000),
                will=mqtt.Will(will.topic, mqtt.QoS(will.qos), will.payload, will.retain) if will else None,
                on_connection_interrupted=self._on_interrupted,
                on_connection_resumed=self._on_resumed,
            )
        except (*_CRT_ERRORS, OSError) as error:
            raise MessageBusError(f"{self._client_id}: cannot set up the connection with {tls}: {error}") from error
        connection.on_message(self._on_message)
        return connection

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, timeout: float = 10.0) -> None:
        """Connect; wait for the CONNACK and the SUBACKs of earlier subscriptions. awscrt reconnects later."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                raise MessageBusError(f"{self._client_id}: the bus is closed")
            self._dispatcher.start()
            started = self._started
        if not started:
            self._first_connect(timeout)
        if not self._ready.wait(max(deadline - time.monotonic(), 0.0)):
            raise MessageBusError(
                f"{self._client_id}: not connected to {self.endpoint}:{self.port} with its subscriptions "
                f"within {timeout} s"
            )

    def _first_connect(self, timeout: float) -> None:
        with self._lock:
            self._attempt += 1
            attempt = self._attempt
        future = self._connection.connect()
        # Handled where the CONNACK arrives, in order with the interruptions awscrt reports there.
        future.add_done_callback(functools.partial(self._on_first_connack, attempt=attempt))
        try:
            future.result(timeout)
        except TimeoutError as error:
            with self._lock:
                self._attempt += 1  # a CONNACK arriving from now on is ignored
            self._connection.disconnect()  # stop the attempt; connect() may be called again
            raise MessageBusError(
                f"{self._client_id}: no CONNACK from {self.endpoint}:{self.port} within {timeout} s"
            ) from error
        except Exception as error:  # awscrt raises a plain Exception(ConnectReturnCode) for a refusal
            raise _connect_error(self._client_id, f"{self.endpoint}:{self.port}", error) from error

    def _on_first_connack(self, future: Future[Any], *, attempt: int) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # connect() raises it
        with self._lock:
            if attempt != self._attempt:
                return  # connect() gave up on it
            self._started = True
        self._established(bool(future.result()["session_present"]))

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """QoS 1 returns once the broker acknowledged (`MessageBusError` on timeout)."""
        if qos not in (0, 1):
            raise MessageBusError(f"QoS {qos} is not supported (QoS 0 and 1 only, like AWS IoT Core)")
        if not self._connected:
            raise MessageBusError(f"{self._client_id} is not connected")
        future, _ = self._connection.publish(topic, payload, mqtt.QoS(qos), retain)
        if qos or future.done():  # done at once: the native call refused it (e.g. an invalid topic)
            self._result(future, f"publish to {topic!r}", "PUBACK")
        else:  # QoS 0 completes once written: a later failure can only be reported
            future.add_done_callback(lambda done: self._log_failure(done, f"QoS 0 publish to {topic!r}"))

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
            if not self._connected:
                self._unsent.add(topic_filter)
                return subscription
        what = f"subscription to {topic_filter!r}"
        try:
            if _refused(self._result(self._send_subscribe(topic_filter, min(qos, 1)), what, "SUBACK")):
                raise NotAuthorizedError(f"{self._client_id}: the broker refused the {what}")
        except MessageBusError:
            self.handlers.remove(entry)
            raise
        return subscription

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` runs on the dispatcher thread after every (re)connect from now on."""
        with self._lock:
            self._listeners.append(listener)

    def close(self) -> None:
        """DISCONNECT (no will), stop awscrt's reconnecting and the dispatcher."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started, self._connected = self._started, False
        self._ready.clear()
        if started:
            try:
                self._connection.disconnect().result(self.operation_timeout)
            except (*_CRT_ERRORS, TimeoutError, CancelledError) as error:  # closing goes on: report it, no retry
                log.warning("%s: DISCONNECT failed: %s", self._client_id, error)
        self._dispatcher.stop(self.operation_timeout)

    # -- awscrt operations ---------------------------------------------------------------------------

    def _send_subscribe(self, topic_filter: str, qos: int) -> Future[Any]:
        # No per-subscription callback: every message comes through on_message (see the module docstring).
        future: Future[Any] = self._connection.subscribe(topic_filter, mqtt.QoS(qos))[0]
        return future

    def _result(self, future: Future[Any], what: str, ack: str) -> dict[str, Any]:
        """Wait for an awscrt operation; its failures as `MessageBusError` (refusals `NotAuthorizedError`)."""
        try:
            result: dict[str, Any] = future.result(self.operation_timeout)
        except TimeoutError as error:
            raise MessageBusError(
                f"{self._client_id}: no {ack} for {what} within {self.operation_timeout} s"
            ) from error
        except mqtt.SubscribeError as error:
            raise NotAuthorizedError(f"{self._client_id}: the broker refused the {what}") from error
        except _CRT_ERRORS as error:
            raise MessageBusError(f"{self._client_id}: {what} failed: {error}") from error
        return result

    def _log_failure(self, future: Future[Any], what: str) -> None:
        error = future.exception()
        if error is not None:
            log.warning("%s: %s failed: %s", self._client_id, what, error)

    def _cancel(self, entry: HandlerEntry) -> None:
        self.handlers.deactivate(entry)  # outside self._lock: a running handler may be waiting for it
        with self._lock:
            last = self.handlers.remove(entry)
            if last:
                self._unsent.discard(entry.topic_filter)
            send = last and self._connected
        if send:
            future, _ = self._connection.unsubscribe(entry.topic_filter)
            future.add_done_callback(lambda done: self._log_failure(done, f"unsubscribe from {entry.topic_filter}"))

    # -- connection events (awscrt's event-loop thread, or connect()'s) -----------------------------

    def _established(self, session_present: bool) -> None:
        """Connected: send the SUBSCRIBEs the broker lacks; listeners run once all are acknowledged."""
        with self._lock:
            if self._closed:
                return
            self._connected = True
            self._generation += 1
            generation = self._generation
            filters = [(f, q) for f, q in self.handlers.filters().items() if not session_present or f in self._unsent]
            self._unsent.clear()
            listeners = list(self._listeners)
        countdown = _Countdown(len(filters), lambda: self._subscriptions_ready(generation, listeners))
        for topic_filter, qos in filters:  # never waited for here: the SUBACKs arrive on the event loop
            self._send_subscribe(topic_filter, qos).add_done_callback(
                functools.partial(self._resubscribed, topic_filter=topic_filter, countdown=countdown)
            )

    def _resubscribed(self, future: Future[Any], *, topic_filter: str, countdown: _Countdown) -> None:
        error = future.exception()
        if error is not None or _refused(future.result()):
            log.error(
                "%s: the subscription to %s on connect failed: %s", self._client_id, topic_filter, error or "refused"
            )
        countdown.one_done()

    def _subscriptions_ready(self, generation: int, listeners: list[Callable[[], None]]) -> None:
        # Listeners run once every subscription is in place again: a device re-asking for its
        # pending jobs must be subscribed to the replies, and other clients may publish right away.
        with self._lock:
            if generation != self._generation or not self._connected:
                return  # the connection these SUBACKs belong to is gone
            for listener in listeners:
                self._dispatcher.put(listener)
        self._ready.set()

    def _on_interrupted(self, connection: mqtt.Connection, error: Exception, **kwargs: Any) -> None:
        with self._lock:
            self._connected = False
            self._generation += 1
        self._ready.clear()
        if not self._closed:
            log.warning(
                "%s: connection to %s:%s lost (%s); reconnecting", self._client_id, self.endpoint, self.port, error
            )

    def _on_resumed(
        self, connection: mqtt.Connection, return_code: mqtt.ConnectReturnCode, session_present: bool, **kwargs: Any
    ) -> None:
        if return_code == mqtt.ConnectReturnCode.ACCEPTED:
            self._established(bool(session_present))
        else:
            log.error("%s: reconnect refused by the broker: %s", self._client_id, return_code.name)

    def _on_message(self, topic: str, payload: bytes, dup: bool, qos: mqtt.QoS, retain: bool, **kwargs: Any) -> None:
        self._dispatcher.put(Message(topic, bytes(payload), int(qos), bool(retain)))

    # -- dispatcher thread ---------------------------------------------------------------------------

    def _run(self, item: object) -> None:
        if isinstance(item, Message):
            self.handlers.dispatch(item)  # matched by the MQTT rules: `#` never gets `$aws/...`
        elif callable(item):
            self.handlers.call(item)


def _refused(suback: dict[str, Any]) -> bool:
    """A SUBACK granting nothing: awscrt 0.36 fails the future with SubscribeError, others give 0x80 or None."""
    return suback.get("qos") in (None, _REFUSED_QOS)


def _connect_error(client_id: str, address: str, error: Exception) -> MessageBusError:
    """The port's error for a failed CONNECT: a refusal by return code, or awscrt's (TLS, socket) error."""
    code = error.args[0] if error.args else None
    if isinstance(code, mqtt.ConnectReturnCode):
        error_type = NotAuthorizedError if code in _NOT_AUTHORIZED else MessageBusError
        return error_type(f"{client_id}: connection refused by {address}: {code.name}")
    return MessageBusError(f"{client_id}: cannot connect to {address}: {error}")
