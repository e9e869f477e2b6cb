"""A fake MessageBus shared by unit tests.

`RecordingBus` keeps every publish it accepts and can refuse, raise or hang on demand
(tests/unit/test_telemetry.py, tests/unit/test_metrics.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from system.errors import MessageBusError
from system.ports import Message, MessageHandler, Subscription

WAIT = 5.0  # bound on every wait for something that should happen promptly


class RecordingBus:
    """A MessageBus fake: keeps every accepted publish; can refuse, raise, or hang until released.

    Limits: publish only; nothing is delivered anywhere, and subscribe / add_connect_listener raise
    NotImplementedError.
    """

    def __init__(self) -> None:
        self.client_id = "fake"
        self.connected = True
        self.published: list[Message] = []
        self.calls = 0
        self.fail_next = 0  # this many publishes raise MessageBusError
        self.error: Exception | None = None  # raised once by the next publish, if set
        self.gate: threading.Event | None = None  # publish waits for it when set
        self.entered = threading.Event()  # set when a publish starts
        self.on_publish: Callable[[], None] = lambda: None
        self._cond = threading.Condition()

    def connect(self, timeout: float = 10.0) -> None:
        self.connected = True

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.calls += 1
        self.entered.set()
        self.on_publish()
        if self.gate is not None:
            assert self.gate.wait(WAIT), "the test never released the publish"
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if self.fail_next:
            self.fail_next -= 1
            raise MessageBusError("simulated publish timeout")
        with self._cond:
            self.published.append(Message(topic, payload, qos, retain))
            self._cond.notify_all()

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> Subscription:
        raise NotImplementedError

    def add_connect_listener(self, listener: Callable[[], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.connected = False

    def batches(self) -> list[dict[str, Any]]:
        with self._cond:
            return [json.loads(message.payload) for message in self.published]

    def entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [entry for batch in self.batches() if kind in (None, batch["kind"]) for entry in batch["entries"]]

    def wait_for_entries(self, count: int) -> list[dict[str, Any]]:
        with self._cond:
            arrived = self._cond.wait_for(
                lambda: sum(len(json.loads(m.payload)["entries"]) for m in self.published) >= count, WAIT
            )
        assert arrived, f"fewer than {count} entries within {WAIT} s: {self.entries()}"
        return self.entries()
