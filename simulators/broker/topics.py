"""MQTT 3.1.1 topic names and topic filters: validation and matching, as pure functions.

The rules are those of the OASIS MQTT 3.1.1 standard, section 4.7 (modelled on aiomqtt's pure
`Topic.matches()`):

- names and filters are 1 to 65535 UTF-8 bytes and never contain U+0000 (4.7.3);
- `/` separates levels and empty levels are legal (`/finance`, `a//b`, `sport/`);
- `+` matches exactly one level, possibly empty, and must fill its level (`sport+` is invalid);
- `#` matches any number of levels, including none: `sport/#` matches `sport` itself (4.7.1.2);
  it must be the whole last level;
- topic names (what is published) contain no wildcard at all;
- a filter that starts with a wildcard never matches a topic that starts with `$` (4.7.2), so `#`
  does not receive `$aws/things/...` while `$aws/things/+/jobs/#` does.

`$share/...` shared subscriptions (MQTT 5, an AWS IoT extension to 3.1.1) are not interpreted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from system.errors import MessageBusError

MAX_TOPIC_BYTES = 65535


class InvalidTopicError(MessageBusError):
    """A topic name or topic filter breaks MQTT 3.1.1 section 4.7."""


def _check_common(text: str, kind: str) -> None:
    if not text:
        raise InvalidTopicError(f"an empty {kind} is not allowed (MQTT 3.1.1 4.7.3)")
    if "\x00" in text:
        raise InvalidTopicError(f"{kind} {text!r} contains U+0000 (MQTT 3.1.1 4.7.3)")
    if len(text) * 4 > MAX_TOPIC_BYTES and len(text.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise InvalidTopicError(f"{kind} is longer than {MAX_TOPIC_BYTES} bytes (MQTT 3.1.1 4.7.3)")


def validate_topic(topic: str) -> str:
    """Return `topic` if it is a valid topic name to publish to; else raise `InvalidTopicError`."""
    _check_common(topic, "topic name")
    if "+" in topic or "#" in topic:
        raise InvalidTopicError(f"topic name {topic!r} contains a wildcard (MQTT 3.1.1 4.7.1)")
    return topic


def validate_filter(topic_filter: str) -> str:
    """Return `topic_filter` if it is a valid subscription filter; else raise `InvalidTopicError`."""
    _check_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            raise InvalidTopicError(f"filter {topic_filter!r}: '#' must be the whole last level (MQTT 3.1.1 4.7.1.2)")
        if "+" in level and level != "+":
            raise InvalidTopicError(f"filter {topic_filter!r}: '+' must fill a whole level (MQTT 3.1.1 4.7.1.3)")
    return topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """Whether the valid topic name `topic` matches the valid filter `topic_filter`.

    Neither argument is re-validated (call `validate_filter`/`validate_topic` at the boundary).
    """
    return _match_levels(topic_filter.split("/"), topic)


def _match_levels(filter_levels: Sequence[str], topic: str) -> bool:
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass(frozen=True)
class TopicFilter:
    """A validated topic filter; `matches()` is pure and re-splits nothing."""

    value: str
    levels: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_filter(self.value)
        object.__setattr__(self, "levels", tuple(self.value.split("/")))

    @property
    def has_wildcard(self) -> bool:
        return "+" in self.levels or self.levels[-1] == "#"

    def matches(self, topic: str) -> bool:
        """Whether the topic name `topic` (assumed valid) matches this filter."""
        return _match_levels(self.levels, topic)
