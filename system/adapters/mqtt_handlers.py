"""HandlerRegistry: a MessageBus client's topic filters, their handlers, and how messages reach them.

Shared by `PahoMessageBus` and the simulated broker's `InMemoryMessageBus`, so both dispatch the
same way: every handler whose filter matches a message's topic is called, in subscription order,
one message at a time; a handler that raises is logged and remembered (`errors`) and the others
still run; `cancel()` waits for a running handler call to end, so no call starts after it returns.
Matching is the caller's (paho's matcher, or the simulator's own); results are cached per topic.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from system.ports import Message, MessageHandler

log = logging.getLogger(__name__)

_CACHE_LIMIT = 10_000
_ERRORS_KEPT = 100


class HandlerEntry:
    __slots__ = ("active", "handler", "topic_filter")

    def __init__(self, topic_filter: str, handler: MessageHandler) -> None:
        self.topic_filter = topic_filter
        self.handler = handler
        self.active = True


class HandlerSubscription:
    """What `MessageBus.subscribe` returns: `cancel()` removes the handler (see the module docstring)."""

    def __init__(self, entry: HandlerEntry, cancel: Callable[[HandlerEntry], None]) -> None:
        self._entry = entry
        self._cancel = cancel

    def cancel(self) -> None:
        self._cancel(self._entry)


class HandlerRegistry:
    """Topic filter -> handlers (with the QoS asked for), and dispatch of messages to them."""

    def __init__(self, name: str, matches: Callable[[str, str], bool]) -> None:
        self.name = name
        self.errors: list[Exception] = []  # the last 100 exceptions raised by handlers and listeners
        self._matches = matches
        self._lock = threading.Lock()
        self._calling = threading.RLock()  # held while handlers run, so deactivate() can wait them out
        self._filters: dict[str, list[HandlerEntry]] = {}
        self._qos: dict[str, int] = {}
        self._by_topic: dict[str, tuple[HandlerEntry, ...]] = {}

    def add(self, topic_filter: str, handler: MessageHandler, qos: int) -> tuple[HandlerEntry, bool]:
        """Register a handler; returns it and whether its filter is new (then it needs a SUBSCRIBE)."""
        entry = HandlerEntry(topic_filter, handler)
        with self._lock:
            new_filter = topic_filter not in self._filters
            self._filters.setdefault(topic_filter, []).append(entry)
            if new_filter:
                self._qos[topic_filter] = qos
            self._by_topic.clear()
        return entry, new_filter

    def remove(self, entry: HandlerEntry) -> bool:
        """Forget a handler; True if it was its filter's last one (then it needs an UNSUBSCRIBE).

        A call already running is not waited for: `deactivate()` first, holding no lock of yours
        (the running handler may need it).
        """
        entry.active = False
        with self._lock:
            handlers = self._filters.get(entry.topic_filter, [])
            if entry in handlers:
                handlers.remove(entry)
                self._by_topic.clear()
            if handlers or entry.topic_filter not in self._filters:
                return False
            del self._filters[entry.topic_filter]
            del self._qos[entry.topic_filter]
            return True

    def deactivate(self, entry: HandlerEntry) -> None:
        """Stop calling the handler; returns once a call of it (or of a sibling) has ended."""
        with self._calling:  # waits for a running handler call of this registry to end
            entry.active = False

    def filters(self) -> dict[str, int]:
        """Every filter with a handler, and the QoS its first subscriber asked for."""
        with self._lock:
            return dict(self._qos)

    def dispatch(self, message: Message) -> None:
        """Call every active handler whose filter matches the message's topic."""
        handlers = self._by_topic.get(message.topic)
        if handlers is None:
            handlers = self._lookup(message.topic)
        with self._calling:
            for entry in handlers:
                if entry.active:
                    self.call(entry.handler, message)

    def call(self, function: Callable[..., None], *args: object) -> None:
        """Run a handler or a connect listener; its exception is logged and kept, never raised."""
        try:
            function(*args)
        except Exception as error:  # a handler's bug must not stop the bus: report it, go on
            log.exception("%s: handler %r failed", self.name, function)
            self.errors = [*self.errors[-(_ERRORS_KEPT - 1) :], error]

    def _lookup(self, topic: str) -> tuple[HandlerEntry, ...]:
        with self._lock:
            handlers = tuple(h for f, hs in self._filters.items() if self._matches(f, topic) for h in hs)
            if len(self._by_topic) >= _CACHE_LIMIT:
                self._by_topic.clear()
            self._by_topic[topic] = handlers
            return handlers


_STOP = object()


class Dispatcher:
    """The thread a network client hands its messages and connect listeners to.

    Items run one at a time, in the order they were put, off the network thread (a slow handler
    never blocks keepalive). `run(item)` is the bus's: dispatch a message (then ack it), or call a
    listener. Started on first use; `stop()` lets queued items finish, then ends the thread.
    """

    def __init__(self, name: str, run: Callable[[object], None]) -> None:
        self._name = name
        self._run = run
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"{self._name}-dispatch", daemon=True)
            self._thread.start()

    def put(self, item: object) -> None:
        self._inbox.put(item)

    def stop(self, timeout: float) -> None:
        self._inbox.put(_STOP)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        while (item := self._inbox.get()) is not _STOP:
            self._run(item)
