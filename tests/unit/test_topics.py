"""MQTT 3.1.1 topic rules (section 4.7): the spec's examples, and agreement with references.

`reference_matches` is written differently on purpose (a regular expression per filter, not a
level-by-level walk); hypothesis checks that it, paho's matcher (behind PahoMessageBus), the pure
`matches()` and the broker's `SubscriptionIndex` trie all agree.
"""

from __future__ import annotations

import re

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.broker.index import SubscriptionIndex
from simulators.broker.topics import (
    MAX_TOPIC_BYTES,
    InvalidTopicError,
    TopicFilter,
    matches,
    validate_filter,
    validate_topic,
)
from system.errors import MessageBusError


def reference_matches(topic_filter: str, topic: str) -> bool:
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False
    levels = topic_filter.split("/")
    multi = levels[-1] == "#"
    literal = [r"[^/]*" if level == "+" else re.escape(level) for level in (levels[:-1] if multi else levels)]
    pattern = "/".join(literal)
    if multi:
        pattern = pattern + r"(/.*)?" if literal else r".*"
    return re.fullmatch(pattern, topic, flags=re.DOTALL) is not None


SPEC_EXAMPLES = [  # MQTT 3.1.1 4.7.1.2, 4.7.1.3, 4.7.2
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("#", "$SYS/broker", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("#", "$aws/things/dev1/jobs/notify-next", False),
    ("$aws/things/+/jobs/#", "$aws/things/dev1/jobs/notify-next", True),
    ("$aws/things/dev1/jobs/+/get/+", "$aws/things/dev1/jobs/j1/get/accepted", True),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
    ("a/b", "a/b/", False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), SPEC_EXAMPLES)
def test_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected
    assert TopicFilter(topic_filter).matches(topic) is expected
    assert reference_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("topic_filter", ["+", "#", "/", "//", "+/+", "/#", "a/+/#", "$SYS/#", "sport/", "ü/+"])
def test_valid_filters(topic_filter: str) -> None:
    assert validate_filter(topic_filter) == topic_filter


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "#/", "a#", "a/b#", "+a", "a/+b/c", "a/#+", "a\x00b"])
def test_invalid_filters(topic_filter: str) -> None:
    with pytest.raises(InvalidTopicError):
        validate_filter(topic_filter)


@pytest.mark.parametrize("topic", ["a", "/", "a//b", "$aws/things/x", "sport/", " "])
def test_valid_topic_names(topic: str) -> None:
    assert validate_topic(topic) == topic


@pytest.mark.parametrize("topic", ["", "a/+", "#", "a/#", "a+b", "a\x00"])
def test_invalid_topic_names(topic: str) -> None:
    with pytest.raises(InvalidTopicError):
        validate_topic(topic)


def test_length_limit_counts_utf8_bytes() -> None:
    validate_topic("a" * MAX_TOPIC_BYTES)
    with pytest.raises(InvalidTopicError):
        validate_topic("ü" * (MAX_TOPIC_BYTES // 2 + 1))


def test_invalid_topic_error_is_a_message_bus_error() -> None:
    assert issubclass(InvalidTopicError, MessageBusError)


TOPIC_LEVELS = st.sampled_from(["a", "b", "", "$x", "$SYS", "sport", "ü"])
FILTER_LEVELS = st.sampled_from(["a", "b", "", "$x", "$SYS", "+", "+"])
topics = st.lists(TOPIC_LEVELS, min_size=1, max_size=5).map("/".join).filter(bool)
filters = st.builds(
    lambda levels, multi: "/".join([*levels, "#"] if multi else levels),
    st.lists(FILTER_LEVELS, max_size=5),
    st.booleans(),
).filter(bool)


def instantiate(topic_filter: str, draw: st.DrawFn) -> str:
    """A topic the filter should match: each `+` becomes a level, `#` zero or more levels."""
    out: list[str] = []
    for level in topic_filter.split("/"):
        if level == "+":
            out.append(draw(TOPIC_LEVELS))
        elif level == "#":
            out.extend(draw(st.lists(TOPIC_LEVELS, max_size=3)))
        else:
            out.append(level)
    return "/".join(out)


@settings(max_examples=500, deadline=None)
@given(filters, topics)
def test_matches_agrees_with_the_references(topic_filter: str, topic: str) -> None:
    expected = reference_matches(topic_filter, topic)
    assert matches(topic_filter, topic) is expected
    assert TopicFilter(topic_filter).matches(topic) is expected
    assert mqtt.topic_matches_sub(topic_filter, topic) is expected


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_an_instantiated_filter_matches_unless_the_dollar_rule_says_no(data: st.DataObject) -> None:
    topic_filter = data.draw(filters)
    topic = instantiate(topic_filter, data.draw)
    if not topic:
        return
    dollar_rule = topic.startswith("$") and topic_filter[0] in "+#"
    assert matches(topic_filter, topic) is not dollar_rule
    assert reference_matches(topic_filter, topic) is not dollar_rule


@settings(max_examples=200, deadline=None)
@given(st.lists(filters, max_size=8, unique=True), st.lists(topics, min_size=1, max_size=5))
def test_the_subscription_index_agrees_with_matches(filter_list: list[str], topic_list: list[str]) -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    for topic_filter in filter_list:
        index.add(topic_filter, topic_filter, 1)
    for topic in topic_list:
        assert {key for key, _ in index.match(topic)} == {f for f in filter_list if matches(f, topic)}
    for topic_filter in filter_list[::2]:
        assert index.remove(topic_filter, topic_filter)
    for topic in topic_list:
        assert {key for key, _ in index.match(topic)} == {f for f in filter_list[1::2] if matches(f, topic)}


def test_the_index_gives_one_entry_per_subscriber_with_its_highest_qos() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add("a/#", "dev", 0)
    index.add("a/+", "dev", 1)
    index.add("a/b", "other", 0)
    assert sorted(index.match("a/b")) == [("dev", 1), ("other", 0)]
    assert len(index) == 3
    assert not index.remove("a/b", "dev")
