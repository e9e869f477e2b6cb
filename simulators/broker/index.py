"""SubscriptionIndex: which subscribers' filters match a topic, fast enough for a broker's hot path.

A trie keyed by topic level (the shape of paho's `MQTTMatcher` and aiomqtt's `SubscriptionTree`),
holding each subscriber's granted QoS where its filter ends. A match merges every subscriber's
matching filters into one entry with the highest QoS (one copy per client, the choice MQTT 3.1.1
section 3.3.5 allows) and is cached per topic until the next subscribe or unsubscribe, so steady
traffic on a few topics costs one dict lookup. Matching follows `topics.matches()` exactly (the unit
tests check the two agree), including the `$`-topic rule. Not thread-safe: the broker holds its lock.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_CACHE_LIMIT = 50_000  # distinct topics remembered before the cache starts over


class _Node(Generic[K]):
    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _Node[K]] = {}
        self.subscribers: dict[K, int] = {}


class SubscriptionIndex(Generic[K]):
    """Topic filter -> {subscriber: QoS}; `match(topic)` -> ((subscriber, QoS), ...)."""

    def __init__(self) -> None:
        self._root: _Node[K] = _Node()
        self._cache: dict[str, tuple[tuple[K, int], ...]] = {}
        self._count = 0

    def __len__(self) -> int:
        """How many (filter, subscriber) pairs are held."""
        return self._count

    def add(self, topic_filter: str, subscriber: K, qos: int) -> None:
        """Subscribe (or re-subscribe with a new QoS); the filter must already be valid."""
        node = self._root
        for level in topic_filter.split("/"):
            node = node.children.setdefault(level, _Node())
        if subscriber not in node.subscribers:
            self._count += 1
        node.subscribers[subscriber] = qos
        self._cache.clear()

    def remove(self, topic_filter: str, subscriber: K) -> bool:
        """Unsubscribe; False if that subscriber had no such filter."""
        path: list[tuple[_Node[K], str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.subscribers.pop(subscriber, None) is None:
            return False
        self._count -= 1
        self._cache.clear()
        for parent, level in reversed(path):  # prune empty branches
            child = parent.children[level]
            if child.children or child.subscribers:
                break
            del parent.children[level]
        return True

    def match(self, topic: str) -> tuple[tuple[K, int], ...]:
        """Every subscriber with a filter matching the valid topic name, once, with its highest QoS."""
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        found: dict[K, int] = {}
        self._walk(self._root, topic.split("/"), 0, not topic.startswith("$"), found)
        result = tuple(found.items())
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = result
        return result

    def _walk(self, node: _Node[K], levels: list[str], index: int, wild_ok: bool, found: dict[K, int]) -> None:
        # wild_ok is False only at the first level of a `$` topic (MQTT 3.1.1 4.7.2).
        children = node.children
        multi = children.get("#")
        if multi is not None and wild_ok:
            _merge(found, multi.subscribers)
        if index == len(levels):
            _merge(found, node.subscribers)
            return
        exact = children.get(levels[index])
        if exact is not None:
            self._walk(exact, levels, index + 1, True, found)
        single = children.get("+")
        if single is not None and wild_ok:
            self._walk(single, levels, index + 1, True, found)


def _merge(found: dict[K, int], subscribers: dict[K, int]) -> None:
    for subscriber, qos in subscribers.items():
        if found.get(subscriber, -1) < qos:
            found[subscriber] = qos
